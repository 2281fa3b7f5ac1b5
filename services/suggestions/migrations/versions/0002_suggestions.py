"""Units, the deputies projection, outcome schemes, the suggestions projection and its timeline.

Revision ID: suggestions_0002
Revises: suggestions_0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.migrations import create_idempotency_table, timestamp

revision: str = "suggestions_0002"
down_revision: str | None = "suggestions_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "suggestions"


def upgrade() -> None:
    create_idempotency_table(S)
    op.create_table(
        "units",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        timestamp("updated_at", now=True),
        schema=S,
    )
    op.create_table(
        "deputies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_table(
        "outcome_schemes",
        sa.Column("region_code", sa.String(12), primary_key=True),
        sa.Column("classes", JSONB, nullable=False),
        timestamp("updated_at", now=True),
        schema=S,
    )
    op.create_table(
        "suggestions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("lead_deputy_id", sa.String(64), nullable=False),
        sa.Column("co_signer_ids", ARRAY(sa.String(64)), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("years", ARRAY(sa.Integer), nullable=False),
        sa.Column("term", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("micro", sa.Boolean, nullable=False),
        sa.Column("key", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=True),
        sa.Column("reference", sa.Boolean, nullable=False),
        sa.Column("lead_unit_id", sa.String(64), nullable=True),
        sa.Column("assisting_unit_ids", ARRAY(sa.String(64)), nullable=False),
        timestamp("due_at", nullable=True),
        timestamp("next_review_at", nullable=True),
        sa.Column("repeat_of", sa.String(36), nullable=True),
        sa.Column("topic_id", sa.String(36), nullable=True),
        sa.Column("reply_public", sa.Boolean, nullable=False),
        timestamp("replied_at", nullable=True),
        timestamp("submitted_at"),
        timestamp("closed_at", nullable=True),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        timestamp("updated_at", now=True),
        schema=S,
    )
    op.create_index("ix_suggestions_years", "suggestions", ["years"], schema=S, postgresql_using="gin")
    op.create_index("ix_suggestions_lead_unit_id", "suggestions", ["lead_unit_id"], schema=S)
    op.create_index("ix_suggestions_region_code", "suggestions", ["region_code"], schema=S)
    op.create_table(
        "timeline",
        sa.Column("suggestion_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        timestamp("at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("data", JSONB, nullable=False),
        timestamp("recorded_at", now=True),
        schema=S,
    )


def downgrade() -> None:
    for table in ("timeline", "suggestions", "outcome_schemes", "deputies", "units", "idempotency_keys"):
        op.drop_table(table, schema=S)
