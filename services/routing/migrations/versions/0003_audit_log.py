"""The audit log of the routing schema: decisions and disclosures of personal data.

Revision ID: routing_0003
Revises: routing_0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_audit_table

revision: str = "routing_0003"
down_revision: str | None = "routing_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_table("routing")


def downgrade() -> None:
    op.drop_table("audit_log", schema="routing")
