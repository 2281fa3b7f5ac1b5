"""Migration steps every service shares. These are history: change them only by adding new steps."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


def create_messaging_tables(schema: str) -> None:
    """Version 1 of the outbox and inbox (see shared/bus/tables.py for the live shape)."""
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("trace_headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["seq"], schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
        schema=schema,
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], schema=schema)


def add_outbox_set_aside(schema: str) -> None:
    """Version 2 of the outbox: rows the relay can never publish are set aside instead of blocking it."""
    op.add_column("outbox", sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True), schema=schema)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=schema)
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], schema=schema,
                    postgresql_where=sa.text("published_at IS NULL AND set_aside_at IS NULL"))


def drop_outbox_set_aside(schema: str) -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=schema)
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], schema=schema,
                    postgresql_where=sa.text("published_at IS NULL"))
    op.drop_column("outbox", "set_aside_at", schema=schema)


def drop_messaging_tables(schema: str) -> None:
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox", schema=schema)


def create_idempotency_table(schema: str) -> None:
    """Version 1 of the Idempotency-Key table (see shared/idempotency.py for the live shape)."""
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response", JSONB, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
        schema=schema,
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], schema=schema)


def create_audit_table(schema: str) -> None:
    """Version 1 of the audit log (see shared/audit.py for the live shape)."""
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_roles", ARRAY(sa.String(32)), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False, server_default=sa.text("''")),
        sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        schema=schema,
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"], schema=schema)
    op.create_index("ix_audit_log_at", "audit_log", ["at"], schema=schema)


def timestamp(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column:
    """A `timestamptz` column for migrations; `now` defaults it to the time of the insert."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if now else None)
