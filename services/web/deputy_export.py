"""The deputy's list of reports as a spreadsheet: XLSX, and CSV in UTF-8 with a BOM so that Excel
opens the Chinese headers right. Dates are Beijing time. Pure: rows in, bytes out."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from services.web.deputy_calls import InboxItem
from services.web.deputy_view import CHANNEL, due_mark
from services.web.words import STATUS, parse_time

HEADERS = ("编号", "状态", "期限情况", "下一期限", "受理期限", "答复期限", "收到时间", "类别", "渠道", "反映人",
           "附议人数", "内容摘要")
WIDTHS = (38, 10, 12, 18, 18, 18, 18, 14, 14, 12, 10, 60)
DATE_FORMAT = "yyyy-mm-dd hh:mm"
# A citizen's words that start like a formula must stay words when a spreadsheet opens them.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _local(value: str | None) -> datetime | None:
    """Beijing time without an offset: spreadsheets keep no zone, and every reader here means Beijing."""
    at = parse_time(value)
    return None if at is None else at.replace(tzinfo=None)


def _reporter(item: InboxItem) -> str:
    if item.anonymous:
        return "匿名"
    if item.reporter_unreadable or item.reporter is None:
        return "无法读取"
    return item.reporter.name


def rows(items: Sequence[InboxItem], categories: Mapping[str, str], now: datetime) -> list[list[object]]:
    out: list[list[object]] = []
    for item in items:
        mark = due_mark(item.status, item.due_at, item.acknowledged_at is not None, now)
        out.append([
            item.id, STATUS.get(item.status, item.status), mark.label, _local(item.due_at), _local(item.ack_due),
            _local(item.reply_due), _local(item.received_at),
            categories.get(item.category or "", item.category or ""), CHANNEL.get(item.channel, item.channel),
            _reporter(item), item.supporters, item.excerpt,
        ])
    return out


def as_csv(table: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for row in table:
        writer.writerow([v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime)
                         else "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in row])
    return out.getvalue().encode("utf-8-sig")


def as_xlsx(table: Sequence[Sequence[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "群众意见"
    sheet.append(list(HEADERS))
    for row in table:
        sheet.append(list(row))
    for n, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(n)].width = width
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, datetime):
                cell.number_format = DATE_FORMAT
            elif isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # openpyxl would otherwise store it as a formula
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
