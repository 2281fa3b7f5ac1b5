"""Text every service refuses at the door, whatever the field.

PostgreSQL text and jsonb cannot hold U+0000, and a lone surrogate (valid in JSON's `\\ud800`
escapes, never in Unicode text) cannot be encoded as UTF-8 at all. Either one, let through, fails
the statement that stores or compares it: a 500 for what is plainly bad input, a 422.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

MESSAGE = "不能包含空字符（U+0000）或无效的 Unicode 字符"


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_at(value: Any) -> str | None:
    """Where the first text that cannot be stored sits in a JSON-like value ("" for the value itself); else None."""
    if isinstance(value, str):
        return None if storable(value) else ""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not storable(key):
                return f".{key!r}"
            if (inner := unstorable_at(item)) is not None:
                return f".{key}{inner}"
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if (inner := unstorable_at(item)) is not None:
                return f"[{i}]{inner}"
    return None


class StorableText(BaseModel):
    """Base of request bodies: every field, nested values included, holds only storable text."""

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        where = unstorable_at(value)
        if where is not None:
            raise ValueError(f"{MESSAGE}（{where.lstrip('.')}）" if where else MESSAGE)
        return value
