"""State changes of a report, applied in the caller's transaction: the row, its timeline, its
timers and its `intake.report.*` event move together or not at all.

The HTTP API, the bus handlers and the clock scanner all change reports through here, so a
report answered by its deputy and one resolved by the grid platform end up the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain
from services.intake.clock import ClockBook
from services.intake.models import GridTicket, Report, TimelineEntry, Timer
from shared.service import Runtime

AnsweredBy = Literal["deputy", "station_staff", "grid"]
# Who an overdue report is escalated to (催办), for whatever delivers the notices.
ESCALATE_TO = ("station_staff", "npc_staff")


async def lock(session: AsyncSession, report_id: str) -> Report | None:
    return await session.get(Report, report_id, with_for_update=True, populate_existing=True)


def note(session: AsyncSession, report: Report, status: str, text: str, *, public: bool,
         actor: str | None = None, at: datetime | None = None) -> None:
    entry = TimelineEntry(report_id=report.id, status=status, note=text, public=public, actor=actor)
    if at is not None:
        entry.at = at
    session.add(entry)


async def set_timers(session: AsyncSession, report_id: str, timers: dict[domain.TimerKind, datetime]) -> None:
    """Set or move timers (a new report's first timers are written by `submission`)."""
    if not timers:
        return
    rows = [{"report_id": report_id, "kind": k, "fire_at": at} for k, at in timers.items()]
    stmt = insert(Timer).values(rows)
    await session.execute(stmt.on_conflict_do_update(index_elements=["report_id", "kind"],
                                                     set_={"fire_at": stmt.excluded.fire_at}))


async def cancel_timers(session: AsyncSession, report_id: str, *kinds: domain.TimerKind) -> None:
    await session.execute(delete(Timer).where(Timer.report_id == report_id, Timer.kind.in_(kinds)))


async def pending_timers(session: AsyncSession, report_id: str) -> dict[str, datetime]:
    rows = await session.execute(select(Timer.kind, Timer.fire_at).where(Timer.report_id == report_id))
    return {r.kind: r.fire_at for r in rows}


def event_data(report: Report, **extra: Any) -> dict[str, Any]:
    """What every `intake.report.*` event says about its report; never anything about the reporter."""
    return {
        "report_id": report.id,
        "status": report.status,
        "round": report.round,
        "region_code": report.region_code,
        "target": {"kind": report.target_kind, "id": report.target_id},
        "deputy_id": report.deputy_id,
        "station_id": report.station_id,
        **extra,
    }


async def emit(runtime: Runtime, session: AsyncSession, report: Report, name: str, **extra: Any) -> None:
    await runtime.emit(session, f"intake.report.{name}", event_data(report, **extra), subject=report.id)


async def acknowledge(runtime: Runtime, session: AsyncSession, report: Report, *, by: str, at: datetime) -> bool:
    """The deputy (or station staff for them) took the report up. False when it had been already."""
    if not domain.check_acknowledge(report.status, report.acknowledged_at is not None):
        return False
    report.acknowledged_at = at
    report.status = domain.advanced(report.status, "acknowledged")
    report.version += 1
    await cancel_timers(session, report.id, "ack_remind", "ack_due")
    note(session, report, "acknowledged", domain.NOTES["acknowledged"], public=True, actor=by, at=at)
    await emit(runtime, session, report, "acknowledged", by=by, at=at.isoformat(),
               on_time=domain.is_on_time(at, report.ack_due), ack_due=report.ack_due.isoformat())
    return True


async def answer(runtime: Runtime, session: AsyncSession, report: Report, book: ClockBook, *, content: str,
                 by: AnsweredBy, at: datetime) -> None:
    domain.check_reply(report.status)
    if report.acknowledged_at is None:
        # An answer is the fullest way of taking a report up.
        await acknowledge(runtime, session, report, by=by, at=at)
    report.status = "answered"
    report.answered_at = at
    report.answered_by = by
    report.reply_content = content
    report.version += 1
    await cancel_timers(session, report.id, "reply_remind", "reply_due")
    rules = domain.rules_for(report.region_code, book.rules)
    await set_timers(session, report.id, {"auto_close": domain.auto_close_at(at, rules)})
    note(session, report, "answered", content, public=True, actor=by, at=at)
    await emit(runtime, session, report, "answered", by=by, at=at.isoformat(),
               on_time=domain.is_on_time(at, report.reply_due), reply_due=report.reply_due.isoformat(),
               content=content)


async def dispatch(runtime: Runtime, session: AsyncSession, report: Report, *, ticket_id: str,
                   platform_id: str | None, at: datetime) -> bool:
    if report.ticket_id == ticket_id or report.status in ("answered", "closed"):
        return False
    if report.ticket_id is None and await heard_from_grid(session, report.id):
        return False  # a late announcement: the ticket's own news came first and handed the report back
    report.ticket_id = ticket_id
    report.status = domain.advanced(report.status, "dispatched")
    report.version += 1
    note(session, report, "dispatched", domain.NOTES["dispatched"], public=True, actor="grid", at=at)
    await emit(runtime, session, report, "dispatched", ticket_id=ticket_id, platform_id=platform_id,
               at=at.isoformat())
    return True


async def superseded_by(session: AsyncSession, report: Report, ticket_id: str, version: int | None) -> int | None:
    """The version of the ticket's news applied before that makes this one old news, or None when
    this one is the newest (it is then recorded as applied; the caller holds the report's lock).

    Routing's events can arrive out of order (several relays, several consumers, a redelivery), so
    the ticket's version decides, not the order of arrival; the same version told again under a new
    event id is old news too. An event without a version comes from a routing not yet upgraded: it
    is applied as it comes and recorded nowhere, so events keep flowing during a rolling upgrade."""
    if version is None:
        return None
    stmt = insert(GridTicket).values(ticket_id=ticket_id, report_id=report.id, version=version)
    stmt = stmt.on_conflict_do_update(index_elements=["ticket_id"], set_={"version": stmt.excluded.version},
                                      where=GridTicket.version < stmt.excluded.version)
    if (await session.execute(stmt.returning(GridTicket.version))).first() is not None:
        return None
    newer = await session.scalar(select(GridTicket.version).where(GridTicket.ticket_id == ticket_id))
    return int(newer) if newer is not None else version


async def heard_from_grid(session: AsyncSession, report_id: str) -> bool:
    """Whether a grid platform's ticket has left its mark on the report already (routing opens one a report)."""
    found = await session.scalar(select(TimelineEntry.seq).where(TimelineEntry.report_id == report_id,
                                                                 TimelineEntry.actor == "grid").limit(1))
    return found is not None


async def grid_update(runtime: Runtime, session: AsyncSession, report: Report, book: ClockBook, *,
                      ticket_id: str, status: str, note_text: str | None, at: datetime) -> None:
    """A grid platform's word on its ticket, as routing passes it on."""
    if report.ticket_id not in (None, ticket_id):
        return  # a ticket the report no longer follows (returned earlier, sent again since)
    if status == "resolved":
        if report.status in ("answered", "closed"):
            # The deputy answered first; the platform's result goes on record, not to the citizen twice.
            note(session, report, report.status, f"基层治理平台办结：{note_text or ''}".rstrip("："), public=False,
                 actor="grid", at=at)
            return
        await answer(runtime, session, report, book, content=note_text or domain.NOTES["grid_resolved"],
                     by="grid", at=at)
    elif status in ("returned", "failed"):
        if report.status in ("answered", "closed"):
            return
        report.status = domain.status_after_return(report.acknowledged_at is not None)
        report.ticket_id = None
        report.version += 1
        note(session, report, report.status, domain.NOTES[f"grid_{status}"], public=True, actor="grid", at=at)
        why = f"{'退回' if status == 'returned' else '拒收'}说明：{note_text or '（未说明）'}"
        note(session, report, report.status, why, public=False, actor="grid", at=at)
    elif status in ("accepted", "in_progress"):
        note(session, report, report.status, domain.NOTES[f"grid_{status}"], public=True, actor="grid", at=at)


async def rate(runtime: Runtime, session: AsyncSession, report: Report, book: ClockBook, *, stars: int,
               comment: str | None, at: datetime) -> domain.RatingOutcome:
    outcome = domain.rate(report.status, report.rated_at is not None, stars, comment)
    report.rating_stars = stars
    report.rating_comment = comment
    report.rated_at = at
    report.version += 1
    await cancel_timers(session, report.id, "auto_close")
    note(session, report, "answered", domain.rated_note(stars), public=True, actor="citizen", at=at)
    await emit(runtime, session, report, "rated", stars=stars, reopened=outcome.reopen, at=at.isoformat(),
               answered_by=report.answered_by)
    if outcome.reopen:
        await _reopen(runtime, session, report, book, at)
    else:
        await close(runtime, session, report, at=at, reason="rated")
    return outcome


async def _reopen(runtime: Runtime, session: AsyncSession, report: Report, book: ClockBook, at: datetime) -> None:
    """A new round: the answer clock starts again from now; the rating of the old round stays on record."""
    rules = domain.rules_for(report.region_code, book.rules)
    due = domain.deadlines(book.calendar, rules, at)
    report.round += 1
    report.status = "acknowledged"
    report.clock_start = at
    report.reply_due = due.reply_due
    report.due_provisional = due.provisional
    report.reply_overdue = False
    report.answered_at = report.answered_by = report.reply_content = None
    report.rating_stars = report.rating_comment = report.rated_at = None
    report.ticket_id = None
    timers = domain.timers_for_new_round(due, rules, acknowledged=True, now=at)
    await set_timers(session, report.id, timers)
    note(session, report, "acknowledged", domain.NOTES["reopened"], public=True, actor="citizen", at=at)


async def close(runtime: Runtime, session: AsyncSession, report: Report, *, at: datetime, reason: str,
                text: str = domain.NOTES["closed"]) -> None:
    report.status = "closed"
    report.closed_at = at
    report.version += 1
    await cancel_timers(session, report.id, "auto_close", "ack_remind", "ack_due", "reply_remind", "reply_due")
    note(session, report, "closed", text, public=True, actor="system", at=at)
    await emit(runtime, session, report, "closed", reason=reason, at=at.isoformat(),
               stars=report.rating_stars)


async def fire(runtime: Runtime, session: AsyncSession, report: Report, book: ClockBook, *,
               kind: domain.TimerKind, at: datetime) -> None:
    """A timer came due. Each kind re-checks the report: the state may have moved since it was set."""
    if kind in ("ack_remind", "ack_due") and (report.acknowledged_at is not None or report.status == "closed"):
        return
    if kind in ("reply_remind", "reply_due") and report.status in ("answered", "closed"):
        return
    if kind == "ack_remind" or kind == "reply_remind":
        due = report.ack_due if kind == "ack_remind" else report.reply_due
        note(session, report, report.status, domain.NOTES[kind], public=False, actor="system", at=at)
        await emit(runtime, session, report, "reminder", kind=kind.removesuffix("_remind"), due_at=due.isoformat(),
                   at=at.isoformat())
    elif kind == "ack_due" or kind == "reply_due":
        which = kind.removesuffix("_due")
        if which == "ack":
            report.ack_overdue = True
        else:
            report.reply_overdue = True
        report.version += 1
        due = report.ack_due if which == "ack" else report.reply_due
        note(session, report, report.status, domain.NOTES[f"{which}_overdue"], public=False, actor="system", at=at)
        await emit(runtime, session, report, "overdue", kind=which, due_at=due.isoformat(), at=at.isoformat(),
                   escalate_to=list(ESCALATE_TO))
    elif kind == "auto_close":
        if report.status != "answered":
            return
        rules = domain.rules_for(report.region_code, book.rules)
        await close(runtime, session, report, at=at, reason="not_rated",
                    text=domain.NOTES["auto_closed"].format(days=rules.close_days))

