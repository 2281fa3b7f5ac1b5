"""HTTP API of citizens' reports: submit, list, see, acknowledge, reply, and unmask a reporter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import clock, domain, lifecycle, submission, targets
from services.intake.models import IDEMPOTENCY, Attachment, DeputyView, Report, TimelineEntry, Unmasking
from shared import idempotency
from shared.auth import OptionalPrincipal, Principal, require_roles
from shared.calendar import SHANGHAI
from shared.client_source import source_of
from shared.errors import FieldError, Problem, forbidden, not_found
from shared.flood import FloodGuard
from shared.ids import new_id
from shared.inputs import StorableText
from shared.instants import Instant
from shared.pii import PiiError, blind_index, decrypt, encrypt
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

log = logging.getLogger("minyi.intake.reports")

router = APIRouter(prefix="/v1", tags=["intake"], responses=COMMON)

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Handler = Annotated[Principal, Depends(require_roles("deputy", "station_staff"))]
Viewer = Annotated[Principal, Depends(require_roles("deputy", "station_staff", "npc_staff"))]
ReportId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="the report's id")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="a retried POST with the same key and body gets the "
                                                          "first answer and creates nothing new")]
REGION_PATTERN = r"^[0-9A-Za-z-]{6,40}$"
# Deputy and station ids as identity takes them.
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# Callers who submit on others' behalf (staff at a counter, a city system) are not flood-limited.
UNLIMITED_ROLES = frozenset({"station_staff", "integration"})
PII_CONTEXT = {"name": "intake.report.reporter_name", "phone": "intake.report.reporter_phone",
               "id_number": "intake.report.reporter_id_number"}


class Strict(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReporterIn(Strict):
    name: str = Field(default="", max_length=50)
    phone: str = Field(default="", max_length=30, pattern=r"^(\+?[0-9 ()-]{7,30})?$")
    id_number: str | None = Field(default=None, max_length=20)


class LocationIn(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = Field(default=None, max_length=200)


class ReportIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"channel": "h5", "code": "1YXP1BVGDH3RQ8E7XWHZ0", "content": "小区门口路灯坏了一个月，晚上出行很不方便。",
         "anonymous": False, "reporter": {"name": "张三", "phone": "13900000002"}},
        {"channel": "miniprogram", "region_code": "330106", "content": "文三路公交站台的雨棚破损漏雨。",
         "category": "交通出行", "anonymous": True, "location": {"lat": 30.2741, "lon": 120.1551}},
    ]})

    channel: domain.Channel
    code: str | None = Field(default=None, max_length=64, description="the scanned QR code (亮码)")
    region_code: str | None = Field(default=None, pattern=REGION_PATTERN,
                                    description="where the matter is, when no code was scanned (or more precisely)")
    content: str = Field(default="", max_length=domain.MAX_CONTENT, description="1–5000 characters unless a voice "
                                                                                "recording is attached")
    category: str | None = Field(default=None, max_length=40, description="the citizen's own category hint")
    anonymous: bool
    reporter: ReporterIn | None = None
    attachment_ids: list[str] = Field(default_factory=list, max_length=9)
    location: LocationIn | None = None
    received_at: Instant | None = Field(default=None, description="station staff only: when a paper, "
                                                                        "hotline or kiosk report was really received")


class TargetOut(BaseModel):
    kind: domain.TargetKind
    id: str | None
    region_code: str


class ReportCreated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "527b153a-3016-460a-9b32-d2c91a32e5f9", "receipt_code": "72PWR65B8E8S", "status": "submitted",
        "target": {"kind": "deputy", "id": "D001", "region_code": "330106"},
        "ack_due": "2026-03-04T23:59:59+08:00", "reply_due": "2026-03-11T23:59:59+08:00", "due_provisional": False,
    }]})

    id: str
    receipt_code: str = Field(description="lets the citizen follow the report and rate the answer without an account")
    status: domain.Status
    target: TargetOut
    ack_due: datetime
    reply_due: datetime
    due_provisional: bool = Field(description="counted in a year whose holiday calendar is not loaded yet")


class ReporterOut(BaseModel):
    name: str
    phone: str
    id_number: str | None = None


class ReportItem(BaseModel):
    id: str
    channel: str
    status: domain.Status
    round: int
    target: TargetOut
    region_code: str
    category: str | None
    excerpt: str
    anonymous: bool
    reporter: ReporterOut | None = Field(description="masked; unmask through POST …/reporter/unmask")
    reporter_unreadable: bool = Field(default=False, description="the reporter's data is under a key this service "
                                                                 "does not hold (or damaged): shown empty")
    received_at: datetime
    ack_due: datetime
    reply_due: datetime
    due_at: datetime = Field(description="the deadline that matters next; lists are sorted by it")
    due_provisional: bool
    acknowledged_at: datetime | None
    answered_at: datetime | None
    ack_overdue: bool
    reply_overdue: bool
    overdue: bool
    supporters: int = Field(description="citizens who said \"me too\" (我也遇到) on this report")
    hotspot_id: str | None = Field(description="the hotspot (共性事项) routing placed the report in, if any")


class TimelineOut(BaseModel):
    at: datetime
    status: str
    note: str
    public: bool
    actor: str | None


class AttachmentOut(BaseModel):
    id: str
    kind: str
    media_type: str
    size: int


class ReportDetail(ReportItem):
    content: str
    location: dict[str, Any] | None
    ticket_id: str | None
    reply: str | None
    answered_by: str | None
    rating_stars: int | None
    rating_comment: str | None
    closed_at: datetime | None
    attachments: list[AttachmentOut]
    timeline: list[TimelineOut]


class ReportPage(BaseModel):
    items: list[ReportItem]
    total: int
    page: int
    page_size: int


class ReplyIn(Strict):
    content: str = Field(min_length=1, max_length=domain.MAX_CONTENT)


class UnmaskIn(Strict):
    reason: str = Field(min_length=2, max_length=200, description="why the personal data is needed; audited")


def local(at: datetime | None) -> datetime | None:
    return at.astimezone(SHANGHAI) if at is not None else None


def flood_guard(runtime: Runtime, name: Literal["flood", "lookup"]) -> FloodGuard:
    limit = runtime.settings.flood_limit if name == "flood" else runtime.settings.lookup_limit
    return runtime.kept(f"intake.{name}", lambda: FloodGuard(limit))


async def limit_flood(request: Request, runtime: Runtime, who: Principal | None, bucket: str) -> None:
    if who is not None and who.roles & UNLIMITED_ROLES:
        return
    await flood_guard(runtime, "flood").check(bucket, source_of(request))


# ---- submit -------------------------------------------------------------------------------------


async def _attachments(session: AsyncSession, ids: list[str]) -> tuple[list[Attachment], list[FieldError]]:
    if not ids:
        return [], []
    found = {a.id: a for a in (await session.scalars(
        select(Attachment).where(Attachment.id.in_(ids)).with_for_update()
    )).all()}
    errors: list[FieldError] = []
    for i, attachment_id in enumerate(ids):
        attachment = found.get(attachment_id)
        if attachment is None:
            errors.append(FieldError(f"attachment_ids[{i}]", "附件不存在或已过期，请重新上传"))
        elif attachment.report_id is not None:
            errors.append(FieldError(f"attachment_ids[{i}]", "该附件已用于另一条反映"))
        elif ids.index(attachment_id) != i:
            errors.append(FieldError(f"attachment_ids[{i}]", "附件重复"))
    return list(found.values()), errors


async def _target(runtime: Runtime, body: ReportIn) -> tuple[targets.Target | None, list[FieldError]]:
    if body.code:
        target = await targets.resolve_code(runtime, body.code)
        if target is None:
            return None, [FieldError("code", "二维码无效或已失效，请重新扫描代表或联络站的二维码")]
        if body.region_code:
            if not body.region_code.startswith(target.region_code):
                return None, [FieldError("region_code", "所选地区不在该代表或联络站的服务范围内")]
            target = targets.Target(target.kind, target.id, body.region_code, target.name)
        return target, []
    if body.region_code:
        return targets.region_target(body.region_code), []
    return None, []


def _created(report: Report) -> dict[str, Any]:
    return ReportCreated(
        id=report.id, receipt_code=domain.display_receipt_code(report.receipt_code), status="submitted",
        target=TargetOut(kind=report.target_kind, id=report.target_id, region_code=report.region_code),  # type: ignore[arg-type]
        ack_due=local(report.ack_due), reply_due=local(report.reply_due),  # type: ignore[arg-type]
        due_provisional=report.due_provisional,
    ).model_dump(mode="json")


@router.post("/reports", status_code=201, response_model=ReportCreated,
             summary="A citizen's report (群众意见), from any channel, real-name or anonymous",
             responses=problems((409, "the Idempotency-Key was used for another body"),
                                (422, "invalid input, with the field at fault"),
                                (429, "too many reports from one source"),
                                (503, "the QR code cannot be checked right now; retry")))
async def submit_report(body: ReportIn, request: Request, who: OptionalPrincipal, runtime: RuntimeDep,
                        idempotency_key: IdempotencyKey = None) -> JSONResponse:
    await limit_flood(request, runtime, who, "reports")
    now = clock.now(runtime)
    book = await clock.book(runtime)
    reporter = None if body.reporter is None else domain.Reporter(body.reporter.name, body.reporter.phone,
                                                                    body.reporter.id_number)
    if idempotency_key is None and not body.attachment_ids:
        # Nothing to claim and nothing to lock: the one statement that writes the report is its own
        # transaction, without a session or the BEGIN and COMMIT round trips (bench/intake_submit.py).
        report, rules, due = await _checked_report(runtime, body, who, reporter, now, book)
        async with submission.autocommit(runtime) as connection:
            await submission.file_report(runtime, connection, report, rules=rules, due=due, now=now)
        return JSONResponse(_created(report), status_code=201)
    # An anonymous report must not be linkable to the account that sent it, not even through the key.
    scope = "reports" if body.anonymous or who is None else f"reports:{who.sub}"
    # Without a key no retry is compared with this body: it is not dumped for nothing.
    retry = idempotency.for_body(IDEMPOTENCY, scope, idempotency_key,
                                 body.model_dump(mode="json") if idempotency_key is not None else None)
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        attachments, errors = await _attachments(session, body.attachment_ids)
        report, rules, due = await _checked_report(runtime, body, who, reporter, now, book, attachments, errors)
        await submission.file_report(runtime, session, report, rules=rules, due=due, now=now, attachments=attachments)
        if attachments:
            await session.execute(update(Attachment).where(Attachment.id.in_([a.id for a in attachments]))
                                  .values(report_id=report.id))
        return await retry.answer(session, _created(report), 201)


async def _checked_report(runtime: Runtime, body: ReportIn, who: Principal | None, reporter: domain.Reporter | None,
                          now: datetime, book: clock.ClockBook, attachments: Sequence[Attachment] = (),
                          errors: Sequence[FieldError] = ()) -> tuple[Report, domain.ClockRules, domain.Deadlines]:
    """The new report with its rules and deadlines, or the 422 (or 403) that refuses it."""
    more, id_number = domain.check_submission(
        channel=body.channel, code=body.code, region_code=body.region_code, content=body.content,
        has_voice=any(a.kind == "voice" for a in attachments), anonymous=body.anonymous, reporter=reporter,
        received_at=body.received_at, roles=who.roles if who is not None else frozenset(), now=now,
    )
    found = [*errors, *more]
    target, target_errors = await _target(runtime, body) if not any(e.field == "code" for e in found) else (
        None, [])
    found += target_errors
    if found:
        raise Problem(422, domain_detail(found), title="Validation Failed", errors=found)
    assert target is not None
    if who is not None and "station_staff" in who.roles and not who.can_see(target.region_code):
        raise forbidden("该地区不在您的管辖范围内，不能代为登记。")
    rules = domain.rules_for(target.region_code, book.rules)
    due = domain.deadlines(book.calendar, rules, body.received_at or now)
    return _new_report(runtime, body, target, reporter, id_number, who, now, due), rules, due


def domain_detail(errors: list[FieldError]) -> str:
    return "提交的反映有误：" + "；".join(e.message for e in errors[:3]) + ("……" if len(errors) > 3 else "。")


def _new_report(runtime: Runtime, body: ReportIn, target: targets.Target, reporter: domain.Reporter | None,
                id_number: str | None, who: Principal | None, now: datetime, due: domain.Deadlines) -> Report:
    received = body.received_at or now
    report = Report(
        id=new_id(), receipt_code=domain.new_receipt_code(), channel=body.channel,
        target_kind=target.kind, target_id=target.id, deputy_id=target.deputy_id, station_id=target.station_id,
        region_code=target.region_code, category=body.category, content=body.content,
        location=body.location.model_dump() if body.location else None, anonymous=body.anonymous,
        registered_by=who.sub if who is not None and "station_staff" in who.roles else None,
        received_at=received, status="submitted", round=1, clock_start=received,
        ack_due=due.ack_due, reply_due=due.reply_due, due_provisional=due.provisional,
        ack_overdue=False, reply_overdue=False, version=1,
    )
    if not body.anonymous and reporter is not None:
        keyring = runtime.keyring
        report.reporter_name = encrypt(keyring, reporter.name, context=PII_CONTEXT["name"])
        report.reporter_phone = encrypt(keyring, reporter.phone, context=PII_CONTEXT["phone"])
        report.reporter_phone_index = blind_index(keyring, reporter.phone, kind="phone")
        if id_number:
            report.reporter_id_number = encrypt(keyring, id_number, context=PII_CONTEXT["id_number"])
    return report


# ---- who may see and handle ---------------------------------------------------------------------


async def deputy_stations(session: AsyncSession, deputy_id: str) -> list[str]:
    stations = await session.scalar(select(DeputyView.station_ids).where(DeputyView.id == deputy_id))
    return list(stations or [])


async def may_handle(session: AsyncSession, who: Principal, report: Report) -> bool:
    """Station staff of the report's region, or the deputy it is aimed at (directly or at their station)."""
    if "station_staff" in who.roles and who.can_see(report.region_code):
        return True
    if "deputy" in who.roles and who.deputy_id:
        if report.deputy_id == who.deputy_id:
            return True
        return report.station_id is not None and report.station_id in await deputy_stations(session, who.deputy_id)
    return False


