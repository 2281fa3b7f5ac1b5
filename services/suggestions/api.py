"""HTTP API of the suggestions service (paths under /v1; docs/integrators.md): units, suggestions and their handling.

Reads come from the projection; every action is an update of the suggestion's workflow, which
checks the rules, records the step and answers with the new state.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, not_, or_, select
from sqlalchemy.dialects.postgresql import insert
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.suggestions import access, domain, lifecycle, micro_funds
from services.suggestions.access import require_region
from services.suggestions.activities import row_values
from services.suggestions.api_schemas import SchemeOut, Suggestion, SuggestionDetail, SuggestionListed
from services.suggestions.lifecycle import Start
from services.suggestions.models import IDEMPOTENCY, DeputyView, OutcomeScheme, SuggestionRow, TimelineEntry, Unit
from services.suggestions.projection import view
from services.suggestions.queries import CARRIED_FILTER, KEY_FILTER, is_carried, is_key, readable_by, row_color_is
from services.suggestions.workflows import RULE_ERROR, TASK_QUEUE, SuggestionWorkflow, workflow_id
from shared import idempotency
from shared.auth import Principal, require_roles
from shared.errors import FieldError, Problem, conflict, forbidden, invalid, not_found
from shared.inputs import StorableText
from shared.instants import AnyInstant
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["suggestions"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque id")]
RegionCode = Annotated[str, Path(pattern=r"^\d{2,12}$", description="administrative code prefix")]
Staff = Annotated[Principal, Depends(require_roles("admin", "npc_staff"))]
# Who may call: assignment and extension are congress staff's alone.
NpcStaff = Annotated[Principal, Depends(require_roles("npc_staff"))]
Authors = Annotated[Principal, Depends(require_roles("deputy", "npc_staff"))]
Units = Annotated[Principal, Depends(require_roles("unit"))]
Deputies = Annotated[Principal, Depends(require_roles("deputy"))]
# Who may call: deputy, unit, npc_staff; not admin.
Readers = Annotated[Principal, Depends(require_roles("deputy", "unit", "npc_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="the same key and body return the first answer")]

ID_NAMESPACE = uuid.UUID("6f1d2c1e-5b7a-4c43-9a55-8d0f3f6a2b10")
# Beyond any list's length, and within what PostgreSQL takes for an OFFSET (int64).
MAX_OFFSET = 10_000_000
UNAVAILABLE = (503, "the workflow engine does not answer; retry")
# What every action on a suggestion may meet besides bad input.
ACTION_PROBLEMS = problems((404, "unknown suggestion"),
                           (409, "not allowed in its current state, closed, or the Idempotency-Key was used for "
                                 "another body"), UNAVAILABLE)


class Strict(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- units and outcome classes ---------------------------------------------------------------


class UnitIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    region_code: str = Field(pattern=r"^\d{6,12}$")
    parent_id: str | None = Field(default=None, max_length=64)


class UnitOut(BaseModel):
    id: str
    name: str
    region_code: str
    parent_id: str | None = Field(description="the unit it belongs to, if any")


@router.put("/units/{unit_id}", response_model=UnitOut, summary="A handling unit (承办单位)")
async def put_unit(unit_id: EntityId, body: UnitIn, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    require_region(who, body.region_code)
    after = body.model_dump()
    async with runtime.transaction() as session:
        # Locked: two changes at once each see the other's result as their "before".
        existing = await session.get(Unit, unit_id, with_for_update=True)
        before = None
        if existing is not None:
            require_region(who, existing.region_code)
            before = {"name": existing.name, "region_code": existing.region_code, "parent_id": existing.parent_id}
        stmt = insert(Unit).values(id=unit_id, **after)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={**after, "updated_at": func.now()}))
        if before != after:
            await runtime.record_audit(session, who, "unit.changed", subject_type="unit", subject_id=unit_id,
                                       region_code=body.region_code, detail={"before": before, "after": after})
    return {"id": unit_id, **after}


@router.get("/units/{unit_id}", response_model=UnitOut, summary="A handling unit (承办单位), with its parent unit",
            responses=problems((404, "unknown, or outside the caller's region")))
async def get_unit(unit_id: EntityId, who: Staff, runtime: RuntimeDep) -> UnitOut:
    # The public list names units; changing one needs what a PUT would otherwise reset (its parent).
    async with runtime.sessions()() as session:
        unit = await session.get(Unit, unit_id)
    if unit is None or not access.covers_as_staff(who, unit.region_code):
        raise not_found("承办单位不存在。")
    return UnitOut(id=unit.id, name=unit.name, region_code=unit.region_code, parent_id=unit.parent_id)


class OutcomeClassIn(Strict):
    code: str = Field(pattern=r"^[A-Z]{1,2}$")
    label: str = Field(min_length=1, max_length=100)
    solved: bool = False
    needs_planned_year: bool = False
    reference: bool = False


class SchemeIn(Strict):
    classes: list[OutcomeClassIn] = Field(min_length=1, max_length=8)


@router.put("/outcome-schemes/{region_code}", response_model=SchemeOut,
            summary="The reply outcome classes of a region (A/B/C, A/B/C/D …)")
async def put_scheme(region_code: RegionCode, body: SchemeIn, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    require_region(who, region_code)
    classes = [domain.OutcomeClass(**c.model_dump()) for c in body.classes]
    try:
        domain.validate_outcome_scheme(classes)
    except domain.RuleError as exc:
        raise invalid(exc.field or "classes", exc.message) from None
    stored = [c.model_dump() for c in body.classes]
    async with runtime.transaction() as session:
        existing = await session.get(OutcomeScheme, region_code, with_for_update=True)
        before = list(existing.classes) if existing is not None else None
        stmt = insert(OutcomeScheme).values(region_code=region_code, classes=stored)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["region_code"], set_={"classes": stored, "updated_at": func.now()}))
        if before != stored:
            await runtime.record_audit(session, who, "outcome_scheme.changed", subject_type="outcome_scheme",
                                       subject_id=region_code, region_code=region_code,
                                       detail={"before": before, "after": stored})
    # Suggestions keep the classes they were submitted under; this applies to new ones.
    return {"region_code": region_code, "classes": stored}


async def scheme_for(session: Any, region_code: str) -> list[domain.OutcomeClass]:
    rows = (await session.execute(select(OutcomeScheme.region_code, OutcomeScheme.classes))).all()
    matching = [r for r in rows if region_code.startswith(r.region_code)]
    if not matching:
        return list(domain.DEFAULT_OUTCOMES)
    best = max(matching, key=lambda r: len(r.region_code))
    return [domain.OutcomeClass(**c) for c in best.classes]


# ---- submission ------------------------------------------------------------------------------


class SuggestionIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "title": "关于老旧小区加装电梯的建议", "content": "建议加快老旧小区加装电梯，简化审批流程，方便老年人出行。",
        "lead_deputy_id": "D001", "co_signer_ids": ["D002"], "year": 2026, "kind": "session"}]})

    title: str = Field(min_length=2, max_length=200)
    content: str = Field(min_length=10, max_length=20000)
    lead_deputy_id: str = Field(min_length=1, max_length=64)
    co_signer_ids: list[str] = Field(default_factory=list, max_length=100)
    year: int = Field(ge=2000, le=2100)
    kind: Literal["session", "interim"]
    micro: bool = Field(default=False, description="急难小: paid from the region's yearly micro-suggestion fund")


def _suggestion_id(who: Principal, key: str | None) -> str:
    # With a key, a retry names the same workflow and cannot start a second one.
    return str(uuid.uuid5(ID_NAMESPACE, f"{who.sub}\n{key}")) if key else str(uuid.uuid4())


@router.post("/suggestions", status_code=201, response_model=Suggestion, summary="A deputy's suggestion (代表建议)",
             responses=problems((409, "the Idempotency-Key was used for another body"),
                                (422, "unknown deputies, or invalid input"), UNAVAILABLE))
async def submit(body: SuggestionIn, who: Authors, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if "npc_staff" not in who.roles and who.deputy_id != body.lead_deputy_id:
        raise forbidden("代表只能以本人为领衔代表提出建议。")
    retry = idempotency.for_body(IDEMPOTENCY, f"suggestions:{who.sub}", idempotency_key, body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        created = await create(runtime, session, who, body, _suggestion_id(who, idempotency_key))
        return await retry.answer(session, created, 201)


async def create(runtime: Runtime, session: Any, who: Principal, body: SuggestionIn, suggestion_id: str, *,
                 topic_id: str | None = None) -> dict[str, Any]:
    """Checks the deputies and starts the suggestion's workflow; returns the suggestion as submitted."""
    ids = [body.lead_deputy_id, *body.co_signer_ids]
    known = {d.id: d for d in (await session.scalars(select(DeputyView).where(DeputyView.id.in_(ids)))).all()}
    errors = [FieldError("lead_deputy_id", f"代表 {body.lead_deputy_id} 不存在。")] if body.lead_deputy_id \
        not in known else []
    errors += [FieldError(f"co_signer_ids[{i}]", f"代表 {d} 不存在。") for i, d in enumerate(body.co_signer_ids)
               if d not in known]
    if body.lead_deputy_id in body.co_signer_ids:
        errors.append(FieldError("co_signer_ids", "领衔代表不必再列为附议代表。"))
    if errors:
        raise Problem(422, "建议的代表信息有误。", title="Validation Failed", errors=errors)
    lead = known[body.lead_deputy_id]
    require_region(who, lead.region_code)
    first_year, number = runtime.settings.term_first_year, runtime.settings.term_number
    s = lifecycle.Suggestion(
        id=suggestion_id, title=body.title, content=body.content,
        lead_deputy_id=body.lead_deputy_id, co_signer_ids=list(body.co_signer_ids), region_code=lead.region_code,
        year=body.year, kind=body.kind, micro=body.micro, outcomes=await scheme_for(session, lead.region_code),
        term_first_year=first_year, term_number=number, submitted_at=datetime.now(UTC), submitted_by=who.sub,
        repeat_of=await _earlier_repeat(session, lead.region_code, body, first_year, number),
        topic_id=topic_id, key_requested=topic_id is not None,
    )
    await _start(runtime, s)
    lifecycle.submitted(s)
    return {**view(s), "seq": 1}


