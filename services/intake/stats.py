"""Figures of citizens' reports: the public board's months, staff's year, and what each count means.

Plain values, no I/O; the counting itself is one grouped query (services/intake/stats_api.py, and
by deputy and station services/intake/target_stats_api.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.calendar import SHANGHAI

# Every count, as the board and the OpenAPI document explain it. A month is a calendar month in
# Asia/Shanghai, and a report belongs to the month it was received in.
DEFINITIONS: dict[str, str] = {
    "received": "reports received in the month",
    "ack_decided": "reports acknowledged (at any time), plus those still unacknowledged whose acknowledgement "
                   "deadline (ack_due) has passed: an open overdue report counts against the rate",
    "ack_on_time": "reports acknowledged at or before ack_due",
    "reply_decided": "reports answered (at any time), plus those still unanswered whose reply deadline "
                     "(reply_due) has passed",
    "reply_on_time": "reports answered at or before reply_due",
    "rated": "reports the citizen rated",
    "satisfied": "reports rated 4 or 5 stars",
    "closed": "reports closed",
    "open_overdue": "reports not closed that are past ack_due unacknowledged or past reply_due unanswered",
}
COUNTS: tuple[str, ...] = tuple(DEFINITIONS)
MAX_MONTHS = 36


@dataclass(frozen=True)
class Window:
    months: list[str]  # "YYYY-MM", oldest first
    start: datetime  # the first month's first instant, Asia/Shanghai
    end: datetime  # the instant after the last month


def _month_start(index: int) -> datetime:
    """The first instant of month number `index` (year * 12 + month - 1) in Asia/Shanghai."""
    year, month = divmod(index, 12)
    return datetime(year, month + 1, 1, tzinfo=SHANGHAI)


def month_window(now: datetime, months: int) -> Window:
    """The last `months` calendar months in Asia/Shanghai, the current one included."""
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be 1–{MAX_MONTHS}")
    local = now.astimezone(SHANGHAI)
    current = local.year * 12 + local.month - 1
    first = current - months + 1
    return Window(months=[f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, current + 1)],
                  start=_month_start(first), end=_month_start(current + 1))


def year_window(year: int) -> tuple[datetime, datetime]:
    """The first instant of `year` and of the next in Asia/Shanghai: reports received within count for it."""
    return datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)


def fill(window: Window, counted: Mapping[str, Mapping[str, int]]) -> list[dict[str, int | str]]:
    """One entry per month of the window, oldest first; a month without reports has zeros."""
    return [{"month": month, **{name: int(counted.get(month, {}).get(name, 0)) for name in COUNTS}}
            for month in window.months]
