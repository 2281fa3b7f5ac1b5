"""Each hotspot's meaning, beside its profile: the sum of its members' meaning vectors.

A new report is scored against the county's most recent hotspots as well as those sharing a key;
reading only these two columns for them lets the ones whose meaning is far from the report's be
left out before their profiles are read.

Revision ID: routing_0009
Revises: routing_0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "routing_0009"
down_revision: str | None = "routing_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def upgrade() -> None:
    op.add_column("hotspots", sa.Column("meaning_sum", sa.LargeBinary(), nullable=True), schema=S)
    op.add_column("hotspots", sa.Column("meaning_n", sa.Integer(), nullable=False, server_default="0"), schema=S)


def downgrade() -> None:
    op.drop_column("hotspots", "meaning_n", schema=S)
    op.drop_column("hotspots", "meaning_sum", schema=S)
