"""The calendar page's view models: reading a year's holidays and make-up working days as typed or
uploaded, the year as twelve month grids, and the regions' clock rules. Pure.

Staff copy the State Council's notice (国务院办公厅关于某年部分节假日安排的通知) into the form, so
a day may be typed as 2031-10-01, 2031/10/1, 2031年10月1日 or 10月1日, and a holiday of several days
as a range (2031-10-01~2031-10-07, 10月1日至10月7日). A file holds the service's own body:
`{"holidays": [...], "workdays": [...]}`.
"""

from __future__ import annotations

import calendar as monthly
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.web.console_admin_calls import ClockRule
from services.web.console_admin_directory import REGION, within

MIN_YEAR, MAX_YEAR = 2000, 2100
# What intake takes at most in one year (its CalendarIn).
MAX_HOLIDAYS, MAX_WORKDAYS = 60, 20
# A holiday longer than this is a typing mistake (the longest, Spring Festival, is 8 or 9 days).
MAX_RANGE_DAYS = 31
MAX_FILE_BYTES = 32 * 1024
DEFAULT_ACK_DAYS, DEFAULT_REPLY_DAYS = 2, 7

_DAY = r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?"
_RANGE = re.compile(rf"^{_DAY}(?:~{_DAY})?$")
_DASHES = re.compile(r"\s*(?:~|～|至|到|—|–|－{1,2}|--)\s*")
_SEPARATORS = re.compile(r"[\s,，、;；]+")
WEEKDAYS = "一二三四五六日"


@dataclass
class CalendarForm:
    """The form as typed (or as a file filled it in): kept whole when it comes back with a problem."""

    year: str = ""
    holidays: str = ""
    workdays: str = ""


CALENDAR_FIELDS = ("form", "year", "file", "holidays", "workdays")


def read_calendar_form(fields: Mapping[str, str]) -> CalendarForm:
    return CalendarForm(year=fields.get("year", "").strip(), holidays=fields.get("holidays", ""),
                        workdays=fields.get("workdays", ""))


def _day(year_text: str | None, month: str, day: str, year: int) -> date:
    return date(int(year_text) if year_text else year, int(month), int(day))


def parse_days(text: str, year: int) -> tuple[list[date], list[str]]:
    """The days typed, in order, each once; and a Chinese message per piece that is not a day of `year`."""
    found: list[date] = []
    problems: list[str] = []
    for piece in _SEPARATORS.split(_DASHES.sub("~", text.strip())):
        if not piece:
            continue
        matched = _RANGE.match(piece)
        if matched is None:
            problems.append(f"“{piece[:30]}”不是日期，请写成 {year}-10-01 或 {year}-10-01~{year}-10-07。")
            continue
        y1, m1, d1, y2, m2, d2 = matched.groups()
        try:
            first = _day(y1, m1, d1, year)
            last = _day(y2 or y1, m2, d2, year) if m2 else first
        except ValueError:
            problems.append(f"“{piece[:30]}”不是有效的日期。")
            continue
        if last < first:
            problems.append(f"“{piece[:30]}”的结束日期早于开始日期。")
            continue
        if (last - first).days >= MAX_RANGE_DAYS:
            problems.append(f"“{piece[:30]}”超过 {MAX_RANGE_DAYS} 天，请检查是否写错。")
            continue
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        outside = [d for d in days if d.year != year]
        if outside:
            problems.append(f"“{piece[:30]}”不在 {year} 年内。")
            continue
        found += [d for d in days if d not in found]
    return found, problems


def from_file(data: bytes) -> tuple[CalendarForm | None, str | None]:
    """The texts a JSON file of the service's body fills the form with; or why the file cannot be read."""
    if len(data) > MAX_FILE_BYTES:
        return None, f"文件太大了（最多 {MAX_FILE_BYTES // 1024} KB），请检查是不是选错了文件。"
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None, "文件不是 JSON 格式。应为 {\"holidays\": [\"2031-01-01\", …], \"workdays\": [\"2031-02-08\", …]}。"
    if not isinstance(body, dict) or not isinstance(body.get("holidays"), list) \
            or not isinstance(body.get("workdays", []), list):
        return None, "文件中应有 holidays（节假日）列表，可以有 workdays（调休上班日）列表。"
    values = [*body["holidays"], *body.get("workdays", [])]
    if not all(isinstance(v, str) for v in values):
        return None, "文件中的日期应写成文字，例如 \"2031-10-01\"。"
    return CalendarForm(holidays="\n".join(body["holidays"]), workdays="\n".join(body.get("workdays", []))), None


@dataclass(frozen=True)
class CalendarLoad:
    year: int
    holidays: list[date]
    workdays: list[date]


