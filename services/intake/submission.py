"""Writing a new report in one round trip: the report, its first timeline entry, its timers and
its `intake.report.submitted` outbox row, as one statement of data-modifying CTEs.

Submission is the hot path (bursts on reception days, campaigns). Through the ORM it took seven
round trips and most of the request's CPU; one statement keeps the same atomicity for a fraction.
The later state changes of a report go through `lifecycle`, where clarity wins.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.intake import domain, lifecycle
from services.intake.models import Attachment, Report
from shared.bus.envelope import new_event
from shared.bus.outbox import outbox_row, staged
from shared.service import Runtime

# Columns the database fills itself are left out.
_COLUMNS = [c.name for c in Report.__table__.columns if c.name not in ("submitted_at", "updated_at", "supporters")]
_JSON_COLUMNS = {"location"}


def _value(column: str) -> str:
    return f"CAST(:{column} AS jsonb)" if column in _JSON_COLUMNS else f":{column}"


_SQL = text(f"""
WITH report AS (
    INSERT INTO intake.reports ({", ".join(_COLUMNS)})
    VALUES ({", ".join(_value(c) for c in _COLUMNS)})
), entry AS (
    INSERT INTO intake.timeline (report_id, at, status, note, public, actor)
    VALUES (:id, :received_at, 'submitted', :entry_note, true, :channel)
), timer AS (
    INSERT INTO intake.timers (report_id, kind, fire_at)
    SELECT :id, kind, fire_at
    FROM unnest(CAST(:timer_kinds AS varchar[]), CAST(:timer_times AS timestamptz[])) AS t(kind, fire_at)
)
INSERT INTO intake.outbox (event_id, subject, stream, payload, trace_headers)
VALUES (:event_id, :event_subject, :event_stream, CAST(:event_payload AS jsonb), CAST(:event_trace AS jsonb))
""")


@asynccontextmanager
async def autocommit(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement is its own transaction, for a submission that writes nothing
    but `insert_report`'s one statement: as atomic as in a transaction, without a session's cost or
    the BEGIN and COMMIT round trips (two of the three a report cost)."""
    async with runtime.database.engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


async def insert_report(runtime: Runtime, db: AsyncSession | AsyncConnection, report: Report, *, note: str,
                        timers: dict[str, datetime], event_data: dict[str, Any]) -> str:
    """Write `report` (a transient ORM object, never added to the session) and what comes with it,
    in the session's transaction or through an `autocommit` connection."""
    event_type = "intake.report.submitted"
    runtime.check_event(event_type, event_data)
    event = new_event(runtime.spec.name, event_type, event_data, report.id)
    row = outbox_row(event, stream=runtime.stream_for(event_type))
    params: dict[str, Any] = {c: getattr(report, c) for c in _COLUMNS}
    params["location"] = None if report.location is None else json.dumps(report.location, ensure_ascii=False)
    params.update(
        entry_note=note,
        timer_kinds=list(timers), timer_times=list(timers.values()),
        event_id=row["event_id"], event_subject=row["subject"], event_stream=row["stream"],
        event_payload=json.dumps(row["payload"], ensure_ascii=False),
        event_trace=json.dumps(row["trace_headers"]),
    )
    await db.execute(_SQL, params)
    if isinstance(db, AsyncSession):
        staged(db)  # the relay is woken once the session commits
    elif runtime.relay is not None:
        runtime.relay.wake()  # committed already
    return event.id


async def file_report(runtime: Runtime, db: AsyncSession | AsyncConnection, report: Report, *,
                      rules: domain.ClockRules, due: domain.Deadlines, now: datetime,
                      attachments: Sequence[Attachment] = ()) -> str:
    """A new report (whatever door it came in by) with its first timers and its `intake.report.submitted`."""
    return await insert_report(
        runtime, db, report, note=domain.NOTES["submitted"],
        timers=dict(domain.timers_for_new_round(due, rules, acknowledged=False, now=now)),
        event_data=lifecycle.event_data(
            report, channel=report.channel, content=report.content, category=report.category,
            anonymous=report.anonymous, attachments=[{"id": a.id, "kind": a.kind} for a in attachments],
            location=report.location, received_at=report.received_at.isoformat(),
            ack_due=report.ack_due.isoformat(), reply_due=report.reply_due.isoformat()))