async def _earlier_repeat(session: Any, region_code: str, body: SuggestionIn, first_year: int,
                          number: int) -> dict[str, Any] | None:
    """反复提: the closest earlier suggestion of the same county and term, if close enough."""
    term = domain.term_of(body.year, first_year, number)
    rows = (await session.execute(
        select(SuggestionRow.id, SuggestionRow.title, SuggestionRow.content, SuggestionRow.outcome,
               SuggestionRow.status)
        .where(SuggestionRow.region_code.startswith(region_code[:6]), SuggestionRow.term == term)
        .order_by(SuggestionRow.submitted_at.desc()).limit(2000))).all()
    earlier = [domain.Earlier(r.id, r.title, r.content, r.outcome, r.status) for r in rows]
    best = domain.closest_repeat(body.title, body.content, earlier)
    if best is None:
        return None
    return {"id": best.id, "title": best.title, "outcome": best.outcome, "status": best.status,
            "similarity": round(best.score, 3)}


async def _start(runtime: Runtime, s: lifecycle.Suggestion) -> None:
    try:
        await runtime.temporal.start_workflow(
            SuggestionWorkflow.run, Start(s), id=workflow_id(s.id), task_queue=TASK_QUEUE,
            # A retried POST with the same key finds the suggestion it started.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    except RPCError as exc:
        raise Problem(503, "办理引擎暂时不可用，请稍后重试。") from exc


# ---- actions ---------------------------------------------------------------------------------


class AssignmentIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"lead_unit_id": "U-ZJJ", "assisting_unit_ids": ["U-CZJ"]},
        {"lead_unit_id": "U-ZJJ", "key": True, "supervisor": "王副县长"}]})

    lead_unit_id: str = Field(min_length=1, max_length=64)
    assisting_unit_ids: list[str] = Field(default_factory=list, max_length=20)
    key: bool = Field(default=False, description="重点建议, supervised by a named leader")
    supervisor: str | None = Field(default=None, max_length=100, description="the supervising leader (督办领导)")


