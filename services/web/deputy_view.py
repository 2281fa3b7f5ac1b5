"""What the deputy's pages decide without asking anyone: deadline colours, the inbox's filters and
pages, reply templates, the grid ticket's state, co-signer search, the words for each state.
Pure functions and constants; the pages and their tests share them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlencode

from services.web.deputy_calls import OPEN_STATUSES, DeputyName, ReportStep
from services.web.words import parse_time, short_date_cn

# ---- deadlines ----------------------------------------------------------------------------------

SOON = timedelta(days=1)
DueState = Literal["late", "soon", "ok", "done"]
DUE_LABEL = {"late": "超期", "soon": "即将到期", "ok": "正常", "done": "已办"}


@dataclass(frozen=True)
class DueMark:
    state: DueState
    label: str  # the word that goes with the colour: never colour alone
    detail: str  # which deadline and how far, e.g. "答复期限已过 2 天"


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return "不到 1 小时"
    if hours < 48:
        return f"{hours} 小时"
    return f"{hours // 24} 天"


def due_mark(status: str, due_at: str | datetime, acknowledged: bool, now: datetime) -> DueMark:
    """The colour of a report in the deputy's list: on time, due within a day, or overdue, by the
    deadline that matters next (受理 until taken up, then 答复); answered and closed ones owe nothing."""
    if status not in OPEN_STATUSES:
        return DueMark("done", DUE_LABEL["done"], "")
    due = parse_time(due_at)
    assert due is not None
    which = "答复" if acknowledged else "受理"
    if due <= now:
        return DueMark("late", DUE_LABEL["late"], f"{which}期限已过 {_span(now - due)}")
    if due - now <= SOON:
        return DueMark("soon", DUE_LABEL["soon"], f"{which}期限还剩 {_span(due - now)}")
    return DueMark("ok", DUE_LABEL["ok"], f"{short_date_cn(due)}前{which}")


# ---- the inbox's filters ------------------------------------------------------------------------

PAGE_SIZE = 20
# How deep the list may be paged and exported: a deputy's open reports are tens, never thousands.
MAX_ROWS = 2000
STATUS_FILTERS = {"open": "待办", **{s: w for s, w in (("submitted", "待受理"), ("acknowledged", "已受理"),
                                                      ("dispatched", "已转办"), ("answered", "已答复"),
                                                      ("closed", "已办结"))}, "all": "全部"}


# How a list may be ordered, as intake orders it (`sort`); the first is the default.
SORTS = {"due": "期限最近的在前", "-received": "最新收到的在前", "received": "最早收到的在前"}


@dataclass(frozen=True)
class InboxFilter:
    status: str = "open"
    overdue: bool = False
    page: int = 1
    sort: str = "due"

    @property
    def params(self) -> dict[str, str]:
        """Intake's filter for this view: one list, paged by intake (待办 is `open=true`)."""
        params: dict[str, str] = {}
        if self.status == "open":
            params["open"] = "true"
        elif self.status != "all":
            params["status"] = self.status
        if self.overdue:
            params["overdue"] = "true"
        if self.sort != "due":
            params["sort"] = self.sort
        return params

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def query(self, **change: object) -> str:
        """This view's query string with `change` applied (a new filter starts at page 1); the
        defaults are left out of the URL."""
        status = str(change.get("status", self.status))
        overdue = bool(change.get("overdue", self.overdue))
        sort = str(change.get("sort", self.sort))
        page = int(change.get("page", 1))  # type: ignore[call-overload]
        kept: dict[str, str | int] = {}
        if status != "open":
            kept["status"] = status
        if overdue:
            kept["overdue"] = "1"
        if sort != "due":
            kept["sort"] = sort
        if page != 1:
            kept["page"] = page
        return urlencode(kept)


