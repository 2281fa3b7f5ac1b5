"""Registry loads: initial loads sent as one large file, resumable at the last committed line.

Revision ID: identity_0009
Revises: identity_0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0009"
down_revision: str | None = "identity_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    op.create_table(
        "registry_loads",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("load_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        # The file's lines up to this one are stored (or rejected); a re-sent file skips them.
        sa.Column("lines_committed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("accepted", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("unchanged", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rejected", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("source", "load_id", name="pk_registry_loads"),
        schema=S,
    )
    op.create_table(
        "registry_load_rejections",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("load_id", sa.String(64), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source", "load_id", "line", name="pk_registry_load_rejections"),
        sa.ForeignKeyConstraint(["source", "load_id"], [f"{S}.registry_loads.source", f"{S}.registry_loads.load_id"],
                                name="fk_registry_load_rejections_load", ondelete="CASCADE"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("registry_load_rejections", schema=S)
    op.drop_table("registry_loads", schema=S)
