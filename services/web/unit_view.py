"""What a handling unit's pages show, worked out from the suggestions service's answers. Pure.

The filters of the list (kept in the URL), the words for statuses, colours and timeline steps, which
forms a unit gets for a suggestion (from its state and the unit's part in it: lead or assisting),
the three meetings and the assisting views as recorded, and the rows of the exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import urlencode

from services.web.unit_calls import Entry, Suggestion
from services.web.words import SHANGHAI, beijing, date_cn, parse_time

PAGE_SIZE = 20
# An export holds at most this many suggestions; a unit's yearly list is far shorter.
EXPORT_MAX = 5000

STATUS = {
    "submitted": "待交办",
    "assigned": "办理中",
    "replied": "已答复，待代表评价",
    "reassigned": "二次交办，重新办理",
    "referred": "已提交主任会议",
    "following_up": "跟踪办理（回头看）",
    "closed": "已办结",
}
# Colours always come with words: a colour alone tells nothing to a colour-blind reader or a printout.
COLOR = {
    "green": "正常",
    "yellow": "即将到期",
    "red": "超期",
    "blue": "已办结",
    "grey": "留作参考",
}
STAGES = {"before": "办理前", "during": "办理中", "after": "办理后"}
STEP = {
    "submitted": "代表提出建议",
    "assigned": "交办",
    "extended": "延期",
    "extension_requested": "申请延期",
    "meeting": "三见面",
    "assisting_view": "协办意见",
    "replied": "答复",
    "evaluated": "代表评价",
    "reassigned": "二次交办",
    "director_decision": "主任会议决定",
    "reviewed": "回头看进展",
    "closed": "办结",
    "overdue": "超期",
    "carried_over": "转入下一年度",
}
EVALUATION = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
DEADLINE = {"reply": "答复", "assisting": "协办意见", "review": "回头看"}
KIND = {"session": "大会建议", "interim": "闭会期间建议"}


@dataclass(frozen=True)
class OutcomeChoice:
    code: str
    label: str
    needs_planned_year: bool = False
    solved: bool = False


# The classes a region uses unless it set its own (the suggestions service's defaults).
DEFAULT_OUTCOMES = (
    OutcomeChoice("A", "已解决或当年解决", solved=True),
    OutcomeChoice("B", "列入计划，三年内解决", needs_planned_year=True),
    OutcomeChoice("C", "留作参考"),
)


# ---- the list's filters -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    color: str | None = None
    year: int | None = None
    page: int = 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def query(self, **changes: object) -> str:
        """This list's URL query with `changes` (page=…, status=None …): filters stay in the URL."""
        values: dict[str, object] = {"status": self.status, "color": self.color, "year": self.year,
                                     "page": self.page, **changes}
        kept = {k: v for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)}
        return urlencode(kept)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.status, self.color, self.year))


def parse_filters(query: Mapping[str, str]) -> Filters:
    """Filters from the URL; a value that is not one of the choices is dropped rather than refused,
    so an old bookmark still opens the list."""
    status = query.get("status") or None
    color = query.get("color") or None
    year_text = (query.get("year") or "").strip()
    page_text = (query.get("page") or "").strip()
    year = int(year_text) if year_text.isdigit() and 2000 <= int(year_text) <= 2100 else None
    page = int(page_text) if page_text.isdigit() and 1 <= int(page_text) <= 10_000 else 1
    return Filters(status=status if status in STATUS else None, color=color if color in COLOR else None,
                   year=year, page=page)


# ---- one suggestion ----------------------------------------------------------------------------


Role = Literal["lead", "assisting"]


def role_of(s: Suggestion, unit_id: str | None) -> Role | None:
    if unit_id is not None and unit_id == s.lead_unit_id:
        return "lead"
    if unit_id is not None and unit_id in s.assisting_unit_ids:
        return "assisting"
    return None


HANDLING = ("assigned", "reassigned")


@dataclass(frozen=True)
class Forms:
    """Which forms the unit gets on a suggestion's page. The service checks each action again."""

    meeting: bool
    view: bool
    reply: bool
    extension: bool
    progress: bool
    spending: bool


def forms_for(s: Suggestion, role: Role | None) -> Forms:
    lead = role == "lead"
    handling = s.status in HANDLING
    return Forms(
        meeting=lead and handling,
        view=role == "assisting" and handling,
        reply=lead and handling,
        extension=lead and s.status == "assigned" and not s.extended and s.extension_request is None,
        progress=lead and s.status == "following_up",
        spending=lead and s.micro and s.status != "submitted",
    )


@dataclass(frozen=True)
class MeetingRecord:
    stage: str
    label: str
    at: str | None
    note: str | None


def meetings_of(s: Suggestion) -> list[MeetingRecord]:
    """The three meetings in order, each with its latest record (a stage recorded again replaces it).
    A re-assignment starts the meetings over, so only records after the last one count. A meeting
    step's `at` is the meeting's own time (the service puts the step's data over its recording time)."""
    latest: dict[str, Entry] = {}
    for entry in s.timeline:
        if entry.kind == "reassigned":
            latest.clear()
        elif entry.kind == "meeting" and entry.stage in STAGES:
            latest[entry.stage] = entry
    return [MeetingRecord(stage, label, latest[stage].at if stage in latest else None,
                          latest[stage].note if stage in latest else None)
            for stage, label in STAGES.items()]


@dataclass(frozen=True)
class ViewRecord:
    unit_id: str
    at: str
    content: str


def views_of(s: Suggestion) -> list[ViewRecord]:
    """The assisting units' views as the service let this unit see them, oldest first."""
    return [ViewRecord(e.unit_id or "", e.at, e.note or "") for e in s.timeline
            if e.kind == "assisting_view"]