class ExtensionIn(Strict):
    reason: str = Field(min_length=2, max_length=2000)
    months: int = Field(default=3, ge=1, le=3, description="at most six months after assignment in all")


class ExtensionRequestIn(Strict):
    reason: str = Field(min_length=2, max_length=2000)
    months: int = Field(default=3, ge=1, le=3, description="the months asked for; staff decide when they extend")


class MeetingIn(Strict):
    stage: Literal["before", "during", "after"]
    at: AnyInstant
    note: str = Field(min_length=1, max_length=4000)


class AssistingViewIn(Strict):
    content: str = Field(min_length=1, max_length=20000)


class ReplyIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "unit_id": "U-ZJJ", "content": "已将该小区列入今年加装电梯计划，预计年底前完工。", "outcome": "B",
        "planned_year": 2026, "public": True}]})

    unit_id: str = Field(min_length=1, max_length=64)
    content: str = Field(min_length=1, max_length=50000)
    outcome: str = Field(pattern=r"^[A-Z]{1,2}$")
    planned_year: int | None = Field(default=None, ge=2000, le=2100)
    public: bool = Field(default=True, description="listed in the public disclosure, without personal data")


class EvaluationIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"result": "satisfied"}, {"result": "dissatisfied", "comment": "答复未说明资金来源。"}]})

    result: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    comment: str | None = Field(default=None, max_length=4000)


