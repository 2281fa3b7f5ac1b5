"""The region's open reports as the station clerk sees them: filters read from the URL, how late
each report is, who it waits on, and the same rows as CSV and XLSX. Pure functions, no I/O."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from openpyxl import Workbook
from openpyxl.styles import Font

from services.web import words
from services.web.station_calls import ReportRow

CHANNEL = {"miniprogram": "小程序", "h5": "扫码网页", "kiosk": "一体机", "hotline": "电话", "paper": "纸质来信",
           "api": "系统对接"}
OPEN_STATUSES = ("submitted", "acknowledged", "dispatched")
_REGION = re.compile(r"^\d{6,12}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# Orders the clerk may choose besides the default (overdue and next deadline first), as intake names them.
SORTS = {"-received": "最新收到的在前", "received": "最早收到的在前"}


@dataclass(frozen=True)
class Filters:
    """The list's filters as the URL holds them; `query()` gives them back for links and intake's params."""

    status: str = ""
    overdue: str = ""  # "", "yes", "no"
    region: str = ""
    received_from: str = ""  # YYYY-MM-DD, Beijing time
    received_to: str = ""
    page: int = 1
    sort: str = ""  # "" (next deadline first), "-received", "received": intake's `sort`

    def query(self, **changes: Any) -> str:
        values = {"status": self.status, "overdue": self.overdue, "region": self.region,
                  "from": self.received_from, "to": self.received_to, "sort": self.sort, "page": self.page,
                  **changes}
        return urlencode({k: v for k, v in values.items() if v != "" and not (k == "page" and v == 1)})

    def intake_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.status:
            params["status"] = self.status
        if self.overdue:
            params["overdue"] = "true" if self.overdue == "yes" else "false"
        if self.region:
            params["region_code"] = self.region
        if self.received_from:
            params["received_from"] = f"{self.received_from}T00:00:00+08:00"
        if self.received_to:
            # The whole day the clerk chose, up to midnight after it.
            day = datetime.fromisoformat(self.received_to) + timedelta(days=1)
            params["received_to"] = f"{day:%Y-%m-%d}T00:00:00+08:00"
        if self.sort:
            params["sort"] = self.sort
        return params


def read_filters(query: Mapping[str, str]) -> Filters:
    """Filters from the URL; a value that is not one of the choices is dropped rather than refused."""
    status = query.get("status", "")
    overdue = query.get("overdue", "")
    region = query.get("region", "").strip()
    first, last = query.get("from", ""), query.get("to", "")
    page_text = query.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) <= 10_000 else 1
    return Filters(status=status if status in OPEN_STATUSES else "",
                   overdue=overdue if overdue in ("yes", "no") else "",
                   region=region if _REGION.match(region) else "",
                   received_from=first if _valid_day(first) else "",
                   received_to=last if _valid_day(last) else "", page=page,
                   sort=sort if (sort := query.get("sort", "")) in SORTS else "")


def _valid_day(text: str) -> bool:
    if not _DAY.match(text):
        return False
    try:
        return words.plausible(datetime.fromisoformat(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class Due:
    css: str  # due-late, due-soon, due-ok
    label: str  # the words that go with the colour: 超期, 即将到期, 正常


def due_state(row: ReportRow, now: datetime) -> Due:
    if row.overdue:
        return Due("due-late", "超期")
    due_at = words.parse_time(row.due_at)
    if due_at is not None and due_at - now <= timedelta(days=1):
        return Due("due-soon", "即将到期")
    return Due("due-ok", "正常")


def waits_on(row: ReportRow, names: Mapping[tuple[str, str], str]) -> str:
    """Who must act next: the grid platform while its ticket is open, else the deputy or the station
    the report is aimed at, else (a report for a place, nobody named) the station's own staff."""
    if row.status == "dispatched":
        return "基层治理平台（网格）"
    target = row.target
    if target.kind in ("deputy", "station") and target.id:
        name = names.get((target.kind, target.id), target.id)
        return f"代表 {name}" if target.kind == "deputy" else name
    return "联络站工作人员（未指定代表）"


def step(row: ReportRow) -> str:
    """What is awaited: taking the report up (受理) or the answer (答复)."""
    if row.status == "dispatched":
        return "等待平台办结"
    return "等待受理" if row.acknowledged_at is None else "等待答复"


HEADERS = ("反映编号", "收到时间", "渠道", "状态", "等待谁办理", "待办事项", "期限", "是否超期", "地区编码", "类别",
           "反映人", "内容摘要")


def export_rows(rows: Sequence[ReportRow], names: Mapping[tuple[str, str], str], now: datetime,
                categories: Mapping[str, str]) -> list[list[str]]:
    """The rows of an export, in Chinese, times in Beijing time; a reporter only as masked."""
    out: list[list[str]] = []
    for row in rows:
        reporter = "匿名" if row.anonymous or row.reporter is None else f"{row.reporter.name} {row.reporter.phone}"
        out.append([
            row.id, words.datetime_cn(row.received_at), CHANNEL.get(row.channel, row.channel),
            words.STATUS.get(row.status, row.status), waits_on(row, names), step(row),
            words.datetime_cn(row.due_at), due_state(row, now).label, row.region_code,
            categories.get(row.category or "", row.category or ""), reporter, row.excerpt,
        ])
    return out


def to_csv(rows: Sequence[Sequence[str]]) -> bytes:
    """UTF-8 with a byte-order mark: Excel on a government PC opens it as Chinese, not as mojibake."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _cell(value: str) -> str:
    # A cell starting like a formula would run as one when the file is opened in a spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def to_xlsx(rows: Sequence[Sequence[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "本地区待办反映"
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([_cell(v) for v in row])
    for column, width in zip("ABCDEFGHIJKL", (38, 18, 10, 8, 22, 12, 18, 10, 14, 12, 16, 60), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