def progress_of(s: Suggestion) -> list[Entry]:
    return [e for e in s.timeline if e.kind == "reviewed"]


def extension_of(s: Suggestion) -> Entry | None:
    return next((e for e in s.timeline if e.kind == "extended"), None)


def outcome_choices(s: Suggestion) -> tuple[OutcomeChoice, ...]:
    """The reply's classes: those the suggestion is handled under (its region's scheme, as the service
    answers it), the default ones from a service that names none; a class the suggestion already
    carries stays offered."""
    choices = tuple(OutcomeChoice(c.code, c.label, needs_planned_year=c.needs_planned_year, solved=c.solved)
                    for c in s.outcome_classes) or DEFAULT_OUTCOMES
    if s.outcome and s.outcome not in {c.code for c in choices}:
        choices = (*choices, OutcomeChoice(s.outcome, s.outcome_label or s.outcome))
    return choices


def codes(choices: Sequence[OutcomeChoice], *, planned: bool = False, solved: bool = False) -> str:
    """The codes of the classes that need a planned year (or mean solved), for hints: "B、C"."""
    return "、".join(c.code for c in choices if (planned and c.needs_planned_year) or (solved and c.solved))


def step_words(entry: Entry, unit_names: Mapping[str, str]) -> str:
    """What a timeline step says beyond its kind: the stage, the unit, the new due date, the result …"""
    parts: list[str] = []
    if entry.kind == "meeting" and entry.stage:
        parts.append(STAGES.get(entry.stage, entry.stage))
    if entry.kind == "assisting_view" and entry.unit_id:
        parts.append(unit_names.get(entry.unit_id, entry.unit_id))
    if entry.kind == "extension_requested" and entry.months:
        parts.append(f"{entry.months} 个月，等待人大常委会审批")
    if entry.kind in ("assigned", "extended", "reassigned") and entry.due_at:
        parts.append(f"答复期限 {date_cn(entry.due_at)}")
    if entry.kind == "overdue" and entry.deadline:
        parts.append(f"{DEADLINE.get(entry.deadline, entry.deadline)}已超期")
    if entry.kind in ("replied", "reviewed", "closed") and entry.outcome:
        parts.append(f"{entry.outcome} 类")
    if entry.kind == "replied" and entry.planned_year:
        parts.append(f"计划 {entry.planned_year} 年解决")
    if entry.kind == "reviewed" and entry.review_year:
        parts.append(f"{entry.review_year} 年度")
    if entry.kind == "evaluated" and entry.result:
        parts.append(EVALUATION.get(entry.result, entry.result))
    return "，".join(parts)


# ---- what a form sent -------------------------------------------------------------------------


def parse_meeting_time(text: str, now: datetime) -> datetime | None:
    """A meeting's time as typed: `2026-03-05T14:30` (the browser's date-and-time field), with a space,
    or a date alone (taken as 09:00, or now when that is still ahead today). Beijing time; None when
    it is no time at all."""
    text = text.strip().replace(" ", "T")
    if not text:
        return None
    try:
        if "T" in text:
            at = datetime.fromisoformat(text)
        else:
            day = datetime.fromisoformat(text).date()
            at = datetime.combine(day, time(9, 0))
    except ValueError:
        return None
    in_beijing = beijing(at)
    if in_beijing is None:
        return None
    at = in_beijing
    here = now.astimezone(SHANGHAI)
    if "T" not in text and at.date() == here.date() and at > here:
        at = here.replace(second=0, microsecond=0)
    return at


def parse_amount(text: str) -> str | None:
    """Yuan as typed (`1,200.5`, `1200元`) in the service's form (`1200.50`); None when it is not a
    positive amount in yuan and fen."""
    cleaned = text.strip().replace(",", "").replace("，", "").removesuffix("元").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None
    # The size first: quantizing a huge number (1e30) raises instead of answering.
    if not amount.is_finite() or amount <= 0 or amount >= 10 ** 12 or amount != amount.quantize(Decimal("0.01")):
        return None
    return f"{amount:.2f}"


def planned_year(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and 2000 <= int(text) <= 2100 else None


# ---- exports ----------------------------------------------------------------------------------


EXPORT_HEADERS = ("建议编号", "标题", "年度", "建议类别", "本单位承办方式", "主办单位", "协办单位", "办理状态",
                  "时限状态", "交办日期", "答复期限", "是否延期", "答复类别", "答复日期", "答复是否公开",
                  "下次回头看期限")


def _day(value: str | None) -> str:
    at = parse_time(value)
    return "" if at is None else at.strftime("%Y-%m-%d")


def export_row(s: Suggestion, unit_id: str | None, names: Mapping[str, str]) -> list[str | int]:
    role = role_of(s, unit_id)
    return [
        s.id, s.title, s.year, KIND.get(s.kind, s.kind) + ("（急难小）" if s.micro else ""),
        {"lead": "主办", "assisting": "协办"}.get(role or "", ""),
        names.get(s.lead_unit_id or "", s.lead_unit_id or ""),
        "、".join(names.get(u, u) for u in s.assisting_unit_ids),
        STATUS.get(s.status, s.status), COLOR.get(s.color, s.color),
        _day(s.assigned_at), _day(s.due_at), "是" if s.extended else "否",
        (f"{s.outcome} {s.outcome_label or ''}".strip() if s.outcome else ""),
        _day(s.reply.at) if s.reply else "", ("是" if s.reply.public else "否") if s.reply else "",
        _day(s.next_review_at),
    ]


def export_rows(found: Sequence[Suggestion], unit_id: str | None, names: Mapping[str, str]) -> list[list[str | int]]:
    return [export_row(s, unit_id, names) for s in found]
