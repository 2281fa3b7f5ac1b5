"""A list as a spreadsheet: XLSX (openpyxl) and CSV that Excel opens with its Chinese intact. Pure.

The CSV is UTF-8 with a byte-order mark: without it Excel on a Chinese Windows reads the file as
GBK and shows mojibake. A cell that starts like a formula is written as text in both, so a title
typed as `=HYPERLINK(…)` cannot run in the reader's spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int


def _safe(value: Cell) -> Cell:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows([_safe(v) for v in row] for row in rows)
    return (BOM + out.getvalue()).encode("utf-8")


def to_xlsx(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, sheet: str) -> bytes:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet[:31]
    ws.append(list(headers))
    for row in rows:
        ws.append([_safe(v) for v in row])
    ws.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        width = max([len(str(header))] + [len(str(r[index - 1])) for r in rows[:200]])
        # CJK characters are about two columns wide.
        ws.column_dimensions[get_column_letter(index)].width = min(60, max(8, width * 2 + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
