"""The outbox and inbox tables, added to each service's own schema."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("stream", String(64), nullable=False),
        Column("payload", JSONB, nullable=False),
        # W3C trace context of the transaction that wrote the row, so the relay continues the trace.
        Column("trace_headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        # Set when the relay found the row can never be published as it is; it waits for an operator.
        Column("set_aside_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unpublished", "seq", postgresql_where=text("published_at IS NULL AND set_aside_at IS NULL")),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("subject", String(255), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_inbox_received_at", "received_at"),
    )
