"""The audit log of the scoring schema: decisions and disclosures of personal data.

Revision ID: scoring_0003
Revises: scoring_0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_audit_table

revision: str = "scoring_0003"
down_revision: str | None = "scoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_table("scoring")


def downgrade() -> None:
    op.drop_table("audit_log", schema="scoring")
