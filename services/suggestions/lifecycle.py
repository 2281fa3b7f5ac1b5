"""A suggestion's state and what each human action or passing deadline does to it.

Pure: the workflow holds one `Suggestion`, applies these functions with `workflow.now()` and
records the `Happening`s they return (projection, timeline, event). The same functions run on a
copy in the update validators, so an invalid action is refused before it enters the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.suggestions import domain
from services.suggestions.domain import Evaluation, OutcomeClass, RuleError, Stage, Status, require


@dataclass
class Reply:
    unit_id: str
    content: str
    outcome: str
    planned_year: int | None
    public: bool
    at: datetime


@dataclass
class ExtensionRequest:
    """The lead unit's request for the one extension, pending until staff extend or the unit replies."""

    unit_id: str
    reason: str
    months: int
    at: datetime


@dataclass
class Suggestion:
    id: str
    title: str
    content: str
    lead_deputy_id: str
    co_signer_ids: list[str]
    region_code: str
    year: int
    kind: str
    micro: bool
    outcomes: list[OutcomeClass]
    term_first_year: int
    submitted_at: datetime
    submitted_by: str
    status: str = Status.SUBMITTED
    key: bool = False
    key_requested: bool = False
    supervisor: str | None = None
    lead_unit_id: str | None = None
    assisting_unit_ids: list[str] = field(default_factory=list)
    assigned_at: datetime | None = None
    due_at: datetime | None = None
    extended: bool = False
    extension_request: ExtensionRequest | None = None
    assisting_due_at: datetime | None = None
    assisting_views: list[str] = field(default_factory=list)
    meetings: list[str] = field(default_factory=list)
    reply: Reply | None = None
    outcome: str | None = None
    dissatisfied: int = 0
    next_review_at: datetime | None = None
    review_year: int | None = None
    # the yearly lists (滚动办理) the suggestion is on: its own year, then every year it is carried into
    years: list[int] = field(default_factory=list)
    # deadlines already announced as overdue, so a replayed timer or a restart never repeats them
    announced: list[str] = field(default_factory=list)
    repeat_of: dict[str, Any] | None = None
    topic_id: str | None = None
    closed_at: datetime | None = None
    seq: int = 0
    term_number: int = 1

    @property
    def outcome_class(self) -> OutcomeClass | None:
        return domain.outcome_of(self.outcomes, self.outcome) if self.outcome else None

    @property
    def list_year(self) -> int:
        return self.years[-1] if self.years else self.year


@dataclass(frozen=True)
class Happening:
    """One step of the suggestion's history: a timeline entry and the event `suggestions.suggestion.<kind>`.

    Every step is published, so the projection and its timeline can be rebuilt from the stream alone.
    """

    kind: str
    actor: str
    note: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Start:
    """The workflow's input."""

    suggestion: Suggestion
    # a fresh run of a suggestion that was already going (continue-as-new)
    continued: bool = False


# ---- inputs of human actions -----------------------------------------------------------------


@dataclass
class Assign:
    actor: str
    lead_unit_id: str
    assisting_unit_ids: list[str] = field(default_factory=list)
    key: bool = False
    supervisor: str | None = None


@dataclass
class Extend:
    actor: str
    reason: str
    months: int = 3


@dataclass
class RequestExtension:
    actor: str
    unit_id: str
    reason: str
    months: int = 3


@dataclass
class Meeting:
    actor: str
    unit_id: str
    stage: str
    at: datetime
    note: str


@dataclass
class AssistingView:
    actor: str
    unit_id: str
    content: str


@dataclass
class ReplyInput:
    actor: str
    unit_id: str
    content: str
    outcome: str
    planned_year: int | None = None
    public: bool = True


@dataclass
class Evaluate:
    actor: str
    result: str
    comment: str | None = None


@dataclass
class Progress:
    actor: str
    unit_id: str
    note: str
    outcome: str | None = None


@dataclass
class Decide:
    actor: str
    decision: str
    note: str


# ---- actions ---------------------------------------------------------------------------------


def submitted(s: Suggestion) -> list[Happening]:
    s.years = [s.year]
    data: dict[str, Any] = {"repeat_of": s.repeat_of} if s.repeat_of else {}
    return [Happening("submitted", s.submitted_by, None, data)]


def assign(s: Suggestion, a: Assign, now: datetime) -> list[Happening]:
    require(s.status == Status.SUBMITTED, "只有新提交的建议可以交办。")
    require(bool(a.lead_unit_id), "须指定主办单位。", "lead_unit_id")
    require(a.lead_unit_id not in a.assisting_unit_ids, "主办单位不能同时是协办单位。", "assisting_unit_ids")
    require(len(set(a.assisting_unit_ids)) == len(a.assisting_unit_ids), "协办单位不能重复。", "assisting_unit_ids")
    require(not a.key or bool(a.supervisor), "重点建议须指定督办领导。", "supervisor")
    s.status, s.lead_unit_id, s.assisting_unit_ids = Status.ASSIGNED, a.lead_unit_id, list(a.assisting_unit_ids)
    s.key, s.supervisor = a.key, a.supervisor
    s.assigned_at, s.due_at = now, domain.reply_due(now)
    s.assisting_due_at = domain.months_after(now, domain.ASSISTING_VIEW_MONTHS) if a.assisting_unit_ids else None
    return [Happening("assigned", a.actor, None,
                      {"due_at": s.due_at.isoformat(), "key": s.key})]


