"""The calendar and clock rules in force, read from the database and kept for a short while.

Deadlines are computed on every submission; reading two small tables each time would cost more
than the rest of the request. A change by staff reaches every replica within `TTL`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain import ClockRules
from services.intake.models import CalendarDay, CalendarYear, ClockRule
from shared.calendar import WorkCalendar
from shared.service import Runtime

TTL = 30.0
_STATE_KEY = "intake.clock"


@dataclass(frozen=True)
class ClockBook:
    calendar: WorkCalendar
    rules: dict[str, ClockRules]
    loaded: float


async def load(runtime: Runtime) -> ClockBook:
    async with runtime.database.sessions() as session:
        return await load_in(session)


async def load_in(session: AsyncSession) -> ClockBook:
    """As `session` sees them: inside a transaction that changes them, the changed ones."""
    days = (await session.execute(select(CalendarDay.day, CalendarDay.working))).all()
    years = (await session.scalars(select(CalendarYear.year))).all()
    rules = (await session.scalars(select(ClockRule))).all()
    return ClockBook(
        calendar=WorkCalendar(overrides={d.day: d.working for d in days}, loaded_years=frozenset(years)),
        rules={r.region_prefix: ClockRules(r.ack_days, r.reply_days, r.remind_hour, r.close_days) for r in rules},
        loaded=time.monotonic(),
    )


async def book(runtime: Runtime, session: AsyncSession | None = None) -> ClockBook:
    """The book in force; when it is stale, read again through `session` if given (a caller inside a
    transaction), else through a connection of its own."""
    current: ClockBook | None = runtime.state.get(_STATE_KEY)
    if current is None or time.monotonic() - current.loaded > TTL:
        current = await (load_in(session) if session is not None else load(runtime))
        runtime.state[_STATE_KEY] = current
    return current


def forget(runtime: Runtime) -> None:
    """After this replica changed the calendar or the rules: read them again on next use."""
    runtime.state.pop(_STATE_KEY, None)


def now(runtime: Runtime) -> datetime:
    """The service's idea of now; tests move it to see reminders and deadlines pass."""
    override = runtime.state.get("intake.now")
    return override() if override is not None else datetime.now(UTC)
