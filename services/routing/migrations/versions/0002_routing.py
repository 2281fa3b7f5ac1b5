"""Grid platforms, routing decisions, tickets and their history, hotspots and their reports.

Revision ID: routing_0002
Revises: routing_0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "routing_0002"
down_revision: str | None = "routing_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def _when(name: str, nullable: bool = False, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if now else None)


def upgrade() -> None:
    op.create_table(
        "grid_platforms",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region_prefixes", ARRAY(sa.String(12)), nullable=False),
        sa.Column("categories", ARRAY(sa.String(40)), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("url", sa.String(500), nullable=True),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        _when("retry_at", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _when("created_at", now=True),
        _when("updated_at", now=True),
        schema=S,
    )
    op.create_table(
        "decisions",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("category_source", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("handler", sa.String(8), nullable=False),
        sa.Column("platform_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(40), nullable=False),
        _when("decided_at", now=True),
        schema=S,
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("report_id", sa.String(36), nullable=False, unique=True),
        sa.Column("platform_id", sa.String(64), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        _when("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _when("delivered_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        _when("created_at", now=True),
        _when("updated_at", now=True),
        schema=S,
    )
    op.create_index("ix_tickets_queue", "tickets", ["platform_id", "next_attempt_at"], schema=S,
                    postgresql_where=sa.text("status = 'queued'"))
    op.create_index("ix_tickets_region", "tickets", ["region_code", "created_at"], schema=S)
    op.create_table(
        "ticket_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(36), sa.ForeignKey(f"{S}.tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        _when("at"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        _when("recorded_at", now=True),
        schema=S,
    )
    op.create_index("ix_ticket_history_ticket_id", "ticket_history", ["ticket_id"], schema=S)
    op.create_table(
        "hotspots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("document_frequency", JSONB, nullable=False),
        sa.Column("keywords", ARRAY(sa.String(40)), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        _when("first_at"),
        _when("last_at"),
        _when("detected_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_index("ix_hotspots_open", "hotspots", ["county_code", "category", "last_at"], schema=S)
    op.create_table(
        "hotspot_reports",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("hotspot_id", sa.String(36), sa.ForeignKey(f"{S}.hotspots.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        _when("received_at"),
        sa.Column("similarity", sa.Float, nullable=False),
        schema=S,
    )
    op.create_index("ix_hotspot_reports_hotspot_id", "hotspot_reports", ["hotspot_id"], schema=S)


def downgrade() -> None:
    for table in ("hotspot_reports", "hotspots", "ticket_history", "tickets", "decisions", "grid_platforms"):
        op.drop_table(table, schema=S)
