"""A GIN index on the deputies' stations: a scanned station code lists the deputies attached to it.

Revision ID: identity_0007
Revises: identity_0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "identity_0007"
down_revision: str | None = "identity_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deputies_station_ids", "deputies", ["station_ids"], schema="identity",
                    postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_deputies_station_ids", table_name="deputies", schema="identity")
