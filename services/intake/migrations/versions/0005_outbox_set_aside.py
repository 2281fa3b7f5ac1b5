"""The outbox sets aside events it can never publish (larger than NATS's max_payload) instead of
stalling every later event behind them.

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from shared.migrations import add_outbox_set_aside, drop_outbox_set_aside

revision: str = "intake_0005"
down_revision: str | None = "intake_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_set_aside("intake")


def downgrade() -> None:
    drop_outbox_set_aside("intake")