def extend(s: Suggestion, e: Extend, now: datetime) -> list[Happening]:
    require(bool(e.reason.strip()), "延期须说明理由。", "reason")
    s.due_at = domain.check_extension(s.status, s.extended, s.assigned_at, s.due_at, e.months)
    s.extended, s.extension_request = True, None
    return [Happening("extended", e.actor, e.reason,
                      {"due_at": s.due_at.isoformat()})]


def request_extension(s: Suggestion, r: RequestExtension, now: datetime) -> list[Happening]:
    """The lead unit asks congress staff for the one extension; staff grant it with `extend`."""
    require(r.unit_id == s.lead_unit_id, "只有主办单位可以申请延期。", "unit_id")
    require(bool(r.reason.strip()), "申请延期须说明理由。", "reason")
    require(s.status == Status.ASSIGNED, "只有已交办、尚未答复的建议可以申请延期。")
    require(not s.extended, "每件建议只能延期一次，这件建议已经延期过了。")
    require(s.extension_request is None, "已经申请过延期，正在等待人大常委会审批，不能重复申请。")
    limit = domain.MAX_REPLY_MONTHS - domain.REPLY_MONTHS
    require(1 <= r.months <= limit, f"延期月数应为 1 至 {limit}。", "months")
    s.extension_request = ExtensionRequest(r.unit_id, r.reason, r.months, now)
    return [Happening("extension_requested", r.actor, f"承办单位申请延期：{r.reason}",
                      {"unit_id": r.unit_id, "months": r.months})]


def meeting(s: Suggestion, m: Meeting, now: datetime) -> list[Happening]:
    require(s.status in (Status.ASSIGNED, Status.REASSIGNED), "只有办理中的建议可以登记见面。")
    require(m.unit_id == s.lead_unit_id, "只有主办单位登记“三见面”。", "unit_id")
    try:
        stage = Stage(m.stage)
    except ValueError:
        raise RuleError("见面阶段应为 before、during 或 after。", "stage") from None
    require(m.at <= now, "见面时间不能晚于现在。", "at")
    if stage.value not in s.meetings:
        s.meetings.append(stage.value)
    return [Happening("meeting", m.actor, m.note, {"stage": stage.value, "at": m.at.isoformat()})]


def assisting_view(s: Suggestion, v: AssistingView, now: datetime) -> list[Happening]:
    require(s.status in (Status.ASSIGNED, Status.REASSIGNED), "只有办理中的建议可以提交协办意见。")
    require(v.unit_id in s.assisting_unit_ids, "只有协办单位提交协办意见。", "unit_id")
    if v.unit_id not in s.assisting_views:
        s.assisting_views.append(v.unit_id)
    return [Happening("assisting_view", v.actor, v.content, {"unit_id": v.unit_id})]


def reply(s: Suggestion, r: ReplyInput, now: datetime) -> list[Happening]:
    require(r.unit_id == s.lead_unit_id, "只有主办单位可以答复。", "unit_id")
    require(bool(r.content.strip()), "答复内容不能为空。", "content")
    outcome = domain.outcome_of(s.outcomes, r.outcome)
    domain.check_reply(s.status, key=s.key, meetings=set(s.meetings), outcome=outcome,
                       planned_year=r.planned_year, reply_year=domain.china_date(now).year)
    due = s.due_at
    s.reply = Reply(r.unit_id, r.content, outcome.code, r.planned_year, r.public, now)
    # A reply ends the wait: an extension still pending is no longer needed.
    s.extension_request = None
    s.outcome, s.status, s.due_at = outcome.code, Status.REPLIED, None
    # The unit board counts replies in time; the state after the reply no longer holds the due time.
    return [Happening("replied", r.actor, None,
                      {"outcome": outcome.code, "planned_year": r.planned_year,
                       "due_at": due.isoformat() if due else None, "on_time": due is None or now <= due})]


def evaluate(s: Suggestion, e: Evaluate, now: datetime) -> list[Happening]:
    require(s.status == Status.REPLIED, "只有已答复的建议可以评价。")
    try:
        result = Evaluation(e.result)
    except ValueError:
        raise RuleError("评价应为 satisfied、basically_satisfied 或 dissatisfied。", "result") from None
    if result == Evaluation.DISSATISFIED:
        require(bool((e.comment or "").strip()), "不满意须写明意见。", "comment")
    outcome = s.outcome_class
    assert outcome is not None
    after = domain.after_evaluation(result, outcome, s.dissatisfied, now)
    happened = [Happening("evaluated", e.actor, e.comment,
                          {"result": result.value, "referred": after.referred})]
    if result == Evaluation.DISSATISFIED:
        s.dissatisfied += 1
    s.status = after.status
    if after.status == Status.REASSIGNED:
        happened += _reassigned(s, after.due_at, e.actor, e.comment)
    elif after.status == Status.FOLLOWING_UP:
        happened += _follow_up(s, now)
    elif after.status == Status.CLOSED:
        happened += _closed(s, now, e.actor)
    return happened


