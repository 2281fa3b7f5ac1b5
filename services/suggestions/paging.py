"""Keyset paging of public lists by (time, id): the cursor names the last row of a page
(shared/cursors.py)."""

from __future__ import annotations

from datetime import datetime

from shared.cursors import BadCursor
from shared.cursors import decode as decode_parts
from shared.cursors import encode as encode_parts

__all__ = ["MAX_CURSOR_CHARS", "BadCursor", "decode", "encode"]

# A time and an id: far shorter than what a directory's cursor (a name and an id) may need.
MAX_CURSOR_CHARS = 200


def encode(at: datetime, row_id: str) -> str:
    return encode_parts(at.isoformat(), row_id)


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor names; BadCursor when it is not one of ours."""
    at_text, row_id = decode_parts(cursor, 2, max_chars=MAX_CURSOR_CHARS)
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError as exc:
        raise BadCursor("not a cursor") from exc
    if at.tzinfo is None:
        raise BadCursor("not a cursor")
    return at, row_id
