"""HTTP API of the scoring service (paths under /v1, see docs/integrators.md)."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain, facts, ledger, public_limits
from services.scoring.api_schemas import ActivityRecorded, DeputyScore, RuleSetOut, ScoredEntry, UnitOnBoard
from services.scoring.models import IDEMPOTENCY, DeputyRow, Entry, RuleSetRow, UnitFact
from shared import idempotency
from shared.auth import Principal, require_region, require_roles
from shared.errors import Problem, conflict, invalid, not_found
from shared.ids import new_id
from shared.inputs import StorableText
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["scoring"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque id")]
RegionPath = Annotated[str, Path(pattern=r"^(\d{6,12}|default)$",
                                 description="an administrative code, or `default` for the rules everywhere")]
Staff = Annotated[Principal, Depends(require_roles("admin", "npc_staff"))]
Recorders = Annotated[Principal, Depends(require_roles("admin", "npc_staff", "station_staff"))]
# Who may call: a deputy's score for the deputy and npc_staff, the rules for npc_staff; not admin.
Readers = Annotated[Principal, Depends(require_roles("deputy", "npc_staff"))]
NpcStaff = Annotated[Principal, Depends(require_roles("npc_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="the same key and body return the first answer")]
Year = Annotated[int, Query(ge=2000, le=2100)]
def _level(value: Any) -> Any:
    """`city` is what this API called the city level before it took identity's name for it."""
    return "municipal" if value == "city" else value


# Identity's names for the levels of congress a deputy sits in; deputies come with them.
Level = Annotated[Literal["national", "provincial", "municipal", "county", "township"], BeforeValidator(_level)]
ACTIVITY_NAMESPACE = uuid.UUID("0b7f3a52-9d14-4f0e-8c61-2a5d7e3c9f40")
# Everything a request stores is also published in an event, and NATS takes 1 MB a message at most
# (an event it refuses holds up the outbox behind it): what staff write is bounded far below that.
EVIDENCE_BYTES = 4 * 1024
RULES_BYTES = 128 * 1024


