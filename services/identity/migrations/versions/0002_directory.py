"""Directory: regions, stations, deputies.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "identity_0002"
down_revision: str | None = "identity_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(40), sa.ForeignKey(f"{S}.regions.code"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("code", name="pk_regions"),
        schema=S,
    )
    op.create_index("ix_regions_parent_code", "regions", ["parent_code"], schema=S)
    op.create_table(
        "stations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("region_code", sa.String(40), sa.ForeignKey(f"{S}.regions.code"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_stations"),
        schema=S,
    )
    op.create_index("ix_stations_region_code", "stations", ["region_code"], schema=S)
    op.create_table(
        "deputies",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("region_code", sa.String(40), sa.ForeignKey(f"{S}.regions.code"), nullable=False),
        sa.Column("district_id", sa.String(64), nullable=True),
        sa.Column("station_ids", JSONB, nullable=False),
        sa.Column("groups", JSONB, nullable=False),
        sa.Column("phone_encrypted", sa.LargeBinary, nullable=True),
        sa.Column("phone_index", sa.LargeBinary, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_deputies"),
        schema=S,
    )
    op.create_index("ix_deputies_region_code", "deputies", ["region_code"], schema=S)
    op.create_index("ix_deputies_phone_index", "deputies", ["phone_index"], schema=S)


def downgrade() -> None:
    op.drop_table("deputies", schema=S)
    op.drop_table("stations", schema=S)
    op.drop_table("regions", schema=S)
