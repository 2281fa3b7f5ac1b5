"""The audit log of the suggestions schema: decisions and disclosures of personal data.

Revision ID: suggestions_0004
Revises: suggestions_0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_audit_table

revision: str = "suggestions_0004"
down_revision: str | None = "suggestions_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_table("suggestions")


def downgrade() -> None:
    op.drop_table("audit_log", schema="suggestions")
