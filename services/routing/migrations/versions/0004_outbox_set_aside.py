"""The outbox sets aside events it can never publish (larger than NATS's max_payload) instead of
stalling every later event behind them.

Revision ID: routing_0004
Revises: routing_0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from shared.migrations import add_outbox_set_aside, drop_outbox_set_aside

revision: str = "routing_0004"
down_revision: str | None = "routing_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_set_aside("routing")


def downgrade() -> None:
    drop_outbox_set_aside("routing")
