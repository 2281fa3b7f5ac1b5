"""What the console's suggestion pages show and take, worked out from the suggestions service's
answers and the forms staff send. Pure.

The list's filters (kept in the URL), the words for a suggestion's key status and carry-over, the
exports' rows, and the forms: assignment (交办, one suggestion or many at once), the director's
meeting decision (主任会议) for a referred suggestion, and granting the one extension. A form is
checked here for what a person can mistype; the service checks the rules again and its refusal is
shown in its own words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from services.web.console_staff_calls import StaffSuggestion
from services.web.unit_view import COLOR, KIND, STATUS
from services.web.words import parse_time

PAGE_SIZE = 20
# An export holds at most this many suggestions (a county's year is a few hundred).
EXPORT_MAX = 5000
# Suggestions assigned at once from the list: a page's worth, five times over.
BULK_MAX = 100
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CHOICE = {"yes": True, "no": False}
KEY_CHOICES = {"yes": "重点督办", "no": "非重点"}
CARRIED_CHOICES = {"yes": "往年结转（滚动办理）", "no": "本年度提出"}
DECISIONS = {
    "reassign": "二次交办：原主办单位一个月内重新答复",
    "follow_up": "跟踪办理：列入回头看，每年报送进展",
    "close": "办结",
}


class Form(Protocol):
    """A submitted form: Starlette's FormData, or any multi-valued mapping."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


# ---- the list's filters ------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    year: int | None
    status: str | None = None
    color: str | None = None
    unit: str | None = None
    key: bool | None = None
    carried: bool | None = None
    page: int = 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def params(self) -> dict[str, Any]:
        """The suggestions service's query for these filters."""
        values: dict[str, Any] = {"year": self.year, "status": self.status, "color": self.color,
                                  "unit_id": self.unit,
                                  "key": None if self.key is None else str(self.key).lower(),
                                  "carried": None if self.carried is None else str(self.carried).lower()}
        return {k: v for k, v in values.items() if v is not None}

    def query(self, **changes: object) -> str:
        """This list's URL query with `changes`: every filter stays in the URL, the year too ("all")."""
        values: dict[str, object] = {
            "year": "all" if self.year is None else self.year, "status": self.status, "color": self.color,
            "unit": self.unit, "key": choice_code(self.key), "carried": choice_code(self.carried), "page": self.page,
            **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)})

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.status, self.color, self.unit, self.key, self.carried))


