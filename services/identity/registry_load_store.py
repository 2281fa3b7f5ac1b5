"""Registry loads in the database: where each load stands, and one chunk committed at a time.

A chunk's records, its rejected lines and the load's new committed line go in one transaction, so
after any interruption the committed line says exactly what is stored and a re-sent file resumes
after it. Two requests feeding the same load at once cannot both advance it: the committed line is
compared and set in that transaction, and the slower one finds it moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.registry_store import Stored, store_rows_apart

LOADING: Final = "loading"
COMPLETE: Final = "complete"
INTERRUPTED: Final = "interrupted"


@dataclass(frozen=True)
class Load:
    source: str
    load_id: str
    state: str
    lines_committed: int
    accepted: int
    unchanged: int
    rejected: int
    created_at: datetime
    updated_at: datetime


class LoadMoved(Exception):
    """Another request committed lines of the same load meanwhile."""


_COLUMNS = "source, load_id, state, lines_committed, accepted, unchanged, rejected, created_at, updated_at"


def _load(row: Any) -> Load:
    return Load(*row)


async def begin_load(session: AsyncSession, source: str, load_id: str) -> Load:
    """The load, created if new, marked as loading again."""
    row = (await session.execute(text(f"""
        INSERT INTO identity.registry_loads (source, load_id, state) VALUES (:source, :load_id, :state)
        ON CONFLICT (source, load_id) DO UPDATE SET state = excluded.state, updated_at = now()
        RETURNING {_COLUMNS}"""), {"source": source, "load_id": load_id, "state": LOADING})).one()
    return _load(row)


async def get_load(session: AsyncSession, source: str, load_id: str) -> Load | None:
    row = (await session.execute(text(f"SELECT {_COLUMNS} FROM identity.registry_loads "
                                      "WHERE source = :source AND load_id = :load_id"),
                                 {"source": source, "load_id": load_id})).one_or_none()
    return None if row is None else _load(row)


async def rejections(session: AsyncSession, source: str, load_id: str, limit: int) -> list[tuple[int, str]]:
    result = await session.execute(text(
        "SELECT line, reason FROM identity.registry_load_rejections WHERE source = :source AND load_id = :load_id "
        "ORDER BY line LIMIT :limit"), {"source": source, "load_id": load_id, "limit": limit})
    return [(int(r.line), str(r.reason)) for r in result]


async def commit_chunk(session: AsyncSession, load: Load, *, through_line: int, rows: Sequence[tuple[Any, ...]],
                       row_lines: Sequence[Sequence[int]], valid: int, rejected: list[tuple[int, str]]) -> Load:
    """Store a chunk's rows and rejected lines and advance the load to `through_line`, in the
    session's transaction; LoadMoved when the load is no longer where `load` says it was."""
    stored: Stored = await store_rows_apart(session, rows)
    refused_lines = [(line, f"数据库无法保存该记录（{state}）") for position, state in stored.refused
                     for line in row_lines[position]]
    bad = rejected + refused_lines
    if bad:
        await session.execute(text(
            "INSERT INTO identity.registry_load_rejections (source, load_id, line, reason) "
            "VALUES (:source, :load_id, :line, :reason) ON CONFLICT DO NOTHING"),
            [{"source": load.source, "load_id": load.load_id, "line": line, "reason": reason} for line, reason in bad])
    unchanged = valid - len(refused_lines) - stored.changed
    row = (await session.execute(text(f"""
        UPDATE identity.registry_loads SET lines_committed = :through, accepted = accepted + :accepted,
               unchanged = unchanged + :unchanged, rejected = rejected + :rejected, updated_at = now()
        WHERE source = :source AND load_id = :load_id AND lines_committed = :expected
        RETURNING {_COLUMNS}"""), {
        "through": through_line, "accepted": stored.changed, "unchanged": unchanged, "rejected": len(bad),
        "source": load.source, "load_id": load.load_id, "expected": load.lines_committed,
    })).one_or_none()
    if row is None:
        raise LoadMoved(load.load_id)
    return _load(row)


async def end_load(session: AsyncSession, load: Load, state: str) -> Load:
    row = (await session.execute(text(f"""
        UPDATE identity.registry_loads SET state = :state, updated_at = now()
        WHERE source = :source AND load_id = :load_id RETURNING {_COLUMNS}"""),
        {"state": state, "source": load.source, "load_id": load.load_id})).one()
    return _load(row)
