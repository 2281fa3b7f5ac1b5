"""The audit log (审计日志): who decided what, and who saw personal data in clear.

Each service keeps its own `audit_log` in its own schema, written in the same transaction as the
decision or the disclosure it records: an entry exists exactly when what it describes happened.
Congress staff read it through `GET /v1/audit` on each service, within their region. An entry
names people by their account (`actor`) and things by their ids; the personal data that was shown
never goes into it, only that it was shown, to whom and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from opentelemetry import trace
from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, require_roles
from shared.instants import Instant
from shared.problems import COMMON

TABLE = "audit_log"
READERS = ("npc_staff", "admin")
# Ids, account names and action names: printable, no spaces (a NUL would reach PostgreSQL and fail).
NAME = r"^[\w.:@-]+$"


def audit_table(metadata: MetaData) -> Table:
    return Table(
        TABLE,
        metadata,
        Column("seq", BigInteger, Identity(), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("actor", String(128), nullable=False),
        Column("actor_roles", ARRAY(String(32)), nullable=False),
        Column("action", String(64), nullable=False),
        Column("subject_type", String(32), nullable=False),
        Column("subject_id", String(128), nullable=False),
        # Where the subject lives, for reading within a region; "" for what belongs to no region.
        Column("region_code", String(40), nullable=False, server_default=text("''")),
        Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("trace_id", String(32), nullable=True),
        Index(f"ix_{TABLE}_subject", "subject_type", "subject_id"),
        Index(f"ix_{TABLE}_at", "at"),
    )


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


async def record(session: AsyncSession, table: Table, who: Principal | str | None, action: str, *,
                 subject_type: str, subject_id: str, region_code: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Stage one entry in the caller's transaction. `detail` holds ids, choices and reasons, never
    personal data. `who` is the caller, or only its account where a workflow acted for it, or None
    for what the system itself decided."""
    if isinstance(who, Principal):
        actor, roles = who.sub, sorted(who.roles)
    else:
        actor, roles = who or "system", []
    await session.execute(insert(table).values(
        actor=actor, actor_roles=roles, action=action,
        subject_type=subject_type, subject_id=subject_id, region_code=region_code or "", detail=detail or {},
        trace_id=_trace_id()))


class AuditEntry(BaseModel):
    seq: int
    at: datetime
    actor: str = Field(description="the account (token subject) that acted, or `system`")
    actor_roles: list[str]
    action: str = Field(description="what was decided or disclosed, e.g. `report.reporter_unmasked`")
    subject_type: str
    subject_id: str
    region_code: str
    detail: dict[str, Any]
    trace_id: str | None = Field(description="the trace of the request that did it")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null at the end")


Reader = Annotated[Principal, Depends(require_roles(*READERS))]


def audit_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["audit"], responses=COMMON)

    @router.get("/audit", response_model=AuditPage, summary="The service's audit log, newest first, within the "
                "caller's region (审计日志)")
    async def read_audit(
        request: Request, who: Reader,
        action: Annotated[str | None, Query(max_length=64, pattern=NAME)] = None,
        subject_type: Annotated[str | None, Query(max_length=32, pattern=NAME)] = None,
        subject_id: Annotated[str | None, Query(max_length=128, pattern=NAME)] = None,
        actor: Annotated[str | None, Query(max_length=128, pattern=NAME)] = None,
        since: Annotated[Instant | None, Query(description="from this time on (RFC 3339 with offset)")] = None,
        until: Annotated[Instant | None, Query(description="before this time")] = None,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="entries older than this `seq` "
                                                                             "(paging)")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> AuditPage:
        runtime = request.app.state.runtime
        table: Table = runtime.audit
        query = select(table).order_by(table.c.seq.desc()).limit(limit + 1)
        for column, value in (("action", action), ("subject_type", subject_type), ("subject_id", subject_id),
                              ("actor", actor)):
            if value is not None:
                query = query.where(table.c[column] == value)
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        if before is not None:
            query = query.where(table.c.seq < before)
        if who.region:
            query = query.where(table.c.region_code.startswith(who.region, autoescape=True))
        async with runtime.sessions()() as session:
            rows = (await session.execute(query)).mappings().all()
        items = [AuditEntry(**dict(r)) for r in rows[:limit]]
        return AuditPage(items=items, next_before=items[-1].seq if len(rows) > limit else None)

    return router