def choice_code(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def parse_filters(query: Mapping[str, str], this_year: int) -> Filters:
    """Filters from the URL. No year means this year's list; `year=all`, every year. A value that is
    not one of the choices is dropped rather than refused, so an old bookmark still opens the list."""
    year_text = (query.get("year") or "").strip()
    year: int | None = this_year
    if year_text == "all":
        year = None
    elif year_text.isdigit() and 2000 <= int(year_text) <= 2100:
        year = int(year_text)
    page_text = (query.get("page") or "").strip()
    page = int(page_text) if page_text.isdigit() and 1 <= int(page_text) <= 10_000 else 1
    status, color, unit = query.get("status") or None, query.get("color") or None, query.get("unit") or None
    return Filters(year=year, status=status if status in STATUS else None, color=color if color in COLOR else None,
                   unit=unit if unit and ID.match(unit) else None, key=CHOICE.get(query.get("key") or ""),
                   carried=CHOICE.get(query.get("carried") or ""), page=page)


def years(this_year: int) -> range:
    """The years the year filter offers: this one and the five before (a term and a bit)."""
    return range(this_year, this_year - 6, -1)


# ---- words -------------------------------------------------------------------------------------


def key_words(s: StaffSuggestion) -> str:
    if s.key:
        return "重点督办"
    if s.key_requested and s.status == "submitted":
        return "拟重点督办（待交办）"
    return ""


def carried_words(s: StaffSuggestion, year: int | None) -> str:
    """"2024年结转" when the suggestion is on the list of `year` from an earlier one."""
    if year is not None and s.year < year:
        return f"{s.year}年结转"
    if year is None and len(s.years) > 1:
        return f"已滚动到{s.years[-1]}年"
    return ""


def unit_names(ids: Sequence[str], names: Mapping[str, str]) -> str:
    return "、".join(names.get(u, u) for u in ids)


# ---- exports -----------------------------------------------------------------------------------


EXPORT_HEADERS = ("建议编号", "标题", "年度", "所在年度清单", "建议类别", "领衔代表", "重点督办", "督办领导",
                  "主办单位", "协办单位", "办理状态", "时限状态", "交办日期", "答复期限", "是否延期", "答复类别",
                  "答复日期", "下次回头看期限")


def _day(value: str | None) -> str:
    at = parse_time(value)
    return "" if at is None else at.strftime("%Y-%m-%d")


def export_row(s: StaffSuggestion, units: Mapping[str, str], deputies: Mapping[str, str]) -> list[str | int]:
    return [
        s.id, s.title, s.year, "、".join(str(y) for y in s.years) or str(s.year),
        KIND.get(s.kind, s.kind) + ("（急难小）" if s.micro else ""),
        deputies.get(s.lead_deputy_id, s.lead_deputy_id), key_words(s) or "否", s.supervisor or "",
        units.get(s.lead_unit_id or "", s.lead_unit_id or ""), unit_names(s.assisting_unit_ids, units),
        STATUS.get(s.status, s.status), COLOR.get(s.color, s.color), _day(s.assigned_at), _day(s.due_at),
        "是" if s.extended else "否", f"{s.outcome} {s.outcome_label or ''}".strip() if s.outcome else "",
        _day(s.reply.at) if s.reply else "", _day(s.next_review_at),
    ]


def export_rows(found: Sequence[StaffSuggestion], units: Mapping[str, str],
                deputies: Mapping[str, str]) -> list[list[str | int]]:
    return [export_row(s, units, deputies) for s in found]


# ---- forms -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What a form sent, as the service's body, and the problems found with it, by field."""

    body: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    # What was typed or chosen, to show again when the form comes back.
    values: dict[str, Any] = field(default_factory=dict)


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def check_assignment(form: Form, units: Mapping[str, str]) -> Checked:
    """交办: a lead unit, any assisting units, and for a key suggestion its supervising leader.
    `units` are the region's; an empty mapping (the list could not be read) leaves ids to the service."""
    lead = _text(form, "lead_unit_id")
    assisting = [u for u in dict.fromkeys(v for v in form.getlist("assisting_unit_ids") if isinstance(v, str)) if u]
    key = form.get("key") == "yes"
    supervisor = _text(form, "supervisor")
    errors: dict[str, str] = {}
    if not lead:
        errors["lead_unit_id"] = "请选择主办单位。"
    elif units and lead not in units:
        errors["lead_unit_id"] = "请从列表中选择主办单位。"
    if any(not ID.match(u) or (units and u not in units) for u in assisting):
        errors["assisting_unit_ids"] = "请从列表中选择协办单位。"
    elif lead and lead in assisting:
        errors["assisting_unit_ids"] = "主办单位不能同时是协办单位，请取消勾选。"
    if key and not supervisor:
        errors["supervisor"] = "重点督办的建议须填写督办领导。"
    elif len(supervisor) > 100:
        errors["supervisor"] = "督办领导不超过 100 个字。"
    body: dict[str, Any] = {"lead_unit_id": lead, "assisting_unit_ids": assisting, "key": key}
    if key:
        body["supervisor"] = supervisor
    values = {"lead_unit_id": lead, "assisting_unit_ids": assisting, "key": key, "supervisor": supervisor}
    return Checked(body, errors, values)


def chosen_ids(form: Form) -> tuple[list[str], str | None]:
    """The suggestions ticked on the list, and the problem with them, if any."""
    ids = list(dict.fromkeys(v for v in form.getlist("ids") if isinstance(v, str) and ID.match(v)))
    if not ids:
        return [], "请先在列表中勾选要交办的建议。"
    if len(ids) > BULK_MAX:
        return ids, f"一次最多交办 {BULK_MAX} 件，请分批交办。"
    return ids, None


def check_decision(form: Form) -> Checked:
    decision = _text(form, "decision")
    note = _text(form, "note")
    errors: dict[str, str] = {}
    if decision not in DECISIONS:
        errors["decision"] = "请选择主任会议的决定。"
    if not note:
        errors["note"] = "请写明主任会议的决定内容。"
    elif len(note) > 4000:
        errors["note"] = "决定内容不超过 4000 个字。"
    return Checked({"decision": decision, "note": note}, errors, {"decision": decision, "note": note})


def check_extension(form: Form) -> Checked:
    reason = _text(form, "reason")
    months_text = _text(form, "months") or "3"
    months = int(months_text) if months_text in ("1", "2", "3") else None
    errors: dict[str, str] = {}
    if len(reason) < 2:
        errors["reason"] = "请写明延期的理由。"
    elif len(reason) > 2000:
        errors["reason"] = "理由不超过 2000 个字。"
    if months is None:
        errors["months"] = "请选择延期 1 至 3 个月。"
    return Checked({"reason": reason, "months": months or 3}, errors, {"reason": reason, "months": months_text})


@dataclass(frozen=True)
class Outcome:
    """How assigning many at once went: the ones assigned and, for each refused, the service's words."""

    assigned: list[str]
    refused: dict[str, str]

    @property
    def summary(self) -> str:
        if not self.refused:
            return f"已交办 {len(self.assigned)} 件建议。"
        return f"已交办 {len(self.assigned)} 件，{len(self.refused)} 件没有交办（原因见各行）。"


def bulk_notice(count_text: str) -> str | None:
    """The notice after a bulk assignment answered 303 (`?done=assigned&n=3`)."""
    return f"已交办 {int(count_text)} 件建议。" if count_text.isdigit() and 0 < int(count_text) <= BULK_MAX else None