def check_calendar(form: CalendarForm) -> tuple[CalendarLoad | None, dict[str, str]]:
    """What to send to intake, or Chinese messages by field."""
    errors: dict[str, str] = {}
    year = int(form.year) if form.year.isdigit() else 0
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None, {"year": f"请填写年份（{MIN_YEAR} 到 {MAX_YEAR} 之间），例如 2031。"}
    holidays, problems = parse_days(form.holidays, year)
    if problems:
        errors["holidays"] = " ".join(problems[:3])
    elif not holidays:
        errors["holidays"] = "请填写这一年的法定节假日。"
    elif len(holidays) > MAX_HOLIDAYS:
        errors["holidays"] = f"节假日最多 {MAX_HOLIDAYS} 天，现在有 {len(holidays)} 天。"
    workdays, problems = parse_days(form.workdays, year)
    if problems:
        errors["workdays"] = " ".join(problems[:3])
    elif len(workdays) > MAX_WORKDAYS:
        errors["workdays"] = f"调休上班日最多 {MAX_WORKDAYS} 天，现在有 {len(workdays)} 天。"
    both = sorted(set(holidays) & set(workdays))
    if both and "workdays" not in errors:
        errors["workdays"] = f"{both[0].month}月{both[0].day}日不能既是节假日又是调休上班日。"
    if errors:
        return None, errors
    return CalendarLoad(year, sorted(holidays), sorted(workdays)), {}


def calendar_field(service_field: str) -> str:
    """The form's field for intake's `holidays[3]`, `body.workdays[0]` …; the form's top otherwise."""
    name = service_field.rsplit(".", 1)[-1].split("[", 1)[0]
    return name if name in CALENDAR_FIELDS else "form"


# ---- the year on the page -----------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date | None  # None: a blank before the 1st or after the last day
    kind: str = ""  # holiday | workday | weekend | weekday

    @property
    def label(self) -> str:
        return {"holiday": "休", "workday": "班"}.get(self.kind, "")


@dataclass(frozen=True)
class Month:
    number: int
    weeks: list[list[Day]]
    holidays: int
    workdays: int


def month_grids(year: int, holidays: Iterable[date], workdays: Iterable[date]) -> list[Month]:
    """The year as twelve grids of weeks, Monday first, each day marked 休 or 班 where it differs."""
    off, on = set(holidays), set(workdays)
    months: list[Month] = []
    for number in range(1, 13):
        weeks = []
        for week in monthly.Calendar(firstweekday=0).monthdatescalendar(year, number):
            row = []
            for d in week:
                if d.month != number:
                    row.append(Day(None))
                elif d in off:
                    row.append(Day(d, "holiday"))
                elif d in on:
                    row.append(Day(d, "workday"))
                else:
                    row.append(Day(d, "weekend" if d.weekday() >= 5 else "weekday"))
            weeks.append(row)
        months.append(Month(number, weeks, sum(1 for d in off if d.month == number),
                            sum(1 for d in on if d.month == number)))
    return months


def spans(days: Sequence[date]) -> list[str]:
    """Days as the notice writes them: runs joined over the weekends between them (10月1日至10月7日)."""
    ordered = sorted(set(days))
    runs: list[tuple[date, date]] = []
    for d in ordered:
        if runs and all((runs[-1][1] + timedelta(days=i)).weekday() >= 5
                        for i in range(1, (d - runs[-1][1]).days)):
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return [f"{a.month}月{a.day}日" if a == b else f"{a.month}月{a.day}日至{b.month}月{b.day}日" for a, b in runs]


def parse_iso_days(values: Iterable[str]) -> list[date]:
    return sorted(date.fromisoformat(v[:10]) for v in values)


# ---- clock rules ---------------------------------------------------------------------------------


@dataclass
class RuleForm:
    region_prefix: str = ""
    ack_days: str = str(DEFAULT_ACK_DAYS)
    reply_days: str = str(DEFAULT_REPLY_DAYS)
    remind_hour: str = "9"
    close_days: str = "15"


RULE_FIELDS = ("form", "region_prefix", "ack_days", "reply_days", "remind_hour", "close_days")
_LIMITS = {"ack_days": (1, 30, "受理期限"), "reply_days": (1, 60, "答复期限"), "remind_hour": (0, 23, "提醒时间（点）"),
           "close_days": (1, 90, "自动办结天数")}


def read_rule_form(fields: Mapping[str, str]) -> RuleForm:
    return RuleForm(**{name: fields.get(name, "").strip() for name in RULE_FIELDS if name != "form"})


def rule_form_of(rule: ClockRule | None, region: str) -> RuleForm:
    if rule is None:
        return RuleForm(region_prefix=region if REGION.match(region) and len(region) >= 6 else "")
    return RuleForm(rule.region_prefix, str(rule.ack_days), str(rule.reply_days), str(rule.remind_hour),
                    str(rule.close_days))


def check_rule(form: RuleForm, session_region: str) -> tuple[dict[str, int] | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not (REGION.match(form.region_prefix) and len(form.region_prefix) >= 6):
        errors["region_prefix"] = "地区编码至少 6 位，例如 330106。"
    elif not within(session_region, form.region_prefix):
        errors["region_prefix"] = "这个地区不在您的管辖范围内。"
    values: dict[str, int] = {}
    for name, (low, high, label) in _LIMITS.items():
        text = getattr(form, name)
        if not text.isdigit() or not low <= int(text) <= high:
            errors[name] = f"{label}应为 {low} 到 {high} 之间的整数。"
        else:
            values[name] = int(text)
    if "ack_days" in values and "reply_days" in values and values["reply_days"] < values["ack_days"]:
        errors["reply_days"] = "答复期限不能短于受理期限。"
    return (None, errors) if errors else (values, {})


def rule_field(service_field: str) -> str:
    name = service_field.rsplit(".", 1)[-1]
    return name if name in RULE_FIELDS else "form"
