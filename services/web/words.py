"""How the pages say things in Chinese: dates, statuses, kinds and levels. Pure functions."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
_WEEKDAYS = "一二三四五六日"

STATUS = {
    "submitted": "待受理",
    "acknowledged": "已受理",
    "dispatched": "已转办",
    "answered": "已答复",
    "closed": "已办结",
}
# What the citizen may expect next, by status.
STATUS_NEXT = {
    "submitted": "代表收到后会尽快受理。",
    "acknowledged": "代表正在办理，答复后您可以在这里查看并评价。",
    "dispatched": "已转交基层治理平台办理，办理结果会在这里告诉您。",
    "answered": "已经答复，请看下面的答复内容并给出评价。",
    "closed": "这条反映已经办结。",
}
LEVEL = {
    "national": "全国人大代表",
    "provincial": "省人大代表",
    "municipal": "市人大代表",
    "county": "县（区）人大代表",
    "township": "乡镇人大代表",
}
STATION_KIND = {
    "service_center": "代表联络服务中心",
    "home": "人大代表之家",
    "station": "人大代表联络站",
    "studio": "选区代表工作室",
    "cloud_point": "云端联络点",
}
ANSWERED_BY = {"deputy": "代表", "station_staff": "联络站工作人员", "grid": "基层治理平台"}
OUTCOME = {"A": "已解决或列入本年度计划解决", "B": "列入规划逐步解决", "C": "留作参考"}
BOARD = {"red": "红榜", "yellow": "黄榜", "black": "黑榜"}
GRADE = {"excellent": "优秀", "good": "良好", "competent": "称职", "basically_competent": "基本称职",
         "not_competent": "不称职"}


# Years a date typed into a form may name. Outside them it is a slip (0206 for 2026), and at the
# ends of what Python holds, the day after 9999-12-31 or 0001-01-01 in another time zone failed the
# page with a 500 instead of saying what was wrong.
FIRST_TYPED_YEAR, LAST_TYPED_YEAR = 2000, 2099
TYPED_YEARS_MESSAGE = f"请填写 {FIRST_TYPED_YEAR} 年至 {LAST_TYPED_YEAR} 年之间的日期。"


def plausible(day: date) -> bool:
    """Whether a date (or time) typed into a form lies in the years a form may name."""
    return FIRST_TYPED_YEAR <= day.year <= LAST_TYPED_YEAR


def beijing(at: datetime) -> datetime | None:
    """A typed time in Beijing time, a naive one read as Beijing time; None when none exists for it
    (0001-01-01T00:00+14:00 overflows)."""
    try:
        return at.replace(tzinfo=SHANGHAI) if at.tzinfo is None else at.astimezone(SHANGHAI)
    except OverflowError:
        return None


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
    return at.astimezone(SHANGHAI)


def date_cn(value: str | datetime | None, *, weekday: bool = False) -> str:
    """2026年12月8日 (星期二), in Beijing time."""
    at = parse_time(value)
    if at is None:
        return ""
    text = f"{at.year}年{at.month}月{at.day}日"
    return f"{text}（星期{_WEEKDAYS[at.weekday()]}）" if weekday else text


def short_date_cn(value: str | datetime | None) -> str:
    """12月8日, for sentences about the next few days."""
    at = parse_time(value)
    return "" if at is None else f"{at.month}月{at.day}日"


def datetime_cn(value: str | datetime | None) -> str:
    at = parse_time(value)
    return "" if at is None else f"{at.year}年{at.month}月{at.day}日 {at.hour:02d}:{at.minute:02d}"


def iso(value: str | datetime | None) -> str:
    at = parse_time(value)
    return "" if at is None else at.isoformat()


def percent(numerator: int | float, denominator: int | float) -> str:
    if not denominator:
        return "—"
    value = 100.0 * numerator / denominator
    return f"{value:.0f}%" if value in (0.0, 100.0) else f"{value:.1f}%"


def group_receipt_code(code: str) -> str:
    """ABCD-EFGH-JKLM, as printed on slips, whatever way it was typed."""
    bare = normalize_typed_code(code)
    return "-".join(bare[i:i + 4] for i in range(0, len(bare), 4))


def normalize_typed_code(text: str) -> str:
    """A typed receipt code without spaces and dashes, upper case; intake checks the rest."""
    return "".join(ch for ch in text.upper() if ch.isalnum())
