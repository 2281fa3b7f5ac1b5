"""The console's audit log: filters, the cursor of a page, several services' logs merged, and the
words for each action. Pure.

Each service keeps its own log and pages it newest first by its own sequence (`before`). One
service's log is paged with that number; "all services" reads a page from each and shows the newest
entries of them all, and the next page goes on in each service from the oldest entry it showed
(or where it was, if none of its entries made the page), so no entry is skipped or shown twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from services.web.console_staff_calls import AUDITED, AuditEntry, AuditPage
from services.web.words import SHANGHAI, TYPED_YEARS_MESSAGE, parse_time, plausible

PAGE_SIZE = 50
SERVICE = {"suggestions": "建议办理", "routing": "分拨与共性事项", "intake": "群众反映", "identity": "名录与选举",
           "scoring": "履职积分"}
# The services' own pattern for names in a filter (shared/audit.py).
NAME = re.compile(r"^[\w.:@-]{1,128}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ACTION = {
    "report.acknowledged": "受理反映",
    "report.replied": "答复反映",
    "report.reminded": "催办反映",
    "report.reporter_unmasked": "查看反映人完整信息",
    "calendar.loaded": "导入节假日",
    "clock_rules.changed": "修改办理时限",
    "grid_platform.changed": "修改网格平台",
    "hotspot.split": "拆分共性事项",
    "hotspot.merged": "合并共性事项",
    "hotspot.closed": "关闭共性事项",
    "topic.converted": "监督议题转为建议",
    "topic.closed": "关闭监督议题",
    "unit.changed": "修改承办单位",
    "outcome_scheme.changed": "修改答复类别",
    "micro_fund.changed": "设立或修改微建议资金",
    "micro_fund.spent": "使用微建议资金",
    "suggestion.submitted": "提出建议",
    "suggestion.assigned": "交办建议",
    "suggestion.extended": "建议延期",
    "suggestion.extension_requested": "申请延期",
    "suggestion.meeting": "三见面",
    "suggestion.assisting_view": "协办意见",
    "suggestion.replied": "答复建议",
    "suggestion.evaluated": "代表评价",
    "suggestion.reassigned": "二次交办",
    "suggestion.director_decision": "主任会议决定",
    "suggestion.reviewed": "回头看进展",
    "suggestion.closed": "建议办结",
    "suggestion.overdue": "建议超期",
    "suggestion.carried_over": "转入下一年度",
    "rules.changed": "修改积分规则",
    "ranking.published": "发布积分排名",
    "activity.recorded": "登记履职活动",
    "entry.reversed": "更正积分",
    "region.changed": "修改行政区划",
    "station.changed": "修改联络站",
    "deputy.changed": "修改代表信息",
    "code.issued": "生成二维码",
    "code.revoked": "作废二维码",
    "election.changed": "修改选举",
    "voters.registered": "登记选民",
    "reconciliation.started": "开始选民核对",
    "reconciliation.items_shown": "查看核对名单",
}
SUBJECT = {"report": "反映", "hotspot": "共性事项", "supervision_topic": "监督议题", "suggestion": "建议",
           "unit": "承办单位", "outcome_scheme": "答复类别", "micro_fund": "微建议资金", "grid_platform": "网格平台",
           "calendar": "工作日历", "clock_rules": "时限规则", "rules": "积分规则", "ranking": "积分排名",
           "activity": "履职活动", "entry": "积分记录", "region": "行政区划", "station": "联络站", "deputy": "代表",
           "code": "二维码", "election": "选举", "reconciliation": "选民核对"}
ROLE = {"npc_staff": "人大工作人员", "admin": "管理员", "deputy": "代表", "unit": "承办单位",
        "station_staff": "联络站工作人员", "integration": "对接系统"}


@dataclass(frozen=True)
class Filters:
    service: str = "all"
    actor: str = ""
    action: str = ""
    subject_type: str = ""
    subject_id: str = ""
    since: str = ""  # YYYY-MM-DD, Beijing time, from the start of the day
    until: str = ""  # YYYY-MM-DD, up to the end of the day
    cursor: str = ""

    @property
    def services(self) -> tuple[str, ...]:
        return AUDITED if self.service == "all" else (self.service,)

    def params(self) -> dict[str, str]:
        """The services' query for these filters (without the page's `before`)."""
        out = {name: value for name, value in (("actor", self.actor), ("action", self.action),
                                               ("subject_type", self.subject_type), ("subject_id", self.subject_id))
               if value}
        if self.since:
            out["since"] = _day_start(date.fromisoformat(self.since)).isoformat()
        if self.until:
            out["until"] = _day_start(date.fromisoformat(self.until) + timedelta(days=1)).isoformat()
        return out

    def query(self, **changes: str) -> str:
        values = {"service": self.service, "actor": self.actor, "action": self.action,
                  "subject_type": self.subject_type, "subject_id": self.subject_id, "since": self.since,
                  "until": self.until, "cursor": self.cursor, **changes}
        return urlencode({k: v for k, v in values.items() if v and not (k == "service" and v == "all")})

    @property
    def any(self) -> bool:
        return any((self.actor, self.action, self.subject_type, self.subject_id, self.since, self.until))


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, dict[str, str]]:
    """Filters from the URL and, by field, what is wrong with a value typed into one."""
    errors: dict[str, str] = {}
    service = query.get("service") or "all"
    if service != "all" and service not in AUDITED:
        service = "all"
    names: dict[str, str] = {}
    for name in ("actor", "action", "subject_type", "subject_id"):
        value = (query.get(name) or "").strip()
        if value and not NAME.match(value):
            errors[name] = "只能填写字母、数字和 . : @ _ - ，不含空格。"
            value = ""
        names[name] = value
    days: dict[str, str] = {}
    for name in ("since", "until"):
        value = (query.get(name) or "").strip()
        if value and not _valid_day(value):
            errors[name] = "请按 2026-03-05 的格式填写日期。"
            value = ""
        elif value and not plausible(date.fromisoformat(value)):
            errors[name] = TYPED_YEARS_MESSAGE
            value = ""
        days[name] = value
    if days["since"] and days["until"] and days["since"] > days["until"]:
        errors["until"] = "结束日期不能早于开始日期。"
        days["until"] = ""
    cursor = (query.get("cursor") or "").strip()
    return Filters(service=service, cursor=cursor if parse_cursor(cursor, AUDITED) is not None else "",
                   **names, **days), errors


def _valid_day(text: str) -> bool:
    if not _DAY.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# ---- the cursor ---------------------------------------------------------------------------------

# Where each service's log goes on: entries older than this seq; END once it has no more.
END = 0
Cursor = dict[str, int]


def parse_cursor(text: str, services: Sequence[str]) -> Cursor | None:
    """"suggestions.120~routing.0" → {"suggestions": 120, "routing": 0}; "" → {} (the newest); None when
    it is not a cursor. A service it does not name starts from its newest entry."""
    if not text:
        return {}
    out: Cursor = {}
    for part in text.split("~"):
        name, _, seq = part.partition(".")
        if name not in services or not seq.isdigit() or len(seq) > 19 or name in out:
            return None
        out[name] = int(seq)
    return out


def cursor_text(cursor: Cursor) -> str:
    return "~".join(f"{name}.{seq}" for name, seq in sorted(cursor.items()))


@dataclass(frozen=True)
class Row:
    service: str
    entry: AuditEntry


def merge(pages: Mapping[str, AuditPage], cursor: Cursor, limit: int = PAGE_SIZE) -> tuple[list[Row], Cursor | None]:
    """The newest `limit` entries of the services' pages, and the cursor of the next page (None: no more).

    Each page holds a service's entries older than its place in `cursor`, in the service's own order
    (newest first by its sequence), up to `limit`. They are merged by taking, each time, the newest
    head of the pages: what a service shows is always a run from the top of its page, so it goes on
    from the last one shown, even where two of its entries' times and sequences disagree.
    """
    heads = {name: 0 for name in pages}
    rows: list[Row] = []
    while len(rows) < limit:
        ready = [name for name, i in heads.items() if i < len(pages[name].items)]
        if not ready:
            break
        name = max(ready, key=lambda n: (_time(pages[n].items[heads[n]]), n))
        rows.append(Row(name, pages[name].items[heads[name]]))
        heads[name] += 1
    following: Cursor = dict(cursor)
    more = False
    for name, page in pages.items():
        shown = heads[name]
        if shown < len(page.items):
            # Some of its entries did not make this page: it goes on after the last one it showed.
            following[name] = page.items[shown - 1].seq if shown else cursor.get(name) or _after_newest(page)
            more = True
        elif page.next_before is not None:
            following[name] = page.next_before
            more = True
        else:
            following[name] = END
    return rows, following if more else None


def _time(entry: AuditEntry) -> datetime:
    at = parse_time(entry.at)
    assert at is not None
    return at


def _after_newest(page: AuditPage) -> int:
    """The place before a service's newest entry, when none of its first page was shown."""
    return page.items[0].seq + 1


def wanted(cursor: Cursor, services: Sequence[str]) -> list[str]:
    """The services that still have entries to show."""
    return [s for s in services if cursor.get(s) != END]


def before_of(cursor: Cursor, service: str) -> int | None:
    return cursor.get(service) or None


# ---- words --------------------------------------------------------------------------------------


def action_words(action: str) -> str:
    return ACTION.get(action, action)


def subject_words(subject_type: str) -> str:
    return SUBJECT.get(subject_type, subject_type)


def roles_words(roles: Sequence[str]) -> str:
    return "、".join(ROLE.get(r, r) for r in roles) or "系统"


def detail_words(detail: Mapping[str, object], limit: int = 300) -> str:
    """The entry's detail as `key: value` lines, shortened: ids, choices and reasons, never personal data."""
    parts = []
    for key, value in detail.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        parts.append(f"{key}: {text}")
    joined = "；".join(parts)
    return joined if len(joined) <= limit else joined[:limit - 1] + "…"
