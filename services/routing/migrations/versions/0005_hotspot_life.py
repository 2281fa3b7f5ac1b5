"""Hotspots cluster across categories by problem and place, have a life (open, converted into a
supervision topic, closed, merged), count supporters, and keep what each report said so staff can
split and merge them; staff corrections are kept as ground truth.

Open clusters from before this revision keep their members but get an empty profile: the word
counts they kept cannot be turned into the new profile (it needs each report's text, which routing
does not store), so new reports start new clusters beside them.

Revision ID: routing_0005
Revises: routing_0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "routing_0005"
down_revision: str | None = "routing_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def upgrade() -> None:
    op.drop_index("ix_hotspots_open", table_name="hotspots", schema=S)
    op.create_index("ix_hotspots_open", "hotspots", ["county_code", "last_at"], schema=S)
    op.drop_column("hotspots", "document_frequency", schema=S)
    for column in (
        sa.Column("category_counts", JSONB, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("profile", JSONB, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("places", ARRAY(sa.String(60)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("search_keys", ARRAY(sa.String(40)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("supporters", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("state", sa.String(12), nullable=False, server_default=sa.text("'open'")),
        sa.Column("topic_title", sa.String(200)),
        sa.Column("converted_at", sa.DateTime(timezone=True)),
        sa.Column("suggestion_id", sa.String(36)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("close_note", sa.Text),
        sa.Column("merged_into", sa.String(36)),
    ):
        op.add_column("hotspots", column, schema=S)
    op.create_index("ix_hotspots_keys", "hotspots", ["search_keys"], schema=S, postgresql_using="gin")
    op.execute(f"UPDATE {S}.hotspots SET category_counts = jsonb_build_object(category, count)")
    for column in (
        sa.Column("category", sa.String(40), nullable=False, server_default=sa.text("'other'")),
        sa.Column("signature", JSONB, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("placed_by", sa.String(8), nullable=False, server_default=sa.text("'auto'")),
    ):
        op.add_column("hotspot_reports", column, schema=S)
    op.execute(f"UPDATE {S}.hotspot_reports r SET category = h.category FROM {S}.hotspots h "
               "WHERE h.id = r.hotspot_id")
    op.create_table(
        "hotspot_corrections",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("hotspot_id", sa.String(36), nullable=False),
        sa.Column("other_hotspot_id", sa.String(36)),
        sa.Column("report_ids", ARRAY(sa.String(36)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_index("ix_hotspot_corrections_hotspot_id", "hotspot_corrections", ["hotspot_id"], schema=S)


def downgrade() -> None:
    op.drop_index("ix_hotspot_corrections_hotspot_id", table_name="hotspot_corrections", schema=S)
    op.drop_table("hotspot_corrections", schema=S)
    for name in ("placed_by", "signature", "category"):
        op.drop_column("hotspot_reports", name, schema=S)
    op.drop_index("ix_hotspots_keys", table_name="hotspots", schema=S)
    for name in ("merged_into", "close_note", "closed_at", "suggestion_id", "converted_at", "topic_title", "state",
                 "supporters", "search_keys", "places", "profile", "category_counts"):
        op.drop_column("hotspots", name, schema=S)
    op.add_column("hotspots", sa.Column("document_frequency", JSONB, nullable=False, server_default=sa.text("'{}'")),
                  schema=S)
    op.drop_index("ix_hotspots_open", table_name="hotspots", schema=S)
    op.create_index("ix_hotspots_open", "hotspots", ["county_code", "category", "last_at"], schema=S)
