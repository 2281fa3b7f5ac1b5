"""Reports, their timeline, attachments, clock timers and settings, the deputies projection, the
audit of unmaskings, and Idempotency-Key answers.

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_idempotency_table

revision: str = "intake_0002"
down_revision: str | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "intake"


def _when(name: str, nullable: bool = False, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if now else None)


def upgrade() -> None:
    create_idempotency_table(S)
    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("receipt_code", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target_kind", sa.String(8), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("deputy_id", sa.String(64), nullable=True),
        sa.Column("station_id", sa.String(64), nullable=True),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("category", sa.String(40), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("location", JSONB, nullable=True),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("reporter_name", sa.LargeBinary, nullable=True),
        sa.Column("reporter_phone", sa.LargeBinary, nullable=True),
        sa.Column("reporter_id_number", sa.LargeBinary, nullable=True),
        sa.Column("reporter_phone_index", sa.LargeBinary, nullable=True),
        sa.Column("registered_by", sa.String(128), nullable=True),
        _when("received_at"),
        _when("submitted_at", now=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("round", sa.SmallInteger, nullable=False),
        _when("clock_start"),
        _when("ack_due"),
        _when("reply_due"),
        sa.Column("due_provisional", sa.Boolean, nullable=False),
        _when("acknowledged_at", nullable=True),
        sa.Column("ack_overdue", sa.Boolean, nullable=False),
        sa.Column("reply_overdue", sa.Boolean, nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=True),
        _when("answered_at", nullable=True),
        sa.Column("answered_by", sa.String(16), nullable=True),
        sa.Column("reply_content", sa.Text, nullable=True),
        sa.Column("rating_stars", sa.SmallInteger, nullable=True),
        sa.Column("rating_comment", sa.Text, nullable=True),
        _when("rated_at", nullable=True),
        _when("closed_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        _when("updated_at", now=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.UniqueConstraint("receipt_code", name="uq_reports_receipt_code"),
        sa.CheckConstraint("anonymous = false OR (reporter_name IS NULL AND reporter_phone IS NULL"
                           " AND reporter_id_number IS NULL AND reporter_phone_index IS NULL)",
                           name="ck_reports_anonymous_has_no_reporter"),
        sa.CheckConstraint("rating_stars IS NULL OR rating_stars BETWEEN 1 AND 5", name="ck_reports_stars_range"),
        schema=S,
    )
    op.create_index("ix_reports_deputy_id", "reports", ["deputy_id"], schema=S)
    op.create_index("ix_reports_station_id", "reports", ["station_id"], schema=S)
    op.create_index("ix_reports_reporter_phone_index", "reports", ["reporter_phone_index"], schema=S)
    op.create_index("ix_reports_region_due", "reports", [sa.text("region_code text_pattern_ops"), "ack_due"],
                    schema=S)
    op.create_index("ix_reports_status_reply_due", "reports", ["status", "reply_due"], schema=S)

    op.create_table(
        "timeline",
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        _when("at", now=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_timeline"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_timeline_report_id_reports",
                                ondelete="CASCADE"),
        schema=S,
    )
    op.create_index("ix_timeline_report_id", "timeline", ["report_id"], schema=S)

    op.create_table(
        "attachments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        _when("created_at", now=True),
        sa.Column("report_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_attachments_report_id_reports",
                                ondelete="SET NULL"),
        sa.CheckConstraint("kind IN ('photo', 'voice')", name="ck_attachments_kind"),
        schema=S,
    )
    op.create_index("ix_attachments_report_id", "attachments", ["report_id"], schema=S)
    op.create_index("ix_attachments_unattached", "attachments", ["created_at"], schema=S,
                    postgresql_where=sa.text("report_id IS NULL"))

    op.create_table(
        "timers",
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _when("fire_at"),
        sa.PrimaryKeyConstraint("report_id", "kind", name="pk_timers"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_timers_report_id_reports",
                                ondelete="CASCADE"),
        schema=S,
    )
    op.create_index("ix_timers_fire_at", "timers", ["fire_at"], schema=S)

    op.create_table(
        "clock_rules",
        sa.Column("region_prefix", sa.String(40), nullable=False),
        sa.Column("ack_days", sa.SmallInteger, nullable=False),
        sa.Column("reply_days", sa.SmallInteger, nullable=False),
        sa.Column("remind_hour", sa.SmallInteger, nullable=False),
        sa.Column("close_days", sa.SmallInteger, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        _when("updated_at", now=True),
        sa.PrimaryKeyConstraint("region_prefix", name="pk_clock_rules"),
        schema=S,
    )
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("loaded_by", sa.String(128), nullable=False),
        _when("loaded_at", now=True),
        sa.PrimaryKeyConstraint("year", name="pk_calendar_years"),
        schema=S,
    )
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("working", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_calendar_days"),
        schema=S,
    )
    op.create_table(
        "deputies",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("station_ids", sa.ARRAY(sa.String(64)), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deputies"),
        schema=S,
    )
    op.create_table(
        "unmaskings",
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("actor_sub", sa.String(128), nullable=False),
        sa.Column("actor_roles", sa.ARRAY(sa.String(32)), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        _when("at", now=True),
        sa.PrimaryKeyConstraint("seq", name="pk_unmaskings"),
        sa.ForeignKeyConstraint(["report_id"], [f"{S}.reports.id"], name="fk_unmaskings_report_id_reports",
                                ondelete="CASCADE"),
        schema=S,
    )
    op.create_index("ix_unmaskings_report_id", "unmaskings", ["report_id"], schema=S)


def downgrade() -> None:
    for table in ("unmaskings", "deputies", "calendar_days", "calendar_years", "clock_rules", "timers",
                  "attachments", "timeline", "reports", "idempotency_keys"):
        op.drop_table(table, schema=S)
