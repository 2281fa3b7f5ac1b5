"""The open311 poller's lease on each platform: one replica reads a platform back per interval.

Revision ID: routing_0008
Revises: routing_0007
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "routing_0008"
down_revision: str | None = "routing_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def upgrade() -> None:
    op.add_column("grid_platforms", sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True), schema=S)


def downgrade() -> None:
    op.drop_column("grid_platforms", "next_poll_at", schema=S)