class ProgressIn(Strict):
    unit_id: str = Field(min_length=1, max_length=64)
    note: str = Field(min_length=1, max_length=20000)
    outcome: str | None = Field(default=None, pattern=r"^[A-Z]{1,2}$")


class DecisionIn(Strict):
    decision: Literal["reassign", "follow_up", "close"]
    note: str = Field(min_length=1, max_length=4000)


async def suggestion_row(runtime: Runtime, suggestion_id: str) -> SuggestionRow:
    """The projection row; straight after submission, before the first record lands, the workflow's own state."""
    async with runtime.sessions()() as session:
        row = await session.get(SuggestionRow, suggestion_id)
    if row is not None:
        return row
    try:
        state = await runtime.temporal.get_workflow_handle(workflow_id(suggestion_id)).query(SuggestionWorkflow.state)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_found("建议不存在。") from None
        raise Problem(503, "办理引擎暂时不可用，请稍后重试。") from exc
    return SuggestionRow(**row_values(state))


def _own_unit(who: Principal, unit_id: str | None) -> str:
    own = access.own_unit(who)
    if own is None or (unit_id is not None and unit_id != own):
        raise forbidden("只能以本单位名义办理。")
    return own


async def _update(runtime: Runtime, who: Principal, suggestion_id: str, name: str, payload: Any,
                  key: str | None, body: dict[str, Any]) -> JSONResponse:
    retry = idempotency.for_body(IDEMPOTENCY, f"{name}:{suggestion_id}:{who.sub}", key, body)
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        handle: WorkflowHandle[Any, Any] = runtime.temporal.get_workflow_handle(workflow_id(suggestion_id))
        try:
            state = await handle.execute_update(name, payload, id=f"{name}-{key}" if key else None)
        except WorkflowUpdateFailedError as exc:
            raise _problem(exc.cause) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise conflict("建议已办结或不存在，不能再办理。") from None
            raise Problem(503, "办理引擎暂时不可用，请稍后重试。") from exc
        return await retry.answer(session, state, 200)


def _problem(cause: BaseException | None) -> Problem:
    if isinstance(cause, ApplicationError) and cause.type == RULE_ERROR:
        field_name = str(cause.details[0]) if cause.details and cause.details[0] else ""
        return invalid(field_name, cause.message) if field_name else conflict(cause.message)
    return Problem(500, "办理失败。")


@router.post("/suggestions/{suggestion_id}/assignment", response_model=Suggestion,
             summary="交办: to a lead unit and assisting units",
             responses=ACTION_PROBLEMS)
