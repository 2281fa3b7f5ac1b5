"""Keyset paging cursors: an opaque value naming the last row of a page (the values it is ordered by),
so the next page starts right after it however deep the list goes, at the cost of an index seek
instead of an OFFSET that reads and throws away every row before it."""

from __future__ import annotations

import base64
import binascii
import json

from shared.inputs import storable

MAX_CURSOR_CHARS = 400


class BadCursor(ValueError):
    """A cursor this service did not hand out (or one mangled on the way)."""


def encode(*parts: str) -> str:
    raw = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str, parts: int, *, max_chars: int = MAX_CURSOR_CHARS) -> tuple[str, ...]:
    """The `parts` strings a cursor names; BadCursor when it is not one of ours. A forged one holding
    text the database refuses (a NUL) is refused here, before it reaches a query."""
    if len(cursor) > max_chars:
        raise BadCursor("too long")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadCursor("not a cursor") from exc
    if not (isinstance(value, list) and len(value) == parts
            and all(isinstance(v, str) and v and storable(v) for v in value)):
        raise BadCursor("not a cursor")
    return tuple(value)
