"""The outbox and inbox of the suggestions schema.

Revision ID: suggestions_0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from shared.migrations import create_messaging_tables, drop_messaging_tables

revision: str = "suggestions_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables("suggestions")


def downgrade() -> None:
    drop_messaging_tables("suggestions")
