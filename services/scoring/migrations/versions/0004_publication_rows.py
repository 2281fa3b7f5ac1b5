"""Published rankings row by row: read a page at a time, published as pages under NATS's message limit.

Revision ID: scoring_0004
Revises: scoring_0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "scoring_0004"
down_revision: str | None = "scoring_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scoring"
POINTS = sa.Numeric(10, 2)


def upgrade() -> None:
    op.create_table(
        "publication_rows",
        sa.Column("publication_id", sa.String(36), sa.ForeignKey(f"{S}.publications.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("deputy_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("total", POINTS, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("stars", sa.Integer, nullable=False),
        schema=S,
    )
    op.add_column("publications", sa.Column("deputies", sa.Integer, nullable=False, server_default="0"), schema=S)
    # Publications made before this were published whole, without a digest; they keep none.
    op.add_column("publications", sa.Column("digest", sa.String(64), nullable=True), schema=S)
    op.execute(f"""
        INSERT INTO {S}.publication_rows (publication_id, position, deputy_id, name, total, rank, stars)
        SELECT p.id, CAST(r.position AS integer) - 1, r.row ->> 'deputy_id', COALESCE(r.row ->> 'name', ''),
               CAST(r.row ->> 'total' AS numeric), CAST(r.row ->> 'rank' AS integer),
               CAST(r.row ->> 'stars' AS integer)
        FROM {S}.publications AS p, jsonb_array_elements(p.ranking) WITH ORDINALITY AS r(row, position)
    """)
    op.execute(f"UPDATE {S}.publications SET deputies = jsonb_array_length(ranking)")
    op.alter_column("publications", "deputies", server_default=None, schema=S)
    op.drop_column("publications", "ranking", schema=S)


def downgrade() -> None:
    op.add_column("publications", sa.Column("ranking", JSONB, nullable=False, server_default="[]"), schema=S)
    op.execute(f"""
        UPDATE {S}.publications AS p SET ranking = COALESCE((
            SELECT jsonb_agg(jsonb_build_object('deputy_id', r.deputy_id, 'name', r.name, 'total', r.total,
                                                'rank', r.rank, 'stars', r.stars) ORDER BY r.position)
            FROM {S}.publication_rows AS r WHERE r.publication_id = p.id), '[]')
    """)
    op.alter_column("publications", "ranking", server_default=None, schema=S)
    op.drop_column("publications", "digest", schema=S)
    op.drop_column("publications", "deputies", schema=S)
    op.drop_table("publication_rows", schema=S)
