"""Rules of a suggestion's life (代表建议): deadlines, colors, outcome classes, evaluation, look-backs.

Plain functions on plain values. The workflow calls them with `workflow.now()`, so they must stay
deterministic: no clock, no I/O, no calendar data that could change under a running workflow.
Deadlines in this module are counted in calendar months and days, as the rules for suggestions
state them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from itertools import pairwise

from dateutil.relativedelta import relativedelta

# Deadlines fall at the end of a day in China; a fixed offset, since China has kept no summer time
# since 1991 and a tz database lookup would be I/O inside a workflow.
CHINA = timezone(timedelta(hours=8), "CST")

REPLY_MONTHS = 3  # 答复期限: three months after assignment
MAX_REPLY_MONTHS = 6  # one extension, to at most six months after assignment
REASSIGNED_REPLY_MONTHS = 1  # 二次交办: a new reply within one month
ASSISTING_VIEW_MONTHS = 1  # assisting units give their view to the lead unit within a month
YELLOW_DAYS = 15  # due within 15 days: yellow
REVIEW_MONTH, REVIEW_DAY = 11, 30  # the yearly look-back (回头看) is due by 30 November
TERM_YEARS = 5


class Status(StrEnum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"
    REPLIED = "replied"
    REASSIGNED = "reassigned"
    # A second dissatisfaction: the congress director's meeting (主任会议) decides what happens next.
    REFERRED = "referred"
    FOLLOWING_UP = "following_up"
    CLOSED = "closed"


class Color(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    BLUE = "blue"
    GREY = "grey"


class Evaluation(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


class Stage(StrEnum):
    """三见面: the unit meets the deputy before, during and after handling."""

    BEFORE = "before"
    DURING = "during"
    AFTER = "after"


class DirectorDecision(StrEnum):
    REASSIGN = "reassign"
    FOLLOW_UP = "follow_up"
    CLOSE = "close"


class RuleError(ValueError):
    """An action the rules do not allow in the suggestion's present state; `message` is for people (zh-CN)."""

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field_name


@dataclass(frozen=True)
class OutcomeClass:
    """One class of reply outcome, e.g. A (solved), B (planned), C (kept for reference)."""

    code: str
    label: str
    # solved: a satisfied evaluation closes the suggestion; otherwise it is followed up every year.
    solved: bool = False
    # the reply must name the year by which the matter will be solved
    needs_planned_year: bool = False
    # kept for reference: followed up yearly too, shown grey
    reference: bool = False


DEFAULT_OUTCOMES: tuple[OutcomeClass, ...] = (
    OutcomeClass("A", "已解决或当年解决", solved=True),
    OutcomeClass("B", "列入计划，三年内解决", needs_planned_year=True),
    OutcomeClass("C", "留作参考", reference=True),
)
PLANNED_YEARS_MAX = 3


def outcome_of(classes: tuple[OutcomeClass, ...] | list[OutcomeClass], code: str) -> OutcomeClass:
    for cls in classes:
        if cls.code == code:
            return cls
    allowed = "、".join(c.code for c in classes)
    raise RuleError(f"答复结果应为 {allowed} 之一。", "outcome")


def validate_outcome_scheme(classes: list[OutcomeClass]) -> None:
    """A region's own classes (some provinces use A/B/C/D): distinct codes and exactly one way to solve."""
    codes = [c.code for c in classes]
    if not classes or len(set(codes)) != len(codes):
        raise RuleError("答复结果分类不能为空，代码不能重复。", "classes")
    if not any(c.solved for c in classes):
        raise RuleError("答复结果分类中至少要有一类表示已解决。", "classes")
    if any(c.solved and (c.reference or c.needs_planned_year) for c in classes):
        raise RuleError("表示已解决的分类不能同时是留作参考或列入计划。", "classes")


# ---- time ------------------------------------------------------------------------------------


def end_of_day(day: date) -> datetime:
    """The last second of `day` in China, as an aware UTC time."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=CHINA).astimezone(UTC)


def china_date(at: datetime) -> date:
    return at.astimezone(CHINA).date()


def months_after(at: datetime, months: int) -> datetime:
    """Due at the end of the same day `months` later in China (31 Jan + 1 month → 28/29 Feb)."""
    return end_of_day(china_date(at) + relativedelta(months=months))


def reply_due(assigned_at: datetime) -> datetime:
    return months_after(assigned_at, REPLY_MONTHS)


def latest_extension(assigned_at: datetime) -> datetime:
    return months_after(assigned_at, MAX_REPLY_MONTHS)


def review_due(year: int) -> datetime:
    return end_of_day(date(year, REVIEW_MONTH, REVIEW_DAY))


def first_review_year(replied_at: datetime) -> int:
    """The look-back of the year after the reply: a reply needs time to be acted on."""
    return china_date(replied_at).year + 1


def year_end(year: int) -> datetime:
    return end_of_day(date(year, 12, 31))


def term_of(year: int, first_year: int, number: int = 1) -> int:
    """The term (届) a year belongs to, when the term numbered `number` began in `first_year`;
    a congress sits five years a term."""
    return number + (year - first_year) // TERM_YEARS


# While a suggestion is followed up its yearly look-back is what can be late; in every other status
# only the reply due time can (the projection keeps both, and a stale one must not colour it).
LOOK_BACK_STATUSES = frozenset({Status.FOLLOWING_UP})


def watched_deadline(status: str, due_at: datetime | None, next_review_at: datetime | None) -> datetime | None:
    """The deadline a suggestion's colour follows in `status`."""
    return next_review_at if status in LOOK_BACK_STATUSES else due_at