def progress(s: Suggestion, p: Progress, now: datetime) -> list[Happening]:
    require(s.status == Status.FOLLOWING_UP, "只有跟踪办理中的建议可以报告进展。")
    require(p.unit_id == s.lead_unit_id, "只有主办单位报告办理进展。", "unit_id")
    require(bool(p.note.strip()), "进展说明不能为空。", "note")
    solved = False
    if p.outcome is not None:
        outcome = domain.outcome_of(s.outcomes, p.outcome)
        s.outcome, solved = outcome.code, outcome.solved
    year = s.review_year or domain.china_date(now).year
    happened = [Happening("reviewed", p.actor, p.note,
                          {"review_year": year, "outcome": s.outcome})]
    if solved:
        return happened + _closed(s, now, p.actor)
    # The next look-back is next year's; this year's deadline is met.
    s.review_year = max(year, domain.china_date(now).year) + 1
    s.next_review_at = domain.review_due(s.review_year)
    return happened


def decide(s: Suggestion, d: Decide, now: datetime) -> list[Happening]:
    require(s.status == Status.REFERRED, "只有提交主任会议的建议需要会议决定。")
    require(bool(d.note.strip()), "须写明主任会议的决定。", "note")
    try:
        decision = domain.DirectorDecision(d.decision)
    except ValueError:
        raise RuleError("决定应为 reassign、follow_up 或 close。", "decision") from None
    happened = [Happening("director_decision", d.actor, d.note, {"decision": decision.value})]
    if decision == domain.DirectorDecision.REASSIGN:
        s.status = Status.REASSIGNED
        return happened + _reassigned(s, domain.months_after(now, domain.REASSIGNED_REPLY_MONTHS), d.actor, d.note)
    if decision == domain.DirectorDecision.FOLLOW_UP:
        s.status = Status.FOLLOWING_UP
        return happened + _follow_up(s, now)
    return happened + _closed(s, now, d.actor)


def _reassigned(s: Suggestion, due_at: datetime | None, actor: str, note: str | None) -> list[Happening]:
    assert due_at is not None
    s.due_at, s.reply, s.meetings = due_at, None, []
    return [Happening("reassigned", actor, note, {"due_at": due_at.isoformat()})]


def _follow_up(s: Suggestion, now: datetime) -> list[Happening]:
    s.review_year = domain.first_review_year(now)
    s.next_review_at = domain.review_due(s.review_year)
    s.due_at = None
    return []


def _closed(s: Suggestion, now: datetime, actor: str) -> list[Happening]:
    s.status, s.closed_at, s.due_at, s.next_review_at = Status.CLOSED, now, None, None
    return [Happening("closed", actor, None, {"outcome": s.outcome})]


# ---- time ------------------------------------------------------------------------------------


def deadlines(s: Suggestion) -> list[tuple[str, datetime]]:
    """What the clock must wake for next: (key, when), not yet announced."""
    found: list[tuple[str, datetime]] = []
    if s.status in (Status.ASSIGNED, Status.REASSIGNED) and s.due_at is not None:
        found.append((f"reply:{s.due_at.isoformat()}", s.due_at))
    if (s.status in (Status.ASSIGNED, Status.REASSIGNED) and s.assisting_due_at is not None
            and set(s.assisting_unit_ids) - set(s.assisting_views)):
        found.append((f"assisting:{s.assisting_due_at.isoformat()}", s.assisting_due_at))
    if s.status == Status.FOLLOWING_UP and s.next_review_at is not None:
        found.append((f"review:{s.next_review_at.isoformat()}", s.next_review_at))
    if s.status != Status.CLOSED:
        found.append((f"carry:{s.list_year}", domain.year_end(s.list_year)))
    return [(k, when) for k, when in found if k not in s.announced]


def next_wake(s: Suggestion) -> datetime | None:
    pending = deadlines(s)
    return min(when for _k, when in pending) if pending else None


def on_clock(s: Suggestion, now: datetime) -> list[Happening]:
    """Deadlines that have passed: overdue announcements and the year-end carry-over."""
    happened: list[Happening] = []
    for key, when in sorted(deadlines(s), key=lambda kw: kw[1]):
        if when > now:
            continue
        s.announced.append(key)
        kind = key.split(":", 1)[0]
        if kind == "carry":
            happened += _carry_over(s)
        else:
            happened.append(Happening("overdue", "system", None,
                                      {"deadline": kind, "due_at": when.isoformat()}))
    return happened


def _carry_over(s: Suggestion) -> list[Happening]:
    """滚动办理: unsolved at year end, the suggestion is on next year's list, across terms too."""
    year = s.list_year + 1
    s.years.append(year)
    term_before, term_after = (domain.term_of(y, s.term_first_year, s.term_number) for y in (year - 1, year))
    note = f"未办结，转入{year}年度继续办理" + (f"（第{term_after}届）" if term_after != term_before else "")
    return [Happening("carried_over", "system", note,
                      {"year": year, "term": term_after, "new_term": term_after != term_before})]