async def may_view(session: AsyncSession, who: Principal, report: Report) -> bool:
    if "npc_staff" in who.roles and who.can_see(report.region_code):
        return True
    return await may_handle(session, who, report)


async def report_for(session: AsyncSession, who: Principal, report_id: str, *, handle: bool,
                      lock: bool = False) -> Report:
    report = await (lifecycle.lock(session, report_id) if lock else session.get(Report, report_id))
    if report is None:
        raise not_found("反映不存在。")
    allowed = await (may_handle(session, who, report) if handle else may_view(session, who, report))
    if not allowed:
        raise forbidden("该反映不在您的办理范围内。")
    return report


# ---- lists and detail ---------------------------------------------------------------------------


def overdue_now(now: datetime) -> tuple[Any, Any]:
    """(late to be taken up, late to be answered) as `overdue=true` lists them: past the deadline now, or
    marked late by the clocks in this round. Staff's figures by deputy and station count with the same."""
    ack = or_(Report.ack_overdue, and_(Report.acknowledged_at.is_(None), Report.status != "closed",
                                        Report.ack_due < now))
    reply = or_(Report.reply_overdue, and_(Report.status.in_(domain.OPEN_STATUSES), Report.reply_due < now))
    return ack, reply


def _masked(runtime: Runtime, report: Report) -> tuple[ReporterOut | None, bool]:
    """The reporter masked, and whether their data could not be decrypted (then shown empty)."""
    if report.anonymous or report.reporter_name is None or report.reporter_phone is None:
        return None, False
    keyring = runtime.keyring
    id_number = None if report.reporter_id_number is None else "已登记（已隐藏）"
    try:
        name = decrypt(keyring, report.reporter_name, context=PII_CONTEXT["name"])
        phone = decrypt(keyring, report.reporter_phone, context=PII_CONTEXT["phone"])
    except PiiError as exc:
        # One such row (written under a key this replica lacks, or damaged) must not take the whole list down.
        # The message names the key id or the kind of damage, never the data.
        log.error("report %s: the reporter's data cannot be decrypted: %s", report.id, exc)
        return ReporterOut(name="", phone="", id_number=id_number), True
    return ReporterOut(name=domain.mask_name(name), phone=domain.mask_phone(phone), id_number=id_number), False


