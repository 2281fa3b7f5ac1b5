"""`Idempotency-Key` for POSTs that create something (docs/integrators.md, "Idempotency").

The key is claimed inside the same transaction as the effect, so a retry either finds the
finished answer (and gets it again) or, when it races the first attempt, waits on the row lock
until that attempt commits or rolls back. A rolled-back attempt leaves no claim behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import conflict

TABLE_NAME = "idempotency_keys"
RETENTION = timedelta(days=7)


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        TABLE_NAME,
        metadata,
        # The operation and the caller (or "anonymous"): keys of different callers never meet.
        Column("scope", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("scope", "key", name=f"pk_{TABLE_NAME}"),
        Index(f"ix_{TABLE_NAME}_created_at", "created_at"),
    )


def fingerprint(body: Any) -> str:
    """Hash of the request as the server understood it: key order and spacing do not matter."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


async def claim(session: AsyncSession, table: Table, *, scope: str, key: str, print_: str) -> Replay | None:
    """None: go ahead (and call `remember` before committing). A Replay: answer with it instead."""
    inserted = await session.execute(
        insert(table).values(scope=scope, key=key, fingerprint=print_)
        .on_conflict_do_nothing(index_elements=["scope", "key"]).returning(table.c.key)
    )
    if inserted.first() is not None:
        return None
    row = (await session.execute(
        select(table.c.fingerprint, table.c.status_code, table.c.response)
        .where(table.c.scope == scope, table.c.key == key)
    )).one()
    if row.fingerprint != print_ or row.status_code is None:
        raise conflict("该幂等键（Idempotency-Key）已用于另一个请求，请使用新的幂等键。")
    return Replay(row.status_code, row.response)


async def remember(session: AsyncSession, table: Table, *, scope: str, key: str, status_code: int,
                   body: Any) -> None:
    await session.execute(
        table.update().where(table.c.scope == scope, table.c.key == key)
        .values(status_code=status_code, response=body)
    )


@dataclass(frozen=True)
class Request:
    """One POST's key and what it asked, for `replayed` and `answer`; `key` None means no Idempotency-Key."""

    table: Table
    scope: str
    key: str | None
    print_: str

    async def replayed(self, session: AsyncSession) -> JSONResponse | None:
        """The first answer as a response when this is a retry; None when the POST should go ahead."""
        if self.key is None:
            return None
        replay = await claim(session, self.table, scope=self.scope, key=self.key, print_=self.print_)
        return None if replay is None else JSONResponse(replay.body, status_code=replay.status_code)

    async def answer(self, session: AsyncSession, body: Any, status_code: int) -> JSONResponse:
        """Keep the answer for retries (in the same transaction) and return it as a response."""
        if self.key is not None:
            await remember(session, self.table, scope=self.scope, key=self.key, status_code=status_code, body=body)
        return JSONResponse(body, status_code=status_code)


async def purge(session: AsyncSession, table: Table, older_than: timedelta = RETENTION) -> int:
    result = await session.execute(table.delete().where(table.c.created_at < func.now() - older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def for_body(table: Table, scope: str, key: str | None, body: Any) -> Request:
    return Request(table, scope, key, fingerprint(body))