async def assign(suggestion_id: EntityId, body: AssignmentIn, who: NpcStaff, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    row = await suggestion_row(runtime, suggestion_id)
    require_region(who, row.region_code)
    ids = [body.lead_unit_id, *body.assisting_unit_ids]
    async with runtime.sessions()() as session:
        known = set((await session.scalars(select(Unit.id).where(Unit.id.in_(ids)))).all())
    missing = [FieldError("lead_unit_id" if i == 0 else f"assisting_unit_ids[{i - 1}]", f"承办单位 {u} 不存在。")
               for i, u in enumerate(ids) if u not in known]
    if missing:
        raise Problem(422, "承办单位有误。", title="Validation Failed", errors=missing)
    payload = lifecycle.Assign(who.sub, body.lead_unit_id, list(body.assisting_unit_ids), body.key, body.supervisor)
    return await _update(runtime, who, suggestion_id, "assign", payload, idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/extension", response_model=Suggestion,
             summary="One extension, to at most six months after assignment",
             responses=ACTION_PROBLEMS)
async def extend(suggestion_id: EntityId, body: ExtensionIn, who: NpcStaff, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    require_region(who, (await suggestion_row(runtime, suggestion_id)).region_code)
    return await _update(runtime, who, suggestion_id, "extend", lifecycle.Extend(who.sub, body.reason, body.months),
                         idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/extension-request", response_model=Suggestion,
             summary="The lead unit asks congress staff for the one extension (they grant it with /extension)",
             responses=problems((403, "not the suggestion's lead unit"),
                                (404, "unknown suggestion"),
                                (409, "not assigned, already extended, a request already pending, or the "
                                      "Idempotency-Key was used for another body"), UNAVAILABLE))
async def request_extension(suggestion_id: EntityId, body: ExtensionRequestIn, who: Units, runtime: RuntimeDep,
                            idempotency_key: IdempotencyKey = None) -> JSONResponse:
    unit = _own_unit(who, None)
    # Only the lead unit answers for the due date; an assisting unit or a stranger is refused outright.
    if unit != (await suggestion_row(runtime, suggestion_id)).lead_unit_id:
        raise forbidden("只有主办单位可以申请延期。")
    payload = lifecycle.RequestExtension(who.sub, unit, body.reason, body.months)
    return await _update(runtime, who, suggestion_id, "request_extension", payload, idempotency_key,
                         body.model_dump())


@router.post("/suggestions/{suggestion_id}/meetings", response_model=Suggestion,
             summary="三见面: before, during or after handling",
             responses=ACTION_PROBLEMS)
async def meeting(suggestion_id: EntityId, body: MeetingIn, who: Units, runtime: RuntimeDep,
                  idempotency_key: IdempotencyKey = None) -> JSONResponse:
    unit = _own_unit(who, None)
    if body.at.tzinfo is None:
        raise invalid("at", "时间须带时区。")
    payload = lifecycle.Meeting(who.sub, unit, body.stage, body.at, body.note)
    return await _update(runtime, who, suggestion_id, "meeting", payload, idempotency_key, body.model_dump(mode="json"))


@router.post("/suggestions/{suggestion_id}/assisting-views", response_model=Suggestion,
             summary="An assisting unit's view to the lead unit",
             responses=ACTION_PROBLEMS)
async def assisting_view(suggestion_id: EntityId, body: AssistingViewIn, who: Units, runtime: RuntimeDep,
                         idempotency_key: IdempotencyKey = None) -> JSONResponse:
    payload = lifecycle.AssistingView(who.sub, _own_unit(who, None), body.content)
    return await _update(runtime, who, suggestion_id, "assisting_view", payload, idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/replies", response_model=Suggestion,
             summary="答复 with an outcome class", responses=ACTION_PROBLEMS)
async def reply(suggestion_id: EntityId, body: ReplyIn, who: Units, runtime: RuntimeDep,
                idempotency_key: IdempotencyKey = None) -> JSONResponse:
    payload = lifecycle.ReplyInput(who.sub, _own_unit(who, body.unit_id), body.content, body.outcome,
                                   body.planned_year, body.public)
    return await _update(runtime, who, suggestion_id, "reply", payload, idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/evaluation", response_model=Suggestion,
             summary="The lead deputy's evaluation of the reply",
             responses=ACTION_PROBLEMS)
async def evaluate(suggestion_id: EntityId, body: EvaluationIn, who: Deputies, runtime: RuntimeDep,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if who.deputy_id != (await suggestion_row(runtime, suggestion_id)).lead_deputy_id:
        raise forbidden("只有领衔代表可以评价答复。")
    payload = lifecycle.Evaluate(who.deputy_id or who.sub, body.result, body.comment)
    return await _update(runtime, who, suggestion_id, "evaluate", payload, idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/progress", response_model=Suggestion,
             summary="回头看: the yearly progress of a B/C item",
             responses=ACTION_PROBLEMS)
async def progress(suggestion_id: EntityId, body: ProgressIn, who: Units, runtime: RuntimeDep,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    payload = lifecycle.Progress(who.sub, _own_unit(who, body.unit_id), body.note, body.outcome)
    return await _update(runtime, who, suggestion_id, "progress", payload, idempotency_key, body.model_dump())


@router.post("/suggestions/{suggestion_id}/director-decision", response_model=Suggestion,
             summary="主任会议: the decision after a second dissatisfaction", responses=ACTION_PROBLEMS)
async def decide(suggestion_id: EntityId, body: DecisionIn, who: Staff, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    require_region(who, (await suggestion_row(runtime, suggestion_id)).region_code)
    return await _update(runtime, who, suggestion_id, "decide", lifecycle.Decide(who.sub, body.decision, body.note),
                         idempotency_key, body.model_dump())


# ---- reads -----------------------------------------------------------------------------------


def _out(row: SuggestionRow, now: datetime) -> dict[str, Any]:
    state = dict(row.state)
    state["color"] = domain.color(row.status, now, due_at=row.due_at, next_review_at=row.next_review_at,
                                  reference=row.reference).value
    return state


@router.get("/suggestions/{suggestion_id}", response_model=SuggestionDetail,
            summary="A suggestion, its color and its timeline",
            responses=problems((404, "unknown suggestion"), UNAVAILABLE))
async def get_suggestion(suggestion_id: EntityId, who: Readers, runtime: RuntimeDep) -> dict[str, Any]:
    row = await suggestion_row(runtime, suggestion_id)
    if not access.may_read(who, row):
        raise forbidden("无权查看这件建议。")
    async with runtime.sessions()() as session:
        entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.suggestion_id == suggestion_id)
                                         .order_by(TimelineEntry.seq))).all()
        out = _out(row, datetime.now(UTC))
        out.setdefault("extension_request", None)
        if "outcome_classes" not in out:  # recorded before suggestions carried their classes: the region's now
            out["outcome_classes"] = [asdict(c) for c in await scheme_for(session, row.region_code)]
        # The fund a micro suggestion draws on, for whoever may spend from it: its lead unit and staff.
        lead = row.lead_unit_id is not None and access.own_unit(who) == row.lead_unit_id
        spender = lead or access.covers_as_staff(who, row.region_code)
        out["fund"] = await micro_funds.balance(session, row.region_code, row.year) if row.micro and spender else None
    return {**out, "timeline": [
        {"seq": e.seq, "at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "note": e.note, **e.data}
        for e in entries]}


@router.get("/suggestions", response_model=list[SuggestionListed], response_model_exclude_unset=True,
            summary="Suggestions on a year's list, by status, unit or color")
async def list_suggestions(who: Readers, runtime: RuntimeDep,
                           year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
                           status: Annotated[domain.Status | None, Query()] = None,
                           unit_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
                           color: Annotated[Literal["green", "yellow", "red", "blue", "grey"] | None, Query()] = None,
                           key: Annotated[bool | None, Query(description=KEY_FILTER)] = None,
                           carried: Annotated[bool | None, Query(description=CARRIED_FILTER)] = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                           offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict[str, Any]]:
    if not access.has_scope(who):
        raise forbidden("登录凭证未注明代表、承办单位或管辖地区，无法列出建议。")
    query = select(SuggestionRow).where(readable_by(who))
    if year is not None:
        query = query.where(SuggestionRow.years.contains([year]))
    if key is not None:
        query = query.where(is_key() if key else not_(is_key()))
    if carried is not None:
        query = query.where(is_carried(year) if carried else not_(is_carried(year)))
    if status is not None:
        query = query.where(SuggestionRow.status == status)
    if unit_id is not None:
        query = query.where(or_(SuggestionRow.lead_unit_id == unit_id,
                                SuggestionRow.assisting_unit_ids.contains([unit_id])))
    now = datetime.now(UTC)
    if color is not None:
        query = query.where(row_color_is(domain.Color(color), now))
    query = query.order_by(SuggestionRow.submitted_at.desc(), SuggestionRow.id).offset(offset).limit(limit)
    async with runtime.sessions()() as session:
        rows = (await session.scalars(query)).all()
    return [_out(r, now) for r in rows]