def json_size(value: Any) -> int:
    """Bytes of `value` as JSON in UTF-8, as the outbox stores and the relay publishes it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class Strict(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, Decimal) else value


# ---- rules ---------------------------------------------------------------------------------


class RuleIn(Strict):
    code: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    on: str = Field(min_length=3, max_length=80, description="an event type, or `activity:<kind>`")
    points: float = Field(ge=-100, le=100)
    part: Literal["base", "bonus"] = "base"
    dimension: Literal["exemplary", "conduct", "supervision", "advisory", "relief"]
    role: Literal["deputy", "lead", "co_signer"] = "deputy"
    match: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=10)
    label: str = Field(default="", max_length=100)


class RulesIn(Strict):
    effective_from: date = Field(description="from this day (China time) on; tomorrow at the earliest")
    rules: list[RuleIn] = Field(min_length=1, max_length=200)
    grading: dict[str, Any] | None = Field(default=None, description="points_per_star, grade thresholds, talk_share,"
                                                                       " dimension_full")
    board: dict[str, Any] | None = Field(default=None, description="red/yellow/black thresholds of the units' board")


def _rules_region(region: str) -> str:
    return "" if region == "default" else region


@router.put("/rules/{region_code}", response_model=RuleSetOut,
            summary="The points rules of a region from a date (a new version)")
async def put_rules(region_code: RegionPath, body: RulesIn, who: NpcStaff, runtime: RuntimeDep) -> dict[str, Any]:
    region = _rules_region(region_code)
    if region:
        require_region(who, region)
    elif who.region:
        raise Problem(403, "只有全域管理人员可以修改默认规则。")
    today = datetime.now(domain.CHINA).date()
    if body.effective_from <= today:
        # Reports and suggestions of today are scored already: rules change the future, never the past.
        raise invalid("effective_from", "新规则最早从明天起施行，不改变已计的积分。")
    doc = {"rules": [r.model_dump() for r in body.rules], "grading": body.grading or {}, "board": body.board or {}}
    if json_size(doc) > RULES_BYTES:
        raise invalid("rules", f"规则集过大：合计不能超过 {RULES_BYTES // 1024} KB，请精简规则说明和匹配条件。")
    async with runtime.transaction() as session:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"scoring.rules:{region}"))))
        version = int(await session.scalar(select(func.coalesce(func.max(RuleSetRow.version), 0)).where(
            RuleSetRow.region_code == region)) or 0) + 1
        try:
            rs = domain.rule_set_of(region, body.effective_from, version, doc)
        except domain.RuleError as exc:
            raise invalid(exc.field or "rules", exc.message) from None
        unknown = facts.unknown_match_fields(rs)
        if unknown:
            index, key = unknown[0]
            raise invalid(f"rules[{index}].match.{key}",
                          f"匹配条件“{key}”不是事件 {rs.rules[index].on} 的字段，此规则永远不会生效；字段见事件目录。")
        await ledger.store_rule_set(session, rs, who.sub)
        out = domain.rule_set_doc(rs)
        await runtime.emit(session, "scoring.rules.changed", {**out, "recorded_by": who.sub}, subject=region)
        await runtime.record_audit(session, who, "rules.changed", subject_type="rule_set", subject_id=region,
                                   region_code=region, detail={"version": version,
                                                               "effective_from": body.effective_from.isoformat()})
    ledger.forget_rules(runtime)
    return out


@router.get("/rules/{region_code}", response_model=RuleSetOut,
            summary="The rules in force in a region on a day (default: today)",
            responses=problems(429))
async def get_rules(request: Request, region_code: RegionPath, runtime: RuntimeDep, who: public_limits.Caller,
                    on: date | None = None) -> dict[str, Any]:
    await public_limits.check(request, runtime, who, "rules")
    day = on or datetime.now(domain.CHINA).date()
    async with runtime.sessions()() as session:
        sets = await ledger.load_rule_sets(session)
    return domain.rule_set_doc(domain.in_force(sets, _rules_region(region_code), day))


# ---- a deputy's score ---------------------------------------------------------------------


async def _deputy(session: AsyncSession, deputy_id: str) -> DeputyRow:
    row = await session.get(DeputyRow, deputy_id)
    if row is None:
        raise not_found("代表不存在。")
    return row


async def _grading(session: AsyncSession, region_code: str, year: int) -> domain.Grading:
    # A year is judged by the rules in force on its last day.
    return domain.in_force(await ledger.load_rule_sets(session), region_code, date(year, 12, 31)).grading


def _entry_out(e: Entry) -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat(), "points": _num(e.points), "part": e.part, "dimension": e.dimension,
            "rule_code": e.rule_code, "rule_region": e.rule_region or "default", "rule_version": e.rule_version,
            "source": e.source, "source_id": e.source_id, "reason": e.reason, "recorded_by": e.recorded_by,
            "evidence": e.evidence, "reverses": e.reverses}


@router.get("/deputies/{deputy_id}/score", response_model=DeputyScore,
            summary="A deputy's year: base, bonus, stars, grade, five dimensions",
            responses=problems(404))
async def deputy_score(deputy_id: EntityId, year: Year, who: Readers, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions()() as session:
        deputy = await _deputy(session, deputy_id)
        if "deputy" in who.roles and not who.has_any(("npc_staff", "admin")):
            if who.deputy_id != deputy_id:
                raise Problem(403, "代表只能查看本人的履职积分。")
        else:
            require_region(who, deputy.region_code)
        entries = (await session.scalars(select(Entry).where(Entry.deputy_id == deputy_id, Entry.year == year)
                                         .order_by(Entry.at, Entry.id))).all()
        grading = await _grading(session, deputy.region_code, year)
    s = domain.score(((domain.Part(e.part), domain.Dimension(e.dimension), float(e.points)) for e in entries),
                     grading)
    return {"deputy_id": deputy_id, "name": deputy.name, "year": year, "base": s.base, "bonus": s.bonus,
            "total": s.total, "stars": s.stars, "grade": s.grade.value, "dimensions": s.dimensions,
            "entries": [_entry_out(e) for e in entries]}


# ---- staff-recorded activities and corrections ------------------------------------------------


class ActivityIn(Strict):
    deputy_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(pattern="^(" + "|".join(domain.ACTIVITY_KINDS) + ")$",
                      description=", ".join(f"{k} ({v})" for k, v in domain.ACTIVITY_KINDS.items()))
    on: date = Field(description="the day it took place")
    evidence: dict[str, Any] = Field(description="what proves it: sign-in sheet, photo ids, document number …",
                                     min_length=1, max_length=20)
    note: str | None = Field(default=None, max_length=500)

    @field_validator("evidence")
    @classmethod
    def _small_evidence(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_size(value) > EVIDENCE_BYTES:
            raise ValueError(f"证明材料不能超过 {EVIDENCE_BYTES // 1024} KB：请填写签到表编号、照片或文件标识，"
                             "不要直接放入文件内容")
        return value


@router.post("/activities", status_code=201, response_model=ActivityRecorded,
             summary="A duty staff record (attendance, reception day, 述职 …)",
             responses=problems((404, "unknown deputy"), (409, "the Idempotency-Key was used for another body")))
async def record_activity(body: ActivityIn, who: Recorders, runtime: RuntimeDep,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if body.on > datetime.now(domain.CHINA).date():
        raise invalid("on", "不能登记尚未发生的履职活动。")
    retry = idempotency.for_body(IDEMPOTENCY, f"activity:{who.sub}", idempotency_key, body.model_dump(mode="json"))
    activity_id = str(uuid.uuid5(ACTIVITY_NAMESPACE, f"{who.sub}|{idempotency_key}")) if idempotency_key \
        else new_id()
    at = datetime.combine(body.on, time(12, 0), domain.CHINA)
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        deputy = await _deputy(session, body.deputy_id)
        require_region(who, deputy.region_code)
        rules = domain.in_force(await ledger.load_rule_sets(session), deputy.region_code, body.on)
        on = f"{domain.ACTIVITY_PREFIX}{body.kind}"
        awards = domain.awards(rules, on, {}, {domain.Role.DEPUTY: [deputy.id]}, activity_id)
        new = await ledger.record(runtime, session, ledger.entries_of(
            rules, awards, at, on, activity_id, recorded_by=who.sub, evidence=body.evidence, note=body.note))
        out = {"activity_id": activity_id, "deputy_id": deputy.id, "kind": body.kind,
               "label": domain.ACTIVITY_KINDS[body.kind], "on": body.on.isoformat(), "recorded_by": who.sub,
               "entries": [e.as_event() for e in new]}
        await runtime.record_audit(session, who, "activity.recorded", subject_type="deputy", subject_id=deputy.id,
                                   region_code=deputy.region_code,
                                   detail={"activity_id": activity_id, "kind": body.kind, "on": body.on.isoformat(),
                                           "points": sum(e.points for e in new)})
        return await retry.answer(session, out, 201)


class ReversalIn(Strict):
    reason: str = Field(min_length=2, max_length=500)


@router.post("/entries/{entry_id}/reversal", status_code=201, response_model=ScoredEntry,
             summary="Correct an entry: a new one that reverses it",
             responses=problems((404, "unknown entry"), (409, "reversed already, or itself a reversal")))
async def reverse(entry_id: EntityId, body: ReversalIn, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.transaction() as session:
        entry = await session.get(Entry, entry_id, with_for_update=True)
        if entry is None:
            raise not_found("积分记录不存在。")
        require_region(who, (await _deputy(session, entry.deputy_id)).region_code)
        if entry.reverses is not None:
            raise conflict("冲正记录不能再被冲正。")
        if await session.scalar(select(Entry.id).where(Entry.reverses == entry_id)) is not None:
            raise conflict("该记录已经冲正。")
        correction = ledger.NewEntry(
            id=domain.entry_id(entry.id, "reversal", entry.deputy_id), deputy_id=entry.deputy_id, at=entry.at,
            points=-float(entry.points), part=entry.part, dimension=entry.dimension, rule_code=entry.rule_code,
            rule_region=entry.rule_region, rule_version=entry.rule_version, source="reversal", source_id=entry.id,
            reason=f"冲正：{body.reason}", recorded_by=who.sub, reverses=entry.id)
        await ledger.record(runtime, session, [correction])
        await runtime.record_audit(session, who, "entry.reversed", subject_type="entry", subject_id=entry.id,
                                   region_code=(await _deputy(session, entry.deputy_id)).region_code,
                                   detail={"deputy_id": entry.deputy_id, "points": float(entry.points),
                                           "reason": body.reason})
    return correction.as_event()


# ---- the handling units' board ------------------------------------------------------------------


@router.get("/units/board", response_model=list[UnitOnBoard],
            summary="红黄黑榜: each unit's on-time reply and satisfaction rates for a year",
            responses=problems(429))
async def unit_board(request: Request, year: Year, runtime: RuntimeDep, who: public_limits.Caller,
                     region_code: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None) -> list[dict[str, Any]]:
    await public_limits.check(request, runtime, who, "board")
    replies = func.count().filter(UnitFact.kind == "reply")
    on_time = func.count().filter(and_(UnitFact.kind == "reply", UnitFact.good))
    evaluations = func.count().filter(UnitFact.kind == "evaluation")
    satisfied = func.count().filter(and_(UnitFact.kind == "evaluation", UnitFact.good))
    query = (select(UnitFact.unit_id, func.min(UnitFact.region_code).label("region_code"), replies.label("replies"),
                    on_time.label("on_time"), evaluations.label("evaluations"), satisfied.label("satisfied"))
             .where(UnitFact.year == year).group_by(UnitFact.unit_id).order_by(UnitFact.unit_id))
    if region_code:
        query = query.where(UnitFact.region_code.startswith(region_code))
    async with runtime.sessions()() as session:
        rows = (await session.execute(query)).all()
        sets = await ledger.load_rule_sets(session)
    out = []
    for r in rows:
        thresholds = domain.in_force(sets, r.region_code, date(year, 12, 31)).board
        b = domain.board(r.replies, r.on_time, r.evaluations, r.satisfied, thresholds)
        out.append({"unit_id": r.unit_id, "on_time_rate": domain.rate(r.on_time, r.replies),
                    "satisfaction_rate": domain.rate(r.satisfied, r.evaluations),
                    "board": b.value if b else None, "replies": r.replies, "evaluations": r.evaluations})
    return out
