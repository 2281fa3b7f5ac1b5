"""Grid platforms on the open311 transport (GeoReport v2): their API key, jurisdiction, service
codes and updates feed; tickets keep the platform's request id and what was last read of it.

Revision ID: routing_0007
Revises: routing_0006
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "routing_0007"
down_revision: str | None = "routing_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "routing"


def upgrade() -> None:
    op.add_column("grid_platforms", sa.Column("api_key", sa.LargeBinary, nullable=True), schema=S)
    op.add_column("grid_platforms", sa.Column("jurisdiction_id", sa.String(200), nullable=True), schema=S)
    op.add_column("grid_platforms", sa.Column("service_codes", JSONB, nullable=True), schema=S)
    op.add_column("grid_platforms", sa.Column("updates_feed", sa.Boolean, nullable=True), schema=S)
    op.add_column("grid_platforms", sa.Column("updates_since", sa.DateTime(timezone=True), nullable=True), schema=S)
    op.add_column("tickets", sa.Column("remote_id", sa.String(100), nullable=True), schema=S)
    op.add_column("tickets", sa.Column("remote_token", sa.String(100), nullable=True), schema=S)
    op.add_column("tickets", sa.Column("remote_sent_at", sa.DateTime(timezone=True), nullable=True), schema=S)
    op.add_column("tickets", sa.Column("remote_seen", JSONB, nullable=True), schema=S)
    op.create_index("ix_tickets_remote", "tickets", ["platform_id", "remote_id"], schema=S,
                    postgresql_where=sa.text("remote_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_tickets_remote", table_name="tickets", schema=S)
    for column in ("remote_seen", "remote_sent_at", "remote_token", "remote_id"):
        op.drop_column("tickets", column, schema=S)
    for column in ("updates_since", "updates_feed", "service_codes", "jurisdiction_id", "api_key"):
        op.drop_column("grid_platforms", column, schema=S)
