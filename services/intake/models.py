"""Tables of the `intake` schema. No other service reads them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata
from shared.idempotency import idempotency_table

SCHEMA = "intake"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
AUDIT = audit_table(Base.metadata)
IDEMPOTENCY = idempotency_table(Base.metadata)


class Report(Base):
    """A citizen's report (群众意见). Personal data only for real-name reports, and only encrypted."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    receipt_code: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    target_kind: Mapped[str] = mapped_column(String(8))
    target_id: Mapped[str | None] = mapped_column(String(64))
    deputy_id: Mapped[str | None] = mapped_column(String(64), index=True)
    station_id: Mapped[str | None] = mapped_column(String(64), index=True)
    region_code: Mapped[str] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))
    content: Mapped[str] = mapped_column(Text)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    anonymous: Mapped[bool] = mapped_column(Boolean)
    reporter_name: Mapped[bytes | None] = mapped_column(LargeBinary)
    reporter_phone: Mapped[bytes | None] = mapped_column(LargeBinary)
    reporter_id_number: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Blind index: finds a real-name reporter's other reports without decrypting anything.
    reporter_phone_index: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    # Who typed a paper or hotline report in (a staff account, never the citizen).
    registered_by: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[str] = mapped_column(String(16))
    # Each reopening after a poor rating starts a new round with its own reply clock and rating.
    round: Mapped[int] = mapped_column(SmallInteger, default=1)
    clock_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ack_due: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reply_due: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Counted in a year whose statutory calendar was not known yet; recomputed when it is loaded.
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ack_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    ticket_id: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_by: Mapped[str | None] = mapped_column(String(16))
    reply_content: Mapped[str | None] = mapped_column(Text)
    rating_stars: Mapped[int | None] = mapped_column(SmallInteger)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Citizens who said "me too" (我也遇到) instead of filing the same report again (`ReportSupport`).
    supporters: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The hotspot (共性事项) routing placed it in, as routing last told (`routing.hotspot.progressed`).
    hotspot_id: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())

    __table_args__ = (
        CheckConstraint("anonymous = false OR (reporter_name IS NULL AND reporter_phone IS NULL"
                        " AND reporter_id_number IS NULL AND reporter_phone_index IS NULL)",
                        name="anonymous_has_no_reporter"),
        CheckConstraint("rating_stars IS NULL OR rating_stars BETWEEN 1 AND 5", name="stars_range"),
        # Lists are scoped by region prefix and sorted by the deadline that matters next.
        Index("ix_reports_region_due", text("region_code text_pattern_ops"), "ack_due"),
        Index("ix_reports_status_reply_due", "status", "reply_due"),
    )


class TimelineEntry(Base):
    """What happened to a report. Public entries make the citizen's receipt; the rest are internal."""

    __tablename__ = "timeline"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str | None] = mapped_column(String(32))
    # What told of it, for news from other services that may be told twice (`lineage.dedupe_key`).
    source_event: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("report_id", "source_event"),)


class ReportSupport(Base):
    """A citizen's "me too" (我也遇到 / 附议) on someone else's report.

    An anonymous one is only that it happened: when and through which channel, nothing about the
    person (no account, address or device). A real-name one keeps the name and phone encrypted
    like a reporter's, and a digest of the phone keyed per report (`supports.person_digest`) so the
    same person supports a report once, without that digest linking them across reports.
    """

    __tablename__ = "report_supports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    anonymous: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str] = mapped_column(String(16))
    supporter_name: Mapped[bytes | None] = mapped_column(LargeBinary)
    supporter_phone: Mapped[bytes | None] = mapped_column(LargeBinary)
    person_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("report_id", "person_digest"),
        CheckConstraint("anonymous = (supporter_name IS NULL AND supporter_phone IS NULL AND person_digest IS NULL)",
                        name="anonymous_keeps_nothing"),
    )


class GridTicket(Base):
    """The newest version of a ticket's news from routing that intake applied, per ticket a report
    had. Routing's events may arrive out of order; an older one is set aside against this."""

    __tablename__ = "grid_tickets"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)


class Attachment(Base):
    """A photo or voice recording, uploaded before the report that uses it."""

    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    report_id: Mapped[str | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"), index=True)

    __table_args__ = (
        CheckConstraint("kind IN ('photo', 'voice')", name="kind"),
        Index("ix_attachments_unattached", "created_at", postgresql_where=text("report_id IS NULL")),
    )


class Timer(Base):
    """A pending clock event of a report (reminder, deadline, auto-close); deleted once it fires.

    Only pending timers live here, so the table stays as small as the number of open reports, and
    the scanner finds what is due with one index range scan.
    """

    __tablename__ = "timers"

    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    fire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ClockRule(Base):
    """Working-day limits of a region (and everything under it) that differ from the defaults."""

    __tablename__ = "clock_rules"

    region_prefix: Mapped[str] = mapped_column(String(40), primary_key=True)
    ack_days: Mapped[int] = mapped_column(SmallInteger)
    reply_days: Mapped[int] = mapped_column(SmallInteger)
    remind_hour: Mapped[int] = mapped_column(SmallInteger)
    close_days: Mapped[int] = mapped_column(SmallInteger)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class CalendarYear(Base):
    """A year whose statutory calendar staff loaded (one the calendar package does not know yet)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    loaded_by: Mapped[str] = mapped_column(String(128))
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CalendarDay(Base):
    """A day that breaks the weekday/weekend pattern: a holiday or a make-up working day (调休)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)


class DeputyView(Base):
    """What intake knows of a deputy, kept current from `identity.deputy.updated`."""

    __tablename__ = "deputies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(40))
    station_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    version: Mapped[int] = mapped_column(Integer)


class Reminder(Base):
    """A 催办: station or congress staff urging the deputy to act on an open report. Kept apart from
    the timeline so that "at most one an hour" is one indexed read under the report's lock."""

    __tablename__ = "reminders"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_sub: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_reminders_report_at", "report_id", "at"),)


class Unmasking(Base):
    """Audit of every time someone saw a reporter's personal data in clear."""

    __tablename__ = "unmaskings"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    actor_sub: Mapped[str] = mapped_column(String(128))
    actor_roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
