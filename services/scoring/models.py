"""Tables of the `scoring` schema. No other service reads them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata
from shared.idempotency import idempotency_table

SCHEMA = "scoring"
POINTS = Numeric(10, 2)


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
AUDIT = audit_table(Base.metadata)
IDEMPOTENCY = idempotency_table(Base.metadata)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class RuleSetRow(Base):
    """One version of a region's points rules, in force from its date ("" is the default)."""

    __tablename__ = "rule_sets"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, nullable=False)
    doc: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(100), nullable=False)
    recorded_at: Mapped[datetime] = _now()


class DeputyRow(Base):
    """Deputies as identity announces them: who is ranked where."""

    __tablename__ = "deputies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("ix_deputies_region_code_level", "region_code", "level"),)


class Entry(Base):
    """The ledger (履职积分台账): append-only; a correction is another entry that reverses one."""

    __tablename__ = "entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deputy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    points: Mapped[Any] = mapped_column(POINTS, nullable=False)
    part: Mapped[str] = mapped_column(String(8), nullable=False)
    dimension: Mapped[str] = mapped_column(String(16), nullable=False)
    rule_code: Mapped[str] = mapped_column(String(64), nullable=False)
    rule_region: Mapped[str] = mapped_column(String(12), nullable=False)
    rule_version: Mapped[int] = mapped_column(Integer, nullable=False)
    # what gave it: an event type and id, or an activity recorded by staff, or a reversal
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    source_id: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_by: Mapped[str | None] = mapped_column(String(100))
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reverses: Mapped[str | None] = mapped_column(String(36), unique=True)
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_entries_deputy_id_year", "deputy_id", "year"),)


class Total(Base):
    """Running sums of a deputy's year, kept with each entry so rankings read one row a deputy."""

    __tablename__ = "totals"

    deputy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_sum: Mapped[Any] = mapped_column(POINTS, nullable=False)
    bonus_sum: Mapped[Any] = mapped_column(POINTS, nullable=False)
    # min(100, max(0, base_sum)) + max(0, bonus_sum), kept in step by the same statement
    total: Mapped[Any] = mapped_column(POINTS, nullable=False)
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (Index("ix_totals_year_total", "year", "total"),)


class UnitFact(Base):
    """One reply or evaluation of a handling unit, from a suggestions event (idempotent on its id);
    the board (红黄黑榜) is counted from these."""

    __tablename__ = "unit_facts"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    region_code: Mapped[str] = mapped_column(String(12), nullable=False)
    suggestion_id: Mapped[str] = mapped_column(String(36), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # reply | evaluation
    good: Mapped[bool] = mapped_column(Boolean, nullable=False)  # replied in time | satisfied

    __table_args__ = (Index("ix_unit_facts_year_unit_id", "year", "unit_id"),)


class Publication(Base):
    """A ranking as published (`scoring.ranking.published`): frozen from then on. Its rows are in
    `publication_rows`, so a province's thousands are read a page at a time."""

    __tablename__ = "publications"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    deputies: Mapped[int] = mapped_column(Integer, nullable=False)
    # sha256 of the rows as `publication.digest` writes them; None for those published before pages
    digest: Mapped[str | None] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(100), nullable=False)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PublicationRow(Base):
    """One deputy of a published ranking, at its place (0 is the top)."""

    __tablename__ = "publication_rows"

    publication_id: Mapped[str] = mapped_column(String(36), ForeignKey(f"{SCHEMA}.publications.id",
                                                                       ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    deputy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    total: Mapped[Any] = mapped_column(POINTS, nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    stars: Mapped[int] = mapped_column(Integer, nullable=False)