def color(status: str, now: datetime, *, due_at: datetime | None, next_review_at: datetime | None,
          reference: bool) -> Color:
    """green on time, yellow due within 15 days, red overdue, blue closed, grey kept for reference.

    The one colour rule: the detail shows it, and `queries.color_is` is its SQL form for lists."""
    if status == Status.CLOSED:
        return Color.BLUE
    if reference and status == Status.FOLLOWING_UP:
        return Color.GREY
    deadline = watched_deadline(status, due_at, next_review_at)
    if deadline is None:
        return Color.GREEN
    if now > deadline:
        return Color.RED
    if deadline - now <= timedelta(days=YELLOW_DAYS):
        return Color.YELLOW
    return Color.GREEN


# ---- transitions -----------------------------------------------------------------------------


def require(condition: bool, message: str, field_name: str | None = None) -> None:
    if not condition:
        raise RuleError(message, field_name)


def check_extension(status: str, extended: bool, assigned_at: datetime | None, current_due: datetime | None,
                    months: int) -> datetime:
    """The new due time of a one-time extension, at most six months after assignment."""
    require(status in (Status.ASSIGNED,), "只有已交办、尚未答复的建议可以延期。")
    require(not extended, "每件建议只能延期一次。")
    require(1 <= months <= MAX_REPLY_MONTHS - REPLY_MONTHS, f"延期月数应为 1 至 {MAX_REPLY_MONTHS - REPLY_MONTHS}。",
            "months")
    assert assigned_at is not None and current_due is not None
    return min(months_after(current_due, months), latest_extension(assigned_at))


def check_reply(status: str, *, key: bool, meetings: set[str], outcome: OutcomeClass, planned_year: int | None,
                reply_year: int) -> None:
    require(status in (Status.ASSIGNED, Status.REASSIGNED), "只有已交办的建议可以答复。")
    if key:
        missing = [s for s in Stage if s.value not in meetings]
        require(not missing, "重点建议须先完成“三见面”（办理前、办理中、办理后）才能答复。", "meetings")
    if outcome.needs_planned_year:
        require(planned_year is not None, f"{outcome.code} 类答复须写明计划解决年度。", "planned_year")
        assert planned_year is not None
        require(reply_year <= planned_year <= reply_year + PLANNED_YEARS_MAX,
                f"计划解决年度应在 {reply_year} 至 {reply_year + PLANNED_YEARS_MAX} 年之间。", "planned_year")


@dataclass(frozen=True)
class AfterEvaluation:
    status: Status
    # a new reply due (re-assignment), else None
    due_at: datetime | None
    referred: bool = False


def after_evaluation(result: Evaluation, outcome: OutcomeClass, dissatisfied_before: int,
                     at: datetime) -> AfterEvaluation:
    """Satisfied closes a solved item and follows up the rest; dissatisfied re-assigns, twice refers."""
    if result == Evaluation.DISSATISFIED:
        if dissatisfied_before >= 1:
            return AfterEvaluation(Status.REFERRED, None, referred=True)
        return AfterEvaluation(Status.REASSIGNED, months_after(at, REASSIGNED_REPLY_MONTHS))
    if outcome.solved:
        return AfterEvaluation(Status.CLOSED, None)
    return AfterEvaluation(Status.FOLLOWING_UP, review_due(first_review_year(at)))


# ---- text ------------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def redact(text: str) -> str:
    """Published text keeps no phone or ID number that a deputy or unit wrote into it."""
    text = _ID_NUMBER.sub(lambda m: m.group(0)[:4] + "*" * 10 + m.group(0)[-4:], text)
    return _PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)


def bigrams(text: str) -> set[str]:
    chars = [c for c in text if c.isalnum()]
    return {a + b for a, b in pairwise(chars)}


def similarity(a: str, b: str) -> float:
    """Jaccard index of character bigrams: robust for Chinese without a dictionary."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


REPEAT_SIMILARITY = 0.45


@dataclass
class Earlier:
    id: str
    title: str
    content: str
    outcome: str | None
    status: str
    score: float = field(default=0.0)


def closest_repeat(title: str, content: str, earlier: list[Earlier]) -> Earlier | None:
    """The earlier suggestion this one repeats (反复提), if any is close enough."""
    best: Earlier | None = None
    text = f"{title}\n{content}"
    for item in earlier:
        item.score = similarity(text, f"{item.title}\n{item.content}")
        if item.score >= REPEAT_SIMILARITY and (best is None or item.score > best.score):
            best = item
    return best
