"""The figures of the public statistics page, worked out from intake's monthly counts. Pure functions.

A rate over a handful of reports says little and swings wildly from month to month, so a rate is
shown only when its denominator reaches `MIN_SAMPLE`; below that the page says "样本不足" and the
chart leaves a gap. The on-time rates take intake's `*_decided` counts as they are: those already
hold the reports still open past their deadline, which an on-time rate over closed reports alone
would leave out and so look better than the truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from services.web import words
from services.web.upstreams import MonthStats

# Fewer reports than this in a denominator, and the rate is not shown.
MIN_SAMPLE = 10
NOT_ENOUGH = "样本不足"
# Stars a deputy can hold (scoring caps them at ten, one for every ten points).
MAX_STARS = 10

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})(?:\D|$)")


@dataclass(frozen=True)
class Rate:
    """A share of `denominator`, with the text a page shows for it."""

    numerator: int
    denominator: int
    minimum: int = MIN_SAMPLE

    @property
    def enough(self) -> bool:
        return self.denominator >= self.minimum and self.denominator > 0

    @property
    def value(self) -> float | None:
        """The rate from 0 to 1; None below the minimum sample."""
        return self.numerator / self.denominator if self.enough else None

    @property
    def text(self) -> str:
        return words.percent(self.numerator, self.denominator) if self.enough else NOT_ENOUGH

    @property
    def counts(self) -> str:
        """The sample behind the rate, e.g. "19/20", so a reader can judge it."""
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class MonthRow:
    """One line of the monthly table."""

    month: str
    label: str
    short_label: str
    # 2026年: said once under a chart's axis for each year it spans.
    year_label: str
    received: int
    ack: Rate
    reply: Rate
    satisfaction: Rate
    solved: Rate
    open_overdue: int


def month_parts(month: str) -> tuple[int, int] | None:
    """(year, month) of "2026-11" or "2026-11-01"; None for anything else."""
    found = _MONTH.match(month.strip())
    if found is None:
        return None
    year, number = int(found.group(1)), int(found.group(2))
    return (year, number) if 1 <= number <= 12 else None


def month_label(month: str) -> str:
    """2026年11月; a month in a form not understood is shown as it came."""
    parts = month_parts(month)
    return month if parts is None else f"{parts[0]}年{parts[1]}月"


def short_month_label(month: str) -> str:
    """11月, for a chart's axis where the year is said once."""
    parts = month_parts(month)
    return month if parts is None else f"{parts[1]}月"


def year_label(month: str) -> str:
    parts = month_parts(month)
    return "" if parts is None else f"{parts[0]}年"


def month_row(m: MonthStats, *, minimum: int = MIN_SAMPLE) -> MonthRow:
    return MonthRow(
        month=m.month, label=month_label(m.month), short_label=short_month_label(m.month),
        year_label=year_label(m.month),
        received=m.received,
        ack=Rate(m.ack_on_time, m.ack_decided, minimum),
        reply=Rate(m.reply_on_time, m.reply_decided, minimum),
        satisfaction=Rate(m.satisfied, m.rated, minimum),
        solved=Rate(m.closed, m.received, minimum),
        open_overdue=m.open_overdue,
    )


def monthly_table(months: Iterable[MonthStats], *, minimum: int = MIN_SAMPLE) -> list[MonthRow]:
    """The months oldest first, whatever order they came in, so the table reads like the charts."""
    ordered = sorted(months, key=lambda m: month_parts(m.month) or (0, 0))
    return [month_row(m, minimum=minimum) for m in ordered]


def total_row(months: Iterable[MonthStats], *, minimum: int = MIN_SAMPLE) -> MonthRow:
    """All the months together: counts add up, rates are taken over the sums (not averaged)."""
    listed = list(months)

    def total(name: str) -> int:
        return sum(int(getattr(m, name)) for m in listed)

    # Each month counts its own reports still open past their deadline, so the sum is all of them.
    summed = MonthStats(month="", **{name: total(name) for name in (
        "received", "ack_decided", "ack_on_time", "reply_decided", "reply_on_time", "rated", "satisfied",
        "closed", "open_overdue")})
    return replace(month_row(summed, minimum=minimum), label="合计", short_label="合计", year_label="")


def period_label(rows: Sequence[MonthRow]) -> str:
    """2026年1月至2026年12月, or the one month, or "" when there is none."""
    if not rows:
        return ""
    first, last = rows[0].label, rows[-1].label
    return first if first == last else f"{first}至{last}"


def received_summary(rows: Sequence[MonthRow]) -> str:
    """What the bars of received reports say, in one sentence for those who cannot see them."""
    if not rows:
        return "这段时间没有数据。"
    busiest = max(rows, key=lambda r: r.received)
    latest = rows[-1]
    text = f"{period_label(rows)}，共收到反映 {sum(r.received for r in rows)} 件"
    if busiest.received:
        text += f"，最多的是{busiest.label}（{busiest.received} 件）"
    return f"{text}；{latest.label}收到 {latest.received} 件。各月数字见下方表格。"


def rates_summary(rows: Sequence[MonthRow]) -> str:
    """What the on-time lines say for the latest month, in words."""
    if not rows:
        return "这段时间没有数据。"
    latest = rows[-1]
    return (f"{period_label(rows)}。{latest.label}：2 个工作日内受理的比例 {latest.ack.text}，"
            f"7 个工作日内答复的比例 {latest.reply.text}。样本不足的月份不画点。各月数字见下方表格。")


def stars_text(stars: int, *, most: int = MAX_STARS) -> str:
    """★★★☆☆…: filled stars, then empty ones up to the most a deputy can hold."""
    filled = max(0, min(most, stars))
    return "★" * filled + "☆" * (most - filled)


def star_groups(stars: int, *, most: int = MAX_STARS, per: int = 5) -> list[str]:
    """The stars in fives, "★★★★★", "★★★☆☆": a phone shows ten as two short lines, not one wide one."""
    text = stars_text(stars, most=most)
    return [text[i:i + per] for i in range(0, len(text), per)]


def points_text(points: float) -> str:
    """86.5, or 90 for a whole number: a trailing ".0" reads as a different kind of figure."""
    text = f"{points:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