def _item_fields(runtime: Runtime, report: Report, now: datetime) -> dict[str, Any]:
    ack_late = report.ack_overdue or (report.acknowledged_at is None and report.status != "closed"
                                      and report.ack_due < now)
    reply_late = report.reply_overdue or (report.status in domain.OPEN_STATUSES and report.reply_due < now)
    reporter, unreadable = _masked(runtime, report)
    return {
        "id": report.id, "channel": report.channel, "status": report.status, "round": report.round,
        "target": TargetOut(kind=report.target_kind, id=report.target_id,  # type: ignore[arg-type]
                            region_code=report.region_code),
        "region_code": report.region_code, "category": report.category,
        "excerpt": report.content[:80], "anonymous": report.anonymous, "reporter": reporter,
        "reporter_unreadable": unreadable,
        "received_at": local(report.received_at), "ack_due": local(report.ack_due),
        "reply_due": local(report.reply_due),
        "due_at": local(report.ack_due if report.acknowledged_at is None else report.reply_due),
        "due_provisional": report.due_provisional, "acknowledged_at": local(report.acknowledged_at),
        "answered_at": local(report.answered_at), "ack_overdue": ack_late, "reply_overdue": reply_late,
        "overdue": ack_late or reply_late, "supporters": report.supporters, "hotspot_id": report.hotspot_id,
    }


