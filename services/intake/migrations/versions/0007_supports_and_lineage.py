"""Citizens' "me too" on a report (report_supports, reports.supporters), the report's hotspot, and
timeline entries told by other services' events at most once (timeline.source_event).

Revision ID: intake_0007
Revises: intake_0006
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0007"
down_revision: str | None = "intake_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "intake"


def upgrade() -> None:
    op.add_column("reports", sa.Column("supporters", sa.Integer, nullable=False, server_default=sa.text("0")),
                  schema=S)
    op.add_column("reports", sa.Column("hotspot_id", sa.String(36), nullable=True), schema=S)
    op.add_column("timeline", sa.Column("source_event", sa.String(128), nullable=True), schema=S)
    op.create_unique_constraint("uq_timeline_report_id_source_event", "timeline", ["report_id", "source_event"],
                                schema=S)
    op.create_table(
        "report_supports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("supporter_name", sa.LargeBinary, nullable=True),
        sa.Column("supporter_phone", sa.LargeBinary, nullable=True),
        sa.Column("person_digest", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report_supports"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_report_supports_report_id_reports",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("report_id", "person_digest", name="uq_report_supports_report_id_person_digest"),
        sa.CheckConstraint("anonymous = (supporter_name IS NULL AND supporter_phone IS NULL "
                           "AND person_digest IS NULL)", name="ck_report_supports_anonymous_keeps_nothing"),
        schema=S,
    )
    op.create_index("ix_report_supports_report_id", "report_supports", ["report_id"], schema=S)


def downgrade() -> None:
    op.drop_table("report_supports", schema=S)
    op.drop_constraint("uq_timeline_report_id_source_event", "timeline", schema=S, type_="unique")
    op.drop_column("timeline", "source_event", schema=S)
    op.drop_column("reports", "hotspot_id", schema=S)
    op.drop_column("reports", "supporters", schema=S)
