"""Idempotent inbox: an event id is recorded in the same transaction as its effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Table, delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


async def claim(session: AsyncSession, inbox: Table, *, consumer: str, event_id: str, subject: str) -> bool:
    """True when this consumer has not seen the event; False for a redelivery or a replay."""
    result = await session.execute(
        insert(inbox)
        .values(consumer=consumer, event_id=event_id, subject=subject)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    return bool(getattr(result, "rowcount", 0))


async def claim_many(session: AsyncSession, inbox: Table, *, consumer: str,
                     events: Sequence[tuple[str, str]]) -> set[str]:
    """Of the (event id, subject) pairs, the ids this consumer had not seen: claimed now."""
    if not events:
        return set()
    # Parameters apart from the statement (executemany): SQLAlchemy sends one multi-row INSERT and
    # reuses its compiled form, where rows in `.values([...])` would be compiled again every time.
    result = await session.execute(
        insert(inbox).on_conflict_do_nothing(index_elements=["consumer", "event_id"]).returning(inbox.c.event_id),
        [{"consumer": consumer, "event_id": event_id, "subject": subject} for event_id, subject in events],
    )
    return set(result.scalars())


async def purge(session: AsyncSession, inbox: Table, older_than: timedelta) -> int:
    """Forget ids older than any redelivery or replay the streams can still produce."""
    result = await session.execute(delete(inbox).where(inbox.c.received_at < func.now() - older_than))
    return int(getattr(result, "rowcount", 0) or 0)
