"""The audit log of the identity schema: decisions and disclosures of personal data.

Revision ID: identity_0006
Revises: identity_0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_audit_table

revision: str = "identity_0006"
down_revision: str | None = "identity_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_table("identity")


def downgrade() -> None:
    op.drop_table("audit_log", schema="identity")
