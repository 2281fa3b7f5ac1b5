"""Rules, the deputies projection, the ledger with its running totals, the units' board facts, publications.

Revision ID: scoring_0002
Revises: scoring_0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_idempotency_table, timestamp

revision: str = "scoring_0002"
down_revision: str | None = "scoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scoring"
POINTS = sa.Numeric(10, 2)


def upgrade() -> None:
    create_idempotency_table(S)
    op.create_table(
        "rule_sets",
        sa.Column("region_code", sa.String(12), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("doc", JSONB, nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        timestamp("recorded_at", now=True),
        schema=S,
    )
    op.create_table(
        "deputies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_index("ix_deputies_region_code_level", "deputies", ["region_code", "level"], schema=S)
    op.create_table(
        "entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("deputy_id", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        timestamp("at"),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("part", sa.String(8), nullable=False),
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("rule_code", sa.String(64), nullable=False),
        sa.Column("rule_region", sa.String(12), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=True),
        sa.Column("evidence", JSONB, nullable=True),
        sa.Column("reverses", sa.String(36), nullable=True, unique=True),
        timestamp("recorded_at", now=True),
        schema=S,
    )
    op.create_index("ix_entries_deputy_id_year", "entries", ["deputy_id", "year"], schema=S)
    op.create_table(
        "totals",
        sa.Column("deputy_id", sa.String(64), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("base_sum", POINTS, nullable=False),
        sa.Column("bonus_sum", POINTS, nullable=False),
        sa.Column("total", POINTS, nullable=False),
        sa.Column("dimensions", JSONB, nullable=False),
        schema=S,
    )
    op.create_index("ix_totals_year_total", "totals", ["year", "total"], schema=S)
    op.create_table(
        "unit_facts",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("suggestion_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("good", sa.Boolean, nullable=False),
        schema=S,
    )
    op.create_index("ix_unit_facts_year_unit_id", "unit_facts", ["year", "unit_id"], schema=S)
    op.create_table(
        "publications",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("region_code", sa.String(12), primary_key=True),
        sa.Column("level", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("ranking", JSONB, nullable=False),
        sa.Column("published_by", sa.String(100), nullable=False),
        timestamp("published_at"),
        schema=S,
    )


def downgrade() -> None:
    for table in ("publications", "unit_facts", "totals", "entries", "deputies", "rule_sets", "idempotency_keys"):
        op.drop_table(table, schema=S)
