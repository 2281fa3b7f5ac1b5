"""Working days and deadlines on the Chinese statutory calendar.

Statutory time limits for handling the public's reports and deputies' suggestions are counted in
working days (工作日), so weekends that are make-up working days (调休) count and statutory holidays do
not.  The statutory data comes from ``chinese_calendar``; years it does not cover yet can be supplied
by staff as an override table.  Everything here is pure: callers load overrides from storage and pass
them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = [
    "SHANGHAI",
    "Deadline",
    "WorkCalendar",
    "WorkingDayResult",
    "add_calendar_months",
    "known_years",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Deadlines run to the last second of the due day, local time, as the regulations phrase it.
_END_OF_DAY = time(23, 59, 59)
_ONE_DAY = timedelta(days=1)


@cache
def known_years() -> range:
    """Years for which ``chinese_calendar`` has statutory data (it raises for any other year)."""
    # The package validates against the span of its own tables, so derive the span the same way
    # instead of hard-coding it; a package upgrade then extends coverage with no code change.
    years = [d.year for d in chinese_calendar.holidays] + [d.year for d in chinese_calendar.workdays]
    return range(min(years), max(years) + 1)


@lru_cache(maxsize=4096)
def _statutory_working_day(d: date) -> bool:
    # The package recomputes its supported range on every call; deadlines for every report hit the
    # same few weeks of dates, so memoising keeps the hot path cheap.
    return bool(chinese_calendar.is_workday(d))


def _require_plain_date(d: date, name: str) -> date:
    # datetime is a subclass of date, but quietly taking .date() of it would use whatever zone it
    # happens to be in; the day of receipt must be the Shanghai day, which deadline() works out.
    if isinstance(d, datetime):
        raise TypeError(f"{name} must be a date, not a datetime; use WorkCalendar.deadline for instants")
    return d


@dataclass(frozen=True)
class WorkingDayResult:
    """The working day reached, and whether an unknown year's guess went into finding it."""

    day: date
    provisional: bool


@dataclass(frozen=True)
class Deadline:
    """End of the due day in Asia/Shanghai; ``provisional`` means recompute once the year is loaded."""

    at: datetime
    provisional: bool


@dataclass(frozen=True)
class WorkCalendar:
    """Statutory calendar plus staff-supplied overrides.

    ``overrides`` maps a date to whether it is a working day and wins over everything else, so a
    region's local holiday or a correction to the package's data can be expressed.  ``loaded_years``
    are years whose calendar staff loaded completely: their days not listed in ``overrides`` are
    ordinary weekdays/weekends and results are definitive.  For a year covered by
    ``chinese_calendar`` the package stays the base and loading that year adds nothing.
    """

    # Not part of the hash: mappings are unhashable, and equal calendars still hash equally.
    overrides: Mapping[date, bool] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    loaded_years: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        # Copy so that a caller mutating its dict later cannot change a calendar that claims to be
        # frozen (and cannot change deadlines already handed out from it).
        table: dict[date, bool] = {}
        for key, value in self.overrides.items():
            if isinstance(key, datetime) or not isinstance(key, date):
                # A datetime key would never match the date lookups and be silently ignored.
                raise TypeError(f"override keys must be dates, got {key!r}")
            if not isinstance(value, bool):
                raise TypeError(f"override for {key.isoformat()} must be a bool, got {value!r}")
            table[key] = value
        object.__setattr__(self, "overrides", MappingProxyType(table))
        object.__setattr__(self, "loaded_years", frozenset(self.loaded_years))

    def is_known(self, d: date) -> bool:
        """Whether ``d``'s year is covered by the statutory data or was loaded by staff."""
        return d.year in known_years() or d.year in self.loaded_years

    def is_working_day(self, d: date) -> bool:
        _require_plain_date(d, "d")
        override = self.overrides.get(d)
        if override is not None:
            return override
        if d.year in known_years():
            return _statutory_working_day(d)
        # Loaded years list only their special days; for a year nobody has loaded this is the
        # best guess, and callers learn that through the provisional flag.
        return d.weekday() < 5

    def add_working_days(self, start: date, n: int) -> WorkingDayResult:
        """The ``n``-th working day after ``start``; ``start`` itself never counts.

        ``n == 0`` returns ``start`` unchanged (not provisional, since no day was inspected), which
        keeps ``working_days_between(start, add_working_days(start, n).day) == n`` for every n >= 0.
        """
        _require_plain_date(start, "start")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        day = start
        remaining = n
        provisional = False
        while remaining:
            day += _ONE_DAY
            if not self.is_known(day):
                provisional = True
            if self.is_working_day(day):
                remaining -= 1
        return WorkingDayResult(day=day, provisional=provisional)

    def deadline(self, received_at: datetime, working_days: int) -> Deadline:
        """Due instant for something received at ``received_at`` with a limit of ``working_days``.

        The day of receipt is the Shanghai calendar day and never counts, whatever the hour and
        whether or not it is a working day.
        """
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            # A naive time could be UTC from a server or local from a form; guessing shifts the
            # day of receipt, and with it the deadline, by a day.
            raise ValueError("received_at must be timezone-aware")
        day_of_receipt = received_at.astimezone(SHANGHAI).date()
        result = self.add_working_days(day_of_receipt, working_days)
        return Deadline(
            at=datetime.combine(result.day, _END_OF_DAY, tzinfo=SHANGHAI),
            provisional=result.provisional,
        )

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``; 0 when ``end <= start``."""
        _require_plain_date(start, "start")
        _require_plain_date(end, "end")
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += _ONE_DAY
        return count


def add_calendar_months(start: datetime, months: int) -> datetime:
    """Same wall-clock time ``months`` later, on the same day of month clamped to the month's end.

    Negative ``months`` go back in time.  The tzinfo of ``start`` is kept.
    """
    month_index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(month_index, 12)
    month = month0 + 1
    # Computed by hand rather than via the stdlib ``calendar`` module, which this module's own name
    # can shadow when shared/ ends up on sys.path.
    last_day = 31 if month == 12 else (date(year, month + 1, 1) - _ONE_DAY).day
    return start.replace(year=year, month=month, day=min(start.day, last_day))
