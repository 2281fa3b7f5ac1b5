"""Reminders (催办) staff send the deputy about an open report.

Revision ID: intake_0006
Revises: intake_0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0006"
down_revision: str | None = "intake_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "intake"


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_sub", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_reminders"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_reminders_report_id_reports",
                                ondelete="CASCADE"),
        schema=S,
    )
    op.create_index("ix_reminders_report_at", "reminders", ["report_id", "at"], schema=S)


def downgrade() -> None:
    op.drop_table("reminders", schema=S)
