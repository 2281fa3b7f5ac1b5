"""Tables of the `suggestions` schema. No other service reads them.

The workflows hold the truth about each suggestion; `suggestions` and `timeline` are their
projection for lists and searches, written by the record activity and rebuildable from the
`suggestions.suggestion.*` events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata
from shared.idempotency import idempotency_table

SCHEMA = "suggestions"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
AUDIT = audit_table(Base.metadata)
IDEMPOTENCY = idempotency_table(Base.metadata)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Unit(Base):
    """A handling unit (承办单位): a government department, court, procuratorate …"""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = _now()


class DeputyView(Base):
    """Deputies as identity announces them: who may lead or co-sign a suggestion, and where."""

    __tablename__ = "deputies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class OutcomeScheme(Base):
    """A region's reply outcome classes (A/B/C, or A/B/C/D in some provinces); the longest prefix applies."""

    __tablename__ = "outcome_schemes"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    classes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = _now()


class SuggestionRow(Base):
    __tablename__ = "suggestions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    lead_deputy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    co_signer_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    # every yearly list the suggestion is on (its own year, then each carry-over)
    years: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    term: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    micro: Mapped[bool] = mapped_column(Boolean, nullable=False)
    key: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(8))
    reference: Mapped[bool] = mapped_column(Boolean, nullable=False)
    lead_unit_id: Mapped[str | None] = mapped_column(String(64))
    assisting_unit_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_review_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    repeat_of: Mapped[str | None] = mapped_column(String(36))
    topic_id: Mapped[str | None] = mapped_column(String(36))
    reply_public: Mapped[bool] = mapped_column(Boolean, nullable=False)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the workflow's view, as GET returns it
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        Index("ix_suggestions_years", "years", postgresql_using="gin"),
        Index("ix_suggestions_lead_unit_id", "lead_unit_id"),
        Index("ix_suggestions_region_code", "region_code"),
        # The public replies of a year, newest first, paged by (replied_at, id).
        Index("ix_suggestions_public_replies", "reply_public", "year", "replied_at", "id"),
    )


class TimelineEntry(Base):
    __tablename__ = "timeline"

    suggestion_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    recorded_at: Mapped[datetime] = _now()


class SupervisionTopic(Base):
    """A hotspot from routing, become a congress supervision topic (人大监督) for staff to take up or close."""

    __tablename__ = "supervision_topics"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False)
    report_ids: Mapped[list[str]] = mapped_column(ARRAY(String(36)), nullable=False)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    suggestion_id: Mapped[str | None] = mapped_column(String(36))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class MicroFund(Base):
    """A region's yearly fund for micro-suggestions (急难小), in fen."""

    __tablename__ = "micro_funds"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_at: Mapped[datetime] = _now()


class MicroSpending(Base):
    __tablename__ = "micro_spending"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    suggestion_id: Mapped[str] = mapped_column(String(36), nullable=False)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(100), nullable=False)
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_micro_spending_fund", "region_code", "year"),)
