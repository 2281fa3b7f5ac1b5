"""The public replies of a year in the order they are paged: newest first, by (replied_at, id).

Revision ID: suggestions_0005
Revises: suggestions_0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "suggestions_0005"
down_revision: str | None = "suggestions_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "suggestions"


def upgrade() -> None:
    op.create_index("ix_suggestions_public_replies", "suggestions", ["reply_public", "year", "replied_at", "id"],
                    schema=S)


def downgrade() -> None:
    op.drop_index("ix_suggestions_public_replies", table_name="suggestions", schema=S)
