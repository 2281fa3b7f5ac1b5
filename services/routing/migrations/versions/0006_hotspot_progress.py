"""Hotspots follow the suggestion born of them step by step (the last step applied, the reply's
outcome) and count each citizen's "me too" once.

Revision ID: routing_0006
Revises: routing_0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "routing_0006"
down_revision: str | None = "routing_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def upgrade() -> None:
    op.add_column("hotspots", sa.Column("suggestion_seq", sa.Integer, nullable=False, server_default=sa.text("0")),
                  schema=S)
    op.add_column("hotspots", sa.Column("outcome", sa.String(8)), schema=S)
    op.create_table(
        "hotspot_supports",
        sa.Column("support_id", sa.String(64), primary_key=True),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_index("ix_hotspot_supports_report_id", "hotspot_supports", ["report_id"], schema=S)


def downgrade() -> None:
    op.drop_index("ix_hotspot_supports_report_id", table_name="hotspot_supports", schema=S)
    op.drop_table("hotspot_supports", schema=S)
    op.drop_column("hotspots", "outcome", schema=S)
    op.drop_column("hotspots", "suggestion_seq", schema=S)
