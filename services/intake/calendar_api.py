"""Staff-maintained clock settings: a year's holiday calendar, and regions' own working-day limits.

The statutory calendar is published each year around November; until the package that carries
it is upgraded, staff load the new year here. Deadlines counted into that year before it was
loaded are marked provisional and counted again when it arrives.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import clock, domain, lifecycle
from services.intake.api import REGION_PATTERN, RuntimeDep, Strict
from services.intake.models import CalendarDay, CalendarYear, ClockRule, Report
from shared.auth import Principal, require_region, require_roles
from shared.calendar import WorkCalendar, known_years
from shared.errors import FieldError, Problem, not_found
from shared.problems import COMMON, problems
from shared.service import Runtime

router = APIRouter(prefix="/v1", tags=["intake"], responses=COMMON)

Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles("admin", "npc_staff"))]
Year = Annotated[int, Path(ge=2000, le=2100)]


class CalendarIn(Strict):
    holidays: list[date] = Field(max_length=60, description="statutory holidays, including those on weekdays")
    workdays: list[date] = Field(default_factory=list, max_length=20,
                                 description="make-up working days (调休), usually weekends")


class CalendarOut(BaseModel):
    year: int
    source: str = Field(description="`statutory` (built in) or `loaded` (by staff)")
    holidays: list[date]
    workdays: list[date]
    recomputed: int = Field(default=0, description="open reports whose provisional deadlines were counted again")


class RulesIn(Strict):
    ack_days: int = Field(ge=1, le=30)
    reply_days: int = Field(ge=1, le=60)
    remind_hour: int = Field(default=9, ge=0, le=23)
    close_days: int = Field(default=15, ge=1, le=90)


class RulesOut(RulesIn):
    region_prefix: str


def _check_year(year: int, body: CalendarIn) -> list[FieldError]:
    errors = [FieldError(f"holidays[{i}]", f"日期不在 {year} 年内") for i, d in enumerate(body.holidays)
              if d.year != year]
    errors += [FieldError(f"workdays[{i}]", f"日期不在 {year} 年内") for i, d in enumerate(body.workdays)
               if d.year != year]
    errors += [FieldError(f"workdays[{i}]", "同一天不能既是节假日又是调休工作日")
               for i, d in enumerate(body.workdays) if d in set(body.holidays)]
    return errors


@router.put("/calendar/{year}", response_model=CalendarOut,
            summary="Load a year's statutory holidays and make-up working days (for a year not built in)",
            responses=problems((409, "the year's calendar is built in")))
async def load_calendar(year: Year, body: CalendarIn, who: Admin, runtime: RuntimeDep) -> CalendarOut:
    if year in known_years():
        raise Problem(409, f"{year} 年的法定节假日已内置，无需导入。")
    errors = _check_year(year, body)
    if errors:
        raise Problem(422, "日历数据有误。", title="Validation Failed", errors=errors)
    async with runtime.transaction() as session:
        before = await _loaded_year(session, year)
        await session.execute(delete(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                                        CalendarDay.day <= date(year, 12, 31)))
        days = [{"day": d, "working": False} for d in set(body.holidays)]
        days += [{"day": d, "working": True} for d in set(body.workdays)]
        if days:
            await session.execute(insert(CalendarDay).values(days))
        stmt = insert(CalendarYear).values(year=year, loaded_by=who.sub)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["year"], set_={"loaded_by": who.sub, "loaded_at": stmt.excluded.loaded_at}))
        await session.flush()
        recomputed = await _recount_provisional(runtime, session)
        # The calendar moves every statutory deadline: who loaded what over what is kept. It belongs to no region.
        after = {"holidays": _iso(body.holidays), "workdays": _iso(body.workdays)}
        await runtime.record_audit(session, who, "calendar.loaded", subject_type="calendar", subject_id=str(year),
                                   detail={"before": before, "after": after, "recomputed": recomputed})
    clock.forget(runtime)
    return CalendarOut(year=year, source="loaded", holidays=sorted(set(body.holidays)),
                       workdays=sorted(set(body.workdays)), recomputed=recomputed)


def _iso(days: list[date]) -> list[str]:
    return [d.isoformat() for d in sorted(set(days))]


async def _loaded_year(session: AsyncSession, year: int) -> dict[str, list[str]] | None:
    """What staff had loaded for the year before, as the audit log keeps it; None when nothing was."""
    if await session.get(CalendarYear, year) is None:
        return None
    days = (await session.execute(select(CalendarDay.day, CalendarDay.working).where(
        CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)))).all()
    return {"holidays": _iso([d.day for d in days if not d.working]),
            "workdays": _iso([d.day for d in days if d.working])}


async def _recount_provisional(runtime: Runtime, session: AsyncSession) -> int:
    """Count again the deadlines of open reports that were guessed; move their timers with them."""
    book = await clock.load_in(session)
    now = clock.now(runtime)
    reports = (await session.scalars(
        select(Report).where(Report.due_provisional, Report.status != "closed").with_for_update()
    )).all()
    for report in reports:
        rules = domain.rules_for(report.region_code, book.rules)
        due = domain.deadlines(book.calendar, rules, report.clock_start)
        acknowledged = report.acknowledged_at is not None
        if not acknowledged:
            report.ack_due = due.ack_due
        if report.status in domain.OPEN_STATUSES:
            report.reply_due = due.reply_due
            timers = domain.timers_for_new_round(due, rules, acknowledged=acknowledged, now=now)
            await lifecycle.cancel_timers(session, report.id, "ack_remind", "ack_due", "reply_remind", "reply_due")
            await lifecycle.set_timers(session, report.id, timers)
        report.due_provisional = due.provisional
        report.version += 1
    return len(reports)


@router.get("/calendar/{year}", response_model=CalendarOut, summary="A year's holidays and make-up working days",
            responses=problems((404, "neither built in nor loaded yet")))
async def get_calendar(year: Year, who: Staff, runtime: RuntimeDep) -> CalendarOut:
    book = await clock.book(runtime)
    if year in known_years():
        source = "statutory"
    elif year in book.calendar.loaded_years:
        source = "loaded"
    else:
        raise not_found(f"{year} 年的法定节假日尚未导入；在导入前，该年的期限按周一至周五计算并标记为暂定。")
    calendar: WorkCalendar = book.calendar
    days = [date.fromordinal(o) for o in range(date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal() + 1)]
    holidays = [d for d in days if d.weekday() < 5 and not calendar.is_working_day(d)]
    workdays = [d for d in days if d.weekday() >= 5 and calendar.is_working_day(d)]
    return CalendarOut(year=year, source=source, holidays=holidays, workdays=workdays)


RegionPrefix = Annotated[str, Path(pattern=REGION_PATTERN)]


@router.put("/clock-rules/{region_prefix}", response_model=RulesOut,
            summary="A region's own working-day limits, for reports received from now on")
async def put_rules(region_prefix: RegionPrefix, body: RulesIn, who: Staff, runtime: RuntimeDep) -> RulesOut:
    require_region(who, region_prefix)
    if body.reply_days < body.ack_days:
        raise Problem(422, "答复期限不能短于受理期限。", title="Validation Failed",
                      errors=[FieldError("reply_days", "答复期限不能短于受理期限")])
    values = {**body.model_dump(), "updated_by": who.sub}
    async with runtime.transaction() as session:
        earlier = await session.get(ClockRule, region_prefix, with_for_update=True)
        before = None if earlier is None else RulesIn(
            ack_days=earlier.ack_days, reply_days=earlier.reply_days, remind_hour=earlier.remind_hour,
            close_days=earlier.close_days).model_dump()
        stmt = insert(ClockRule).values(region_prefix=region_prefix, **values)
        await session.execute(stmt.on_conflict_do_update(index_elements=["region_prefix"], set_=values))
        # The limits move the deadlines of every report received from now on in the region.
        await runtime.record_audit(session, who, "clock_rules.changed", subject_type="clock_rules",
                                   subject_id=region_prefix, region_code=region_prefix,
                                   detail={"before": before, "after": body.model_dump()})
    clock.forget(runtime)
    return RulesOut(region_prefix=region_prefix, **body.model_dump())


@router.get("/clock-rules", response_model=list[RulesOut], summary="Regions' own limits (the rest use 2 and 7)")
async def list_rules(who: Staff, runtime: RuntimeDep) -> list[RulesOut]:
    async with runtime.database.sessions() as session:
        rows = (await session.scalars(select(ClockRule).order_by(ClockRule.region_prefix))).all()
    return [RulesOut(region_prefix=r.region_prefix, ack_days=r.ack_days, reply_days=r.reply_days,
                     remind_hour=r.remind_hour, close_days=r.close_days)
            # Rules of the caller's region and below, and those above it that apply to it.
            for r in rows if who.can_see(r.region_prefix) or who.region.startswith(r.region_prefix)]