def read_filter(params: Mapping[str, str]) -> InboxFilter:
    """The filter a URL names; anything unknown falls back to the default rather than failing."""
    status = params.get("status", "open")
    page_text = params.get("page", "1")
    page = int(page_text) if page_text.isdigit() else 1
    sort = params.get("sort", "due")
    return InboxFilter(status=status if status in STATUS_FILTERS else "open",
                       overdue=params.get("overdue") in ("1", "true"),
                       page=max(1, min(page, MAX_ROWS // PAGE_SIZE)), sort=sort if sort in SORTS else "due")


# The counts every inbox shows besides 待办 and 全部, which are sums of them.
_COUNTED = ("submitted", "acknowledged", "dispatched", "answered", "closed", "overdue")


def counts_to_ask(view: InboxFilter) -> tuple[str | None, tuple[str, ...]]:
    """The count the list's own total gives (the view shown, unless narrowed to overdue ones), and the
    counts still to ask intake for, alongside the list. With 待办 known, 已转办 is what is left of it,
    so the default view costs one count fewer."""
    given = None if view.overdue or view.status == "all" else view.status
    ask = [k for k in _COUNTED if k != given]
    if given == "open":
        ask.remove("dispatched")
    return given, tuple(ask)


def all_counts(known: Mapping[str, int], asked: Mapping[str, int]) -> dict[str, int]:
    """Every count of the inbox from what was known and what was asked. Counts asked one after another
    may disagree for a moment while reports move on; none is ever shown below zero."""
    got = {**asked, **known}
    if "dispatched" not in got:
        got["dispatched"] = max(0, got["open"] - got["submitted"] - got["acknowledged"])
    got.setdefault("open", sum(got[s] for s in OPEN_STATUSES))
    got["all"] = got["open"] + got["answered"] + got["closed"]
    return got


def pages_of(total: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-min(total, MAX_ROWS) // size))


# ---- words ------------------------------------------------------------------------------------

CHANNEL = {"miniprogram": "微信小程序", "h5": "扫码网页", "kiosk": "联络站自助终端", "hotline": "热线电话",
           "api": "其他系统", "paper": "纸质登记"}
TARGET_KIND = {"deputy": "代表本人", "station": "联络站", "region": "所在地区"}
ACTOR = {"deputy": "代表", "station_staff": "联络站工作人员", "grid": "基层治理平台", "citizen": "群众",
         "system": "系统"}


def ticket_state(ticket_id: str | None, timeline: Sequence[ReportStep]) -> str:
    """What the grid platform's ticket is doing, from intake's record of routing's news about it."""
    grid = [step for step in timeline if step.actor == "grid" and step.public]
    if ticket_id:
        return grid[-1].note if grid else "已转交基层治理平台，等待平台接收。"
    if grid:
        return grid[-1].note
    return "未转交基层治理平台，由代表办理。"


# ---- reply templates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyTemplate:
    key: str
    title: str
    text: str


REPLY_TEMPLATES = (
    ReplyTemplate("handling", "正在办理",
                  "您好，您反映的问题我已收到，正在联系有关部门了解情况，有进展会及时在这里告诉您。感谢您的信任！"),
    ReplyTemplate("solved", "已经解决",
                  "您好，您反映的问题已经联系（部门）处理，目前已经解决：（处理情况）。"
                  "如果还有问题，欢迎继续反映。"),
    ReplyTemplate("referred", "转交主管部门",
                  "您好，您反映的问题属于（部门）的职责范围，我已转交该部门办理，并会跟踪办理进度，"
                  "结果会在这里告诉您。"),
    ReplyTemplate("explained", "政策解答",
                  "您好，关于您咨询的问题，相关规定是：（政策内容）。如需进一步了解，欢迎到联络站当面咨询。"),
    ReplyTemplate("not_now", "暂时无法解决",
                  "您好，经了解，您反映的问题目前暂时无法解决，原因是：（原因）。我会继续关注，"
                  "有新的进展会及时告诉您。"),
)
TEMPLATES_BY_KEY = {t.key: t for t in REPLY_TEMPLATES}


def template_text(key: str | None) -> str:
    found = TEMPLATES_BY_KEY.get(key or "")
    return found.text if found else ""


# ---- suggestions -----------------------------------------------------------------------------

SUGGESTION_STATUS = {"submitted": "已提交，待交办", "assigned": "已交办，办理中", "replied": "已答复，待评价",
                     "reassigned": "二次交办", "referred": "提请主任会议研究", "following_up": "跟踪落实（回头看）",
                     "closed": "已办结"}
COLOR = {"green": "正常", "yellow": "临近期限", "red": "超期", "blue": "已办结", "grey": "参考件跟踪"}
SUGGESTION_KIND = {"session": "大会期间建议", "interim": "闭会期间建议"}
STEP_KIND = {"submitted": "提出建议", "assigned": "交办", "extended": "延期办理", "meeting": "见面沟通",
             "assisting_view": "协办单位意见", "replied": "承办单位答复", "evaluated": "代表评价",
             "reviewed": "回头看进展", "director_decision": "主任会议决定", "reassigned": "二次交办",
             "closed": "办结", "overdue": "超期提醒", "carried_over": "结转下一年度",
             "extension_requested": "承办单位申请延期"}
EVALUATION = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
MEETING_STAGE = {"before": "办理前", "during": "办理中", "after": "答复前"}
DECISION = {"reassign": "再次交办", "follow_up": "跟踪落实", "close": "办结"}
MAX_TITLE, MAX_SUGGESTION = 200, 20000
MAX_COMMENT = 4000


def matching_deputies(deputies: Sequence[DeputyName], query: str, *, me: str | None,
                      limit: int = 30) -> list[DeputyName]:
    """Deputies whose name holds `query` (all of them when it is empty), the signed-in one left out,
    by name; at most `limit`."""
    wanted = query.strip()
    found = [d for d in deputies if d.deputy_id != me and (not wanted or wanted in d.name)]
    return sorted(found, key=lambda d: (d.name, d.deputy_id))[:limit]


def check_suggestion(title: str, content: str, kind: str) -> dict[str, str]:
    """The same limits the suggestions service keeps, said next to the field before the call."""
    errors: dict[str, str] = {}
    if len(title) < 2:
        errors["title"] = "请填写建议标题（至少 2 个字）。"
    elif len(title) > MAX_TITLE:
        errors["title"] = f"标题最多 {MAX_TITLE} 字，现在有 {len(title)} 字。"
    if len(content) < 10:
        errors["content"] = "请写明建议内容（至少 10 个字）：问题、原因和具体建议。"
    elif len(content) > MAX_SUGGESTION:
        errors["content"] = f"内容最多 {MAX_SUGGESTION} 字，现在有 {len(content)} 字。"
    if kind not in SUGGESTION_KIND:
        errors["kind"] = "请选择建议类别。"
    return errors


def check_evaluation(result: str, comment: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if result not in EVALUATION:
        errors["result"] = "请选择满意、基本满意或不满意。"
    elif result == "dissatisfied" and not comment:
        errors["comment"] = "选择不满意时，请写明哪里不满意，建议将重新交办。"
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"意见最多 {MAX_COMMENT} 字，现在有 {len(comment)} 字。"
    return errors


# ---- the year's points ------------------------------------------------------------------------

DIMENSION = {"exemplary": "表率", "conduct": "规范", "supervision": "监督", "advisory": "参谋", "relief": "解忧"}
PART = {"base": "基础分", "bonus": "加分"}
SOURCE = {"intake.report.acknowledged": "受理群众意见", "intake.report.answered": "答复群众意见",
          "intake.report.rated": "群众评价", "suggestions.suggestion.submitted": "提出代表建议",
          "suggestions.suggestion.assigned": "建议交办", "reversal": "冲正更正"}


def source_label(source: str) -> str:
    if source.startswith("activity:"):
        return "工作人员登记的履职活动"
    return SOURCE.get(source, source)


def points_text(points: float) -> str:
    """+4、-0.5、0: the sign always shown, no trailing zeros."""
    text = f"{points:+.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text
