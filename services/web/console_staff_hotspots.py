"""What the console's hotspot pages show and take. Pure.

A hotspot (共性事项) is routing's cluster of similar reports; once detected it is also a supervision
topic (人大监督) in the suggestions service, under the same id. Staff convert the topic into a key
suggestion or close it with a note (which routing passes to the citizens), and correct the cluster
itself: split reports off into a new hotspot, or merge another one into it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

from services.web.console_staff_calls import HotspotDetail, Member, ReportBrief, Topic
from services.web.console_staff_overview import masked
from services.web.console_staff_suggestions import Checked, Form

STATE = {"open": "待处理", "converted": "已转为建议", "closed": "已关闭", "merged": "已并入其他事项"}
TOPIC_STATUS = {"open": "待处理", "converted": "已转为重点督办建议", "closed": "已关闭"}
DAYS = {30: "近 30 天", 90: "近 90 天", 365: "近一年", 1095: "近三年"}
PLACED_BY = {"auto": "系统归并", "staff": "工作人员调整"}
CORRECTION = {"split": "拆分", "merge": "合并", "convert": "转为建议", "close": "关闭"}
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
T = TypeVar("T")
# Reports split off at once: routing takes this many.
MAX_SPLIT = 500


# Rows of each table a page; routing answers at most 500 hotspots and suggestions 1,000 topics.
PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    state: str | None = "open"
    days: int = 90
    topics: str | None = "open"
    page: int = 1  # of the hotspots
    topic_page: int = 1

    def query(self, **changes: object) -> str:
        values: dict[str, object] = {"state": self.state or "all", "days": self.days,
                                     "topics": self.topics or "all", "page": self.page,
                                     "tpage": self.topic_page, **changes}
        return urlencode({k: v for k, v in values.items() if not (k in ("page", "tpage") and v == 1)})


def page_of(rows: Sequence[T], page: int) -> tuple[list[T], bool]:
    """The rows of page `page` (from 1), and whether more follow."""
    start = (page - 1) * PAGE_SIZE
    return list(rows[start:start + PAGE_SIZE]), len(rows) > start + PAGE_SIZE


def parse_filters(query: Mapping[str, str]) -> Filters:
    """Open hotspots and topics of the last 90 days unless the URL says otherwise ("all": any state)."""
    state = query.get("state") or "open"
    topics = query.get("topics") or "open"
    days_text = query.get("days") or ""
    days = int(days_text) if days_text.isdigit() and int(days_text) in DAYS else 90

    def number(name: str) -> int:
        text = query.get(name) or ""
        return int(text) if text.isdigit() and 1 <= int(text) <= 1000 else 1

    return Filters(state=None if state == "all" or state not in STATE else state, days=days,
                   topics=None if topics == "all" or topics not in TOPIC_STATUS else topics,
                   page=number("page"), topic_page=number("tpage"))


@dataclass(frozen=True)
class MemberView:
    """One member report, side by side with the others: intake's masked view where it shows it."""

    report_id: str
    received_at: str
    confidence: str
    placed_by: str
    excerpt: str
    reporter: str
    status: str
    supporters: int
    readable: bool


def members(detail: HotspotDetail, briefs: Mapping[str, ReportBrief | None],
            statuses: Mapping[str, str]) -> list[MemberView]:
    out: list[MemberView] = []
    for i, m in enumerate(detail.members):
        brief = briefs.get(m.report_id)
        out.append(_member(m, brief, statuses, confidence(m, first=i == 0)))
    return out


def confidence(m: Member, *, first: bool) -> str:
    """How well the report matched the hotspot when it was placed, as staff read it: the matcher's
    probability, or the hand-made score where there was no meaning vector, so a score and not a
    percentage; cut, not rounded, so that nothing placed automatically reads as a certain 1.00.
    "" for the report that started the hotspot and for one staff moved, whose 1 says nothing."""
    if first or m.placed_by == "staff":
        return ""
    # round first: 0.29 * 100 is 28.999… in binary floating point.
    return f"匹配分 {math.floor(round(m.similarity * 100, 6)) / 100:.2f}"


