"""The report clocks: reminders, deadlines and automatic closing, fired from the `timers` table.

Every replica runs this scanner. It takes due timers with FOR UPDATE SKIP LOCKED and deletes
them in the same transaction that applies their effect, so each fires exactly once across
replicas and restarts: a crash before the commit leaves the timer to fire on the next pass.
A report costs a few index entries, not a workflow: the scanner's rate is that of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from sqlalchemy import delete, func, select, tuple_

from services.intake import clock, lifecycle
from services.intake.domain import TimerKind
from services.intake.models import Report, Timer
from shared.service import Runtime

log = logging.getLogger("minyi.intake.timers")

BATCH = 200


async def overdue(runtime: Runtime) -> dict[str, int]:
    """Open reports past their acknowledgement or answer deadline, for `minyi_overdue{kind}`."""
    at = clock.now(runtime)
    async with runtime.sessions()() as session:
        late_ack, late_answer = (await session.execute(select(
            func.count().filter(Report.acknowledged_at.is_(None), Report.ack_due < at),
            func.count().filter(Report.answered_at.is_(None), Report.reply_due < at),
        ).where(Report.closed_at.is_(None)))).one()
    return {"report_acknowledgement": int(late_ack), "report_answer": int(late_answer)}


async def fire_due(runtime: Runtime, batch: int = BATCH) -> int:
    """Apply one batch of due timers; returns how many fired."""
    book = await clock.book(runtime)
    at = clock.now(runtime)
    async with runtime.transaction() as session:
        due = (await session.execute(
            select(Timer.report_id, Timer.kind).where(Timer.fire_at <= at)
            .order_by(Timer.fire_at).limit(batch).with_for_update(skip_locked=True)
        )).all()
        if not due:
            return 0
        await session.execute(delete(Timer).where(tuple_(Timer.report_id, Timer.kind).in_(
            [(d.report_id, d.kind) for d in due])))
        ids = sorted({d.report_id for d in due})
        # Reports in id order, so two scanners never lock the same pair in opposite orders.
        reports = {r.id: r for r in (await session.scalars(
            select(Report).where(Report.id.in_(ids)).order_by(Report.id).with_for_update()
        )).all()}
        for item in due:
            report = reports.get(item.report_id)
            if report is not None:
                await lifecycle.fire(runtime, session, report, book, kind=cast(TimerKind, item.kind), at=at)
    return len(due)


def worker(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    async def report_clocks() -> None:
        poll = runtime.settings.clock_poll_seconds
        while True:
            try:
                fired = await fire_due(runtime)
            except Exception as exc:
                # The database may be away for a while; the timers wait in it and nothing is lost.
                log.warning("report clocks: a pass failed (%s: %s); trying again in %.0fs",
                            type(exc).__name__, exc, poll)
                fired = 0
            if fired:
                log.info("report clocks: %d timers fired", fired)
            if fired < BATCH:
                await asyncio.sleep(poll)

    return report_clocks
