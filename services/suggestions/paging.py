"""Keyset paging of public lists: an opaque cursor names the last row of a page (its time and id),
so the next page starts right after it however deep the list goes, at the cost of an index seek
instead of an OFFSET that reads and throws away every row before it."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

MAX_CURSOR_CHARS = 200


class BadCursor(ValueError):
    """A cursor this service did not hand out (or one mangled on the way)."""


def encode(at: datetime, row_id: str) -> str:
    raw = json.dumps([at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor names; BadCursor when it is not one of ours."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor("too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("not a cursor") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise BadCursor("not a cursor")
    try:
        at = datetime.fromisoformat(value[0])
    except ValueError as exc:
        raise BadCursor("not a cursor") from exc
    if at.tzinfo is None or not value[1]:
        raise BadCursor("not a cursor")
    return at, value[1]
