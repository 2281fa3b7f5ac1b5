"""QR codes (亮码): one projection row per issued code.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0003"
down_revision: str | None = "identity_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    op.create_table(
        "codes",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("issue_key", sa.String(200), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("code", name="pk_codes"),
        sa.CheckConstraint("kind IN ('deputy', 'station')", name="ck_codes_kind"),
        schema=S,
    )
    # At most one live code per deputy or station, even when two admins issue at the same moment.
    op.create_index("uq_codes_kind_target_id_live", "codes", ["kind", "target_id"], unique=True, schema=S,
                    postgresql_where=sa.text("revoked_at IS NULL"))
    op.create_index("ix_codes_kind_target_id_issue_key", "codes", ["kind", "target_id", "issue_key"], schema=S,
                    postgresql_where=sa.text("issue_key IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("codes", schema=S)
