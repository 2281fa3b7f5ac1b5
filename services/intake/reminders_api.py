"""催办: station or congress staff urge the deputy to act on an open report.

`POST /v1/reports/{id}/reminders` writes the reminder, the report's timeline entries and the
`intake.report.reminded` event in one transaction, and records it on the audit log. A report is
urged at most once an hour, whoever asks: a deputy receiving the same push from three clerks in
a minute learns nothing more, and learns to ignore them.

What the citizen sees: a public entry "联络站已催促代表尽快办理" (or the congress staff's). Someone
waiting on an overdue report wants to know it has not been forgotten, and that it was chased is
true and harmless. The staff's own note is not shown to the citizen: it is written for the deputy
and may name people or internal matters, so it goes in a second, internal entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.intake import clock, domain, lifecycle
from services.intake.api import IdempotencyKey, ReportId, RuntimeDep, Strict, local
from services.intake.models import IDEMPOTENCY, Reminder
from shared import idempotency
from shared.auth import Principal, require_roles
from shared.errors import Problem, forbidden, not_found
from shared.problems import COMMON, problems

router = APIRouter(prefix="/v1", tags=["intake"], responses=COMMON)

Urger = Annotated[Principal, Depends(require_roles("station_staff", "npc_staff"))]
# However many staff look at the same overdue list, the deputy hears about a report once an hour.
MIN_INTERVAL = timedelta(hours=1)
PUBLIC_NOTE = {"station_staff": "联络站已催促代表尽快办理。", "npc_staff": "人大常委会工作人员已催促代表尽快办理。"}


class ReminderIn(Strict):
    note: str | None = Field(default=None, max_length=200,
                             description="a word for the deputy (internal: the citizen never sees it)")


class ReminderOut(BaseModel):
    report_id: str
    at: datetime
    by: Literal["station_staff", "npc_staff"]
    note: str | None
    next_allowed_at: datetime = Field(description="the report can be urged again from then on")


def urged_as(who: Principal) -> Literal["station_staff", "npc_staff"]:
    return "station_staff" if "station_staff" in who.roles else "npc_staff"


def too_soon(last: datetime | None, now: datetime) -> datetime | None:
    """When the report may be urged again, or None when it may be now."""
    if last is None or now - last >= MIN_INTERVAL:
        return None
    return last + MIN_INTERVAL


@router.post("/reports/{report_id}/reminders", status_code=201, response_model=ReminderOut,
             summary="催办: urge the deputy to act on an open report (station and congress staff of its region)",
             responses=problems(404, (403, "the report is outside the caller's region"),
                                (409, "the report is answered or closed, it was urged less than an hour ago, or "
                                      "the Idempotency-Key was used for another body")))
async def remind(report_id: ReportId, body: ReminderIn, who: Urger, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    now = clock.now(runtime)
    note = body.note or None
    retry = idempotency.for_body(IDEMPOTENCY, f"reminder:{report_id}:{who.sub}", idempotency_key,
                                 body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        # The report's row lock serialises reminders of one report, so two clerks cannot both pass the hour check.
        report = await lifecycle.lock(session, report_id)
        if report is None:
            raise not_found("反映不存在。")
        if not who.can_see(report.region_code):
            raise forbidden("该反映不在您的管辖范围内，不能催办。")
        if report.status not in domain.OPEN_STATUSES:
            raise Problem(409, "这条反映已经答复或办结，不需要再催办。")
        last = await session.scalar(select(func.max(Reminder.at)).where(Reminder.report_id == report.id))
        if (again := too_soon(last, now)) is not None:
            wait = max(1, int((again - now).total_seconds()))
            before, after = f"{local(last):%H:%M}", f"{local(again):%H:%M}"
            raise Problem(409, f"这条反映在 {before} 已经催办过，每条反映一小时内只能催办一次，"
                               f"请在 {after} 以后再催办。", headers={"Retry-After": str(wait)})
        role = urged_as(who)
        session.add(Reminder(report_id=report.id, at=now, actor_sub=who.sub, actor_role=role, note=note))
        lifecycle.note(session, report, report.status, PUBLIC_NOTE[role], public=True, actor=role, at=now)
        if note:
            lifecycle.note(session, report, report.status, f"催办说明：{note}", public=False, actor=role, at=now)
        await lifecycle.emit(runtime, session, report, "reminded", by=role, note=note, at=now.isoformat())
        await runtime.record_audit(session, who, "report.reminded", subject_type="report", subject_id=report.id,
                                   region_code=report.region_code, detail={"as": role, "with_note": bool(note)})
        out = ReminderOut(report_id=report.id, at=local(now), by=role, note=note,  # type: ignore[arg-type]
                          next_allowed_at=local(now + MIN_INTERVAL))  # type: ignore[arg-type]
        return await retry.answer(session, out.model_dump(mode="json"), 201)
