"""Tables of the `routing` schema. No other service reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata

SCHEMA = "routing"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
AUDIT = audit_table(Base.metadata)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class GridPlatform(Base):
    """A grid-governance platform (基层治理四平台, 12345) and the places and matters it takes."""

    __tablename__ = "grid_platforms"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    region_prefixes: Mapped[list[str]] = mapped_column(ARRAY(String(12)), nullable=False)
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)
    url: Mapped[str | None] = mapped_column(String(500))
    # AES-GCM under the PII keyring: whoever reads the database cannot forge callbacks.
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # Health of the http transport: while it fails, one ticket at a time probes it.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The open311 transport: the GeoReport API key (sealed like the secret), the jurisdiction, the
    # admin's category → service_code mapping (None: read services.json), whether it offers mySociety's
    # servicerequestupdates.json (None: not known yet) and where the next read of those begins.
    api_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    jurisdiction_id: Mapped[str | None] = mapped_column(String(200))
    service_codes: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    updates_feed: Mapped[bool | None] = mapped_column(Boolean)
    updates_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The open311 poller's lease: the replica that starts a round of the platform pushes this one
    # interval ahead, so the others leave it alone until then (open311_poll.lease_due).
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class RoutingDecision(Base):
    """The category a report got and who handles it: a grid platform or the deputy and staff."""

    __tablename__ = "decisions"

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(40), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    category_source: Mapped[str] = mapped_column(String(8), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    handler: Mapped[str] = mapped_column(String(8), nullable=False)
    platform_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40), nullable=False)
    decided_at: Mapped[datetime] = _created()


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # The dispatcher's queue: what is still to reach each platform, oldest due first.
        Index("ix_tickets_queue", "platform_id", "next_attempt_at", postgresql_where=text("status = 'queued'")),
        Index("ix_tickets_region", "region_code", "created_at"),
        # What the open311 poller follows: each platform's requests by their remote id.
        Index("ix_tickets_remote", "platform_id", "remote_id", postgresql_where=text("remote_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    platform_id: Mapped[str] = mapped_column(String(64), nullable=False)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)
    region_code: Mapped[str] = mapped_column(String(40), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    # The exact bytes every attempt sends, so a retry is the same ticket to the platform.
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # The open311 transport: the platform's service_request_id (or the token it gave first), when a
    # POST whose answer never came may have created the request (it is looked for before posting
    # again), and the last status read back (open311.remembered).
    remote_id: Mapped[str | None] = mapped_column(String(100))
    remote_token: Mapped[str | None] = mapped_column(String(100))
    remote_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    remote_seen: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class TicketEntry(Base):
    """Every status a ticket was given or sent, applied or not: the ticket's history."""

    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey(f"{SCHEMA}.tickets.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    applied: Mapped[bool] = mapped_column(Boolean, nullable=False)
    recorded_at: Mapped[datetime] = _created()


class Hotspot(Base):
    """A cluster of reports on one problem at one place; a hotspot (共性事项) once it reaches the
    threshold. Its life: `open` → `converted` (into a supervision topic, 监督课题) or `closed`; a
    cluster merged by staff into another is `merged` and points at it."""

    __tablename__ = "hotspots"
    __table_args__ = (Index("ix_hotspots_open", "county_code", "last_at"),
                      Index("ix_hotspots_keys", "search_keys", postgresql_using="gin"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6), nullable=False)
    region_code: Mapped[str] = mapped_column(String(40), nullable=False)
    # the majority of its members' categories; ties go to the earliest
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    category_counts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    # what its reports say, folded (clustering.Profile as JSON): compared with each new report
    profile: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    keywords: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False)
    places: Mapped[list[str]] = mapped_column(ARRAY(String(60)), nullable=False, server_default=text("'{}'"))
    # what a new report is looked up by among many open clusters (clustering.search_keys)
    search_keys: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False, server_default=text("'{}'"))
    # The profile's meaning_sum (float32) and meaning_n, readable without the profile (hotspots.open_clusters).
    meaning_sum: Mapped[bytes | None] = mapped_column(LargeBinary)
    meaning_n: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    # citizens who said "me too" (我也遇到) on one of its reports instead of filing their own
    supporters: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12), nullable=False, server_default=text("'open'"))
    topic_title: Mapped[str | None] = mapped_column(String(200))
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suggestion_id: Mapped[str | None] = mapped_column(String(36))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_note: Mapped[str | None] = mapped_column(Text)
    merged_into: Mapped[str | None] = mapped_column(String(36))
    # The step (`seq`) of its suggestion last applied, so a redelivered older step changes nothing,
    # and the outcome of the suggestion's reply (A, B, C) for what later joins.
    suggestion_seq: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    outcome: Mapped[str | None] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class HotspotReport(Base):
    __tablename__ = "hotspot_reports"

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hotspot_id: Mapped[str] = mapped_column(ForeignKey(f"{SCHEMA}.hotspots.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    region_code: Mapped[str] = mapped_column(String(40), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False, server_default=text("'other'"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    similarity: Mapped[float] = mapped_column(Float, nullable=False)
    # the report's clustering.Signature as JSON: what a split or merge folds again into profiles
    signature: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    # "auto" when clustering placed it, "staff" when a person moved it (a split or merge)
    placed_by: Mapped[str] = mapped_column(String(8), nullable=False, server_default=text("'auto'"))


class HotspotCorrection(Base):
    """A person's correction of the clustering: ground truth for measuring it (`minyi hotspots
    corrections` exports them)."""

    __tablename__ = "hotspot_corrections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)  # split | merge | convert | close
    hotspot_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    other_hotspot_id: Mapped[str | None] = mapped_column(String(36))
    report_ids: Mapped[list[str]] = mapped_column(ARRAY(String(36)), nullable=False, server_default=text("'{}'"))
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _created()


class HotspotSupport(Base):
    """A "me too" (我也遇到) on a report, counted once for the cluster holding the report: kept by
    report, so a split or merge counts its supporters again."""

    __tablename__ = "hotspot_supports"

    support_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    at: Mapped[datetime] = _created()
