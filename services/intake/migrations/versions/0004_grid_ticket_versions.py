"""The newest version of each ticket's news applied, so routing's events apply newest-wins.

Revision ID: intake_0004
Revises: intake_0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0004"
down_revision: str | None = "intake_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "intake"


def upgrade() -> None:
    op.create_table(
        "grid_tickets",
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_grid_tickets"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_grid_tickets_report_id_reports",
                                ondelete="CASCADE"),
        schema=S,
    )
    op.create_index("ix_grid_tickets_report_id", "grid_tickets", ["report_id"], schema=S)


def downgrade() -> None:
    op.drop_table("grid_tickets", schema=S)