@router.get("/reports", response_model=ReportPage, summary="Reports within the caller's reach, by next deadline")
async def list_reports(
    who: Viewer,
    runtime: RuntimeDep,
    status: domain.Status | None = None,
    region_code: Annotated[str | None, Query(pattern=REGION_PATTERN)] = None,
    deputy_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    station_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    overdue: bool | None = None,
    open: Annotated[bool | None, Query(description="true: only reports still waiting for an answer "
                                                    "(submitted, acknowledged, dispatched)")] = None,
    received_from: Instant | None = None,
    received_to: Instant | None = None,
    sort: Annotated[Literal["due", "received", "-received"], Query(
        description="due: next deadline first (default); received: oldest first; -received: newest first")] = "due",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ReportPage:
    now = clock.now(runtime)
    async with runtime.database.sessions() as session:
        where: list[Any] = []
        if who.roles & {"station_staff", "npc_staff"}:
            if who.region:
                where.append(Report.region_code.startswith(who.region, autoescape=True))
        else:
            if not who.deputy_id:
                raise forbidden("登录凭证缺少代表身份（deputy_id）。")
            stations = await deputy_stations(session, who.deputy_id)
            where.append(or_(Report.deputy_id == who.deputy_id, Report.station_id.in_(stations)))
        if region_code:
            if not who.can_see(region_code) and not region_code.startswith(who.region):
                raise forbidden("该地区不在您的管辖范围内。")
            where.append(Report.region_code.startswith(region_code, autoescape=True))
        if status:
            where.append(Report.status == status)
        if open is not None:
            is_open = Report.status.in_(domain.OPEN_STATUSES)
            where.append(is_open if open else ~is_open)
        if deputy_id:
            where.append(Report.deputy_id == deputy_id)
        if station_id:
            where.append(Report.station_id == station_id)
        if received_from:
            where.append(Report.received_at >= received_from)
        if received_to:
            where.append(Report.received_at < received_to)
        if overdue is not None:
            ack_late, reply_late = overdue_now(now)
            late = or_(ack_late, reply_late)
            where.append(late if overdue else ~late)
        due_at = case((Report.acknowledged_at.is_(None), Report.ack_due), else_=Report.reply_due)
        total = await session.scalar(select(func.count()).select_from(Report).where(*where))
        order = {"due": (due_at, Report.id), "received": (Report.received_at, Report.id),
                 "-received": (Report.received_at.desc(), Report.id.desc())}[sort]
        rows = (await session.scalars(
            select(Report).where(*where).order_by(*order)
            .offset((page - 1) * page_size).limit(page_size)
        )).all()
    return ReportPage(items=[ReportItem(**_item_fields(runtime, r, now)) for r in rows], total=int(total or 0),
                      page=page, page_size=page_size)


async def detail(runtime: Runtime, session: AsyncSession, report: Report) -> ReportDetail:
    timeline = (await session.scalars(
        select(TimelineEntry).where(TimelineEntry.report_id == report.id).order_by(TimelineEntry.seq)
    )).all()
    attachments = (await session.scalars(
        select(Attachment).where(Attachment.report_id == report.id).order_by(Attachment.created_at)
    )).all()
    return ReportDetail(
        **_item_fields(runtime, report, clock.now(runtime)),
        content=report.content, location=report.location, ticket_id=report.ticket_id,
        reply=report.reply_content, answered_by=report.answered_by, rating_stars=report.rating_stars,
        rating_comment=report.rating_comment, closed_at=local(report.closed_at),
        attachments=[AttachmentOut(id=a.id, kind=a.kind, media_type=a.media_type, size=a.size) for a in attachments],
        timeline=[TimelineOut(at=local(t.at), status=t.status, note=t.note, public=t.public,  # type: ignore[arg-type]
                              actor=t.actor) for t in timeline],
    )


@router.get("/reports/{report_id}", response_model=ReportDetail,
            summary="One report with its whole timeline (internal notes included); the reporter masked",
            responses=problems(404))
async def get_report(report_id: ReportId, who: Viewer, runtime: RuntimeDep) -> ReportDetail:
    async with runtime.database.sessions() as session:
        report = await report_for(session, who, report_id, handle=False)
        return await detail(runtime, session, report)


# ---- handling -----------------------------------------------------------------------------------


def _role_of(who: Principal, report: Report) -> Literal["deputy", "station_staff"]:
    """Who acted, for the record and for points: staff acting for a deputy do not earn the deputy's."""
    if "deputy" in who.roles and who.deputy_id is not None and report.deputy_id == who.deputy_id:
        return "deputy"
    return "station_staff" if "station_staff" in who.roles else "deputy"


@router.post("/reports/{report_id}/acknowledge", response_model=ReportDetail,
             summary="The deputy takes the report up (受理), within 2 working days",
             responses=problems(404, (409, "the report is closed")))
async def acknowledge_report(report_id: ReportId, who: Handler, runtime: RuntimeDep) -> ReportDetail:
    at = clock.now(runtime)
    async with runtime.transaction() as session:
        report = await report_for(session, who, report_id, handle=True, lock=True)
        try:
            await lifecycle.acknowledge(runtime, session, report, by=_role_of(who, report), at=at)
        except domain.Refused as exc:
            raise Problem(409, exc.message) from exc
        await runtime.record_audit(session, who, "report.acknowledged", subject_type="report", subject_id=report.id,
                                   region_code=report.region_code, detail={"as": _role_of(who, report)})
        return await detail(runtime, session, report)


@router.post("/reports/{report_id}/reply", response_model=ReportDetail,
             summary="The answer to the citizen (答复), within 7 working days",
             responses=problems(404, (409, "already answered in this round, or closed, or the Idempotency-Key "
                                               "was used for another body")))
async def reply_report(report_id: ReportId, body: ReplyIn, who: Handler, runtime: RuntimeDep,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    at = clock.now(runtime)
    book = await clock.book(runtime)
    scope = f"reply:{report_id}:{who.sub}"
    retry = idempotency.for_body(IDEMPOTENCY, scope, idempotency_key, body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        report = await report_for(session, who, report_id, handle=True, lock=True)
        role = _role_of(who, report)
        try:
            await lifecycle.answer(runtime, session, report, book, content=body.content, by=role, at=at)
        except domain.Refused as exc:
            raise Problem(409, exc.message) from exc
        await runtime.record_audit(session, who, "report.replied", subject_type="report", subject_id=report.id,
                                   region_code=report.region_code, detail={"as": role, "round": report.round})
        out = (await detail(runtime, session, report)).model_dump(mode="json")
        return await retry.answer(session, out, 200)


@router.post("/reports/{report_id}/reporter/unmask", response_model=ReporterOut,
             summary="A real-name reporter's name, phone and ID number in clear; every call is audited",
             responses=problems((404, "unknown report, or an anonymous one: there is nothing to unmask"),
                                (503, "the reporter's data is under a key this service does not hold; nothing "
                                      "was disclosed or recorded")))
async def unmask_reporter(report_id: ReportId, body: UnmaskIn, request: Request, who: Handler,
                          runtime: RuntimeDep) -> ReporterOut:
    async with runtime.transaction() as session:
        report = await report_for(session, who, report_id, handle=True)
        if report.anonymous or report.reporter_name is None or report.reporter_phone is None:
            raise not_found("匿名反映没有登记个人信息。")
        # Decrypted first: a disclosure that cannot happen must not be on the audit log as one.
        keyring = runtime.keyring
        try:
            shown = ReporterOut(
                name=decrypt(keyring, report.reporter_name, context=PII_CONTEXT["name"]),
                phone=decrypt(keyring, report.reporter_phone, context=PII_CONTEXT["phone"]),
                id_number=None if report.reporter_id_number is None
                else decrypt(keyring, report.reporter_id_number, context=PII_CONTEXT["id_number"]),
            )
        except PiiError as exc:
            log.error("report %s: the reporter's data cannot be decrypted for unmasking: %s", report.id, exc)
            raise Problem(503, "该反映人的信息暂时无法解密（密钥缺失或数据损坏），请联系系统管理员。") from exc
        session.add(Unmasking(report_id=report.id, actor_sub=who.sub, actor_roles=sorted(who.roles),
                              reason=body.reason, source=source_of(request)))
        await runtime.record_audit(
            session, who, "report.reporter_unmasked", subject_type="report", subject_id=report.id,
            region_code=report.region_code,
            detail={"reason": body.reason, "fields": ["name", "phone"]
                    + (["id_number"] if report.reporter_id_number is not None else [])})
        return shown

