"""Supervision topics from hotspots, and the micro-suggestion funds and their spending.

Revision ID: suggestions_0003
Revises: suggestions_0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from shared.migrations import timestamp

revision: str = "suggestions_0003"
down_revision: str | None = "suggestions_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "suggestions"


def upgrade() -> None:
    op.create_table(
        "supervision_topics",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("keywords", ARRAY(sa.String(40)), nullable=False),
        sa.Column("report_ids", ARRAY(sa.String(36)), nullable=False),
        timestamp("first_at"),
        timestamp("last_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("suggestion_id", sa.String(36), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        timestamp("created_at", now=True),
        timestamp("updated_at", now=True),
        schema=S,
    )
    op.create_table(
        "micro_funds",
        sa.Column("region_code", sa.String(12), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        timestamp("updated_at", now=True),
        schema=S,
    )
    op.create_table(
        "micro_spending",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("suggestion_id", sa.String(36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        timestamp("recorded_at", now=True),
        schema=S,
    )
    op.create_index("ix_micro_spending_fund", "micro_spending", ["region_code", "year"], schema=S)


def downgrade() -> None:
    for table in ("micro_spending", "micro_funds", "supervision_topics"):
        op.drop_table(table, schema=S)