def _member(m: Member, brief: ReportBrief | None, statuses: Mapping[str, str], sure: str) -> MemberView:
    if brief is None:
        return MemberView(m.report_id, m.received_at, sure, PLACED_BY.get(m.placed_by, m.placed_by),
                          "（无法读取这条反映：不在您的管辖范围内，或已被删除）", "", "", 0, False)
    reporter = "匿名" if brief.anonymous or brief.reporter is None else \
        f"{brief.reporter.name} {brief.reporter.phone}".strip()
    return MemberView(m.report_id, brief.received_at, sure, PLACED_BY.get(m.placed_by, m.placed_by),
                      masked(brief.excerpt) or "（语音反映）", reporter, statuses.get(brief.status, brief.status),
                      brief.supporters, True)


def topic_of(topics: Sequence[Topic], hotspot_id: str) -> Topic | None:
    return next((t for t in topics if t.id == hotspot_id), None)


def draft_title(detail: HotspotDetail, category: str) -> str:
    """A first title for the conversion form, from the places and words the reports share."""
    where = "、".join(detail.places[:2])
    # A word the place already says ("菜市场" of "西溪街道菜市场") is not said twice.
    what = "、".join([k for k in detail.keywords if k not in where][:3])
    core = "".join(p for p in (where, what) if p) or category
    return f"关于{core}问题的建议"[:200]


def draft_content(detail: HotspotDetail, category: str) -> str:
    where = "、".join(detail.places[:3]) or "本地区"
    what = "、".join(detail.keywords[:5]) or category
    return (f"{where}群众集中反映{what}等问题，已有 {detail.count} 件反映、{detail.supporters} 人附议。"
            "建议有关部门调查处理，并向代表和群众反馈办理情况。")


# ---- forms ------------------------------------------------------------------------------------


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def check_conversion(form: Form, deputies: Mapping[str, str]) -> Checked:
    """转为重点督办建议: title, content, the lead deputy (one of the region's) and the year."""
    title, content = _text(form, "title"), _text(form, "content")
    lead, year_text = _text(form, "lead_deputy_id"), _text(form, "year")
    errors: dict[str, str] = {}
    if not 2 <= len(title) <= 200:
        errors["title"] = "标题应为 2 至 200 个字。"
    if not 10 <= len(content) <= 20000:
        errors["content"] = "建议内容至少 10 个字，不超过 20000 个字。"
    if not lead:
        errors["lead_deputy_id"] = "请选择领衔代表。"
    elif deputies and lead not in deputies:
        errors["lead_deputy_id"] = "请从列表中选择领衔代表。"
    year = int(year_text) if year_text.isdigit() and 2000 <= int(year_text) <= 2100 else None
    if year is None:
        errors["year"] = "年度应为四位年份，例如 2026。"
    values = {"title": title, "content": content, "lead_deputy_id": lead, "year": year_text}
    return Checked({"title": title, "content": content, "lead_deputy_id": lead, "year": year or 0}, errors, values)


def check_closure(form: Form) -> Checked:
    note = _text(form, "note")
    problem = "请写明关闭的理由（2 至 2000 个字），会告诉反映这个问题的群众。"
    errors = {} if 2 <= len(note) <= 2000 else {"note": problem}
    return Checked({"note": note}, errors, {"note": note})


def check_split(form: Form, detail: HotspotDetail) -> Checked:
    member_ids = {m.report_id for m in detail.members}
    chosen = [r for r in dict.fromkeys(v for v in form.getlist("report_ids") if isinstance(v, str)) if r]
    note = _text(form, "note")
    errors: dict[str, str] = {}
    if not chosen:
        errors["report_ids"] = "请勾选要拆分出去的反映。"
    elif any(r not in member_ids for r in chosen):
        errors["report_ids"] = "勾选的反映已不在这个事项中，请刷新页面后再选。"
    elif len(chosen) >= len(member_ids):
        errors["report_ids"] = "不能把全部反映都拆分出去，至少留下一条。"
    if len(note) > 2000:
        errors["note"] = "说明不超过 2000 个字。"
    body = {"report_ids": chosen, **({"note": note} if note else {})}
    return Checked(body, errors, {"report_ids": chosen, "note": note})


def check_merge(form: Form, hotspot_id: str) -> Checked:
    other = _text(form, "hotspot_id")
    note = _text(form, "note")
    errors: dict[str, str] = {}
    if not other or not ID.match(other):
        errors["hotspot_id"] = "请选择要并入的事项。"
    elif other == hotspot_id:
        errors["hotspot_id"] = "不能并入自己。"
    if len(note) > 2000:
        errors["note"] = "说明不超过 2000 个字。"
    body = {"hotspot_id": other, **({"note": note} if note else {})}
    return Checked(body, errors, {"hotspot_id": other, "note": note})
