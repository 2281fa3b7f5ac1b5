"""Rules of `domain` as SQL conditions, so lists are filtered and paged in the database."""

from __future__ import annotations

import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select

from services.suggestions.domain import YELLOW_DAYS, Color, Status
from services.suggestions.models import SuggestionRow
from shared.service import Runtime


def color_is(color: Color, now: datetime, status: Any, due_at: Any, reference: Any) -> ColumnElement[bool]:
    """`domain.color(...) == color` over the given columns (tested against it on PostgreSQL)."""
    closed = status == Status.CLOSED.value
    grey = and_(reference, status == Status.FOLLOWING_UP.value)
    if color == Color.BLUE:
        return closed
    if color == Color.GREY:
        return and_(not_(closed), grey)
    running = and_(not_(closed), not_(grey))
    soon = now + timedelta(days=YELLOW_DAYS)
    if color == Color.RED:
        return and_(running, due_at.is_not(None), due_at < now)
    if color == Color.YELLOW:
        return and_(running, due_at.is_not(None), due_at >= now, due_at <= soon)
    return and_(running, or_(due_at.is_(None), due_at > soon))


@cache
def _digits() -> str:
    """Python's `\\d` (every Unicode decimal digit) as the inside of a PostgreSQL bracket expression,
    whose own `[[:digit:]]` depends on the database's locale."""
    ranges: list[list[int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point)) == "Nd":
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def published(text: Any) -> ColumnElement[str]:
    """`domain.redact(text)` in SQL (tested against it on PostgreSQL): what a search of published text
    may match, so that it never answers whether a masked phone or ID number holds some digits."""
    d = _digits()
    id_masked = func.regexp_replace(
        text, f"(?<![0-9A-Za-z])([{d}]{{4}})[{d}]{{10}}([{d}]{{3}}[{d}Xx])(?![0-9A-Za-z])", r"\1**********\2", "g")
    return func.regexp_replace(id_masked, f"(?<![{d}])(1[3-9][{d}])[{d}]{{4}}([{d}]{{4}})(?![{d}])", r"\1****\2",
                               "g")


async def overdue(runtime: Runtime) -> dict[str, int]:
    """Suggestions past their reply deadline (red), for `minyi_overdue{kind}`."""
    red = color_is(Color.RED, datetime.now(UTC), SuggestionRow.status, SuggestionRow.due_at, SuggestionRow.reference)
    async with runtime.sessions()() as session:
        n = await session.scalar(select(func.count()).select_from(SuggestionRow).where(red))
    return {"suggestion_reply": int(n or 0)}
