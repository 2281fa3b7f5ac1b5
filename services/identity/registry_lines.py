"""Lines of a registry load file (NDJSON, or CSV with a header row) as the raw records `registry`
validates: the same shape whichever format a province exports.

CSV cells are text; the two boolean fields are read from the spellings export tools write, and an
empty cell is a missing field, so a CSV row and its NDJSON twin are validated, and refused, alike.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.identity import registry
from shared.pii import Keyring

CSV_REQUIRED: Final = ("record_id", "id_number", "name", "hukou_region_code", "residence_region_code", "status",
                       "political_rights", "updated_at")
BOOLEAN_FIELDS: Final = frozenset({"political_rights", "residence_certificate"})
_TRUE: Final = frozenset({"true", "1", "t", "yes", "y", "是"})
_FALSE: Final = frozenset({"false", "0", "f", "no", "n", "否"})


class LineError(ValueError):
    """A line that is no record at all; `reason` is safe to show (no personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("不是有效的文本（应为 UTF-8 编码）") from None


def csv_header(line: bytes) -> tuple[str, ...]:
    """The field names of a CSV load; LineError when a required one is missing or one repeats."""
    text = _decode(line).removeprefix("\ufeff")  # the BOM spreadsheet programs put first
    names = tuple(name.strip() for name in _cells(text))
    missing = [name for name in CSV_REQUIRED if name not in names]
    if missing:
        raise LineError(f"CSV 表头缺少字段：{'、'.join(missing)}")
    if len(set(names)) != len(names):
        raise LineError("CSV 表头中有重复的字段名")
    return names


def _cells(text: str) -> list[str]:
    try:
        rows = list(csv.reader([text.rstrip("\r")], strict=True))
    except csv.Error:
        raise LineError("不是有效的 CSV 行（引号不成对）") from None
    return rows[0] if rows else []


def _cell_value(name: str, cell: str) -> Any:
    if name in BOOLEAN_FIELDS:
        folded = cell.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    return cell


def csv_record(header: tuple[str, ...], line: bytes) -> dict[str, Any]:
    """One CSV data line as a raw record; empty cells are left out, as absent JSON fields would be."""
    cells = _cells(_decode(line))
    if len(cells) != len(header):
        raise LineError(f"CSV 行有{len(cells)}个字段，表头有{len(header)}个")
    return {name: _cell_value(name, cell) for name, cell in zip(header, cells, strict=True) if cell != ""}


def ndjson_record(line: bytes) -> Any:
    try:
        return registry.parse_json(line)
    except registry.RecordError as exc:
        raise LineError(exc.reason) from None


@dataclass
class PreparedLines:
    """A chunk of a load file, validated and encrypted: rows to store and lines refused."""

    through_line: int
    rows: list[tuple[Any, ...]]
    # For each row, the line numbers it stands for (every version of its key in the chunk).
    row_lines: list[list[int]]
    valid: int
    rejected: list[tuple[int, str]]


def prepare_lines(source: str, header: tuple[str, ...] | None, lines: Iterable[tuple[int, bytes]],
                  through_line: int, keyring: Keyring, *, now: datetime) -> PreparedLines:
    """Numbered lines (NDJSON, or CSV data lines under `header`) to rows; blank lines are skipped."""
    items: list[tuple[int, Any]] = []
    rejected: list[tuple[int, str]] = []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            items.append((number, ndjson_record(line) if header is None else csv_record(header, line)))
        except LineError as exc:
            rejected.append((number, exc.reason))
    prepared = registry.prepare_batch(source, items, keyring, now=now)
    return PreparedLines(through_line=through_line, rows=prepared.rows, row_lines=prepared.row_items,
                         valid=prepared.valid, rejected=sorted(rejected + prepared.rejected))
