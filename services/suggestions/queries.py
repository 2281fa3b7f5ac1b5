"""Rules of `domain` as SQL conditions, so lists are filtered and paged in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


async def overdue(runtime: Runtime) -> dict[str, int]:
    """Suggestions past their reply deadline (red), for `minyi_overdue{kind}`."""
    red = color_is(Color.RED, datetime.now(UTC), SuggestionRow.status, SuggestionRow.due_at, SuggestionRow.reference)
    async with runtime.sessions()() as session:
        n = await session.scalar(select(func.count()).select_from(SuggestionRow).where(red))
    return {"suggestion_reply": int(n or 0)}
