"""Tables of the `identity` schema. No other service reads them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata

SCHEMA = "identity"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
AUDIT = audit_table(Base.metadata)


class Region(Base):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class Deputy(Base):
    __tablename__ = "deputies"
    # A scanned station code lists the deputies attached to it: `station_ids @> '["<id>"]'`.
    __table_args__ = (Index("ix_deputies_station_ids", "station_ids", postgresql_using="gin"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    district_id: Mapped[str | None] = mapped_column(String(64))
    station_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    groups: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # Encrypted with the PII keyring; the blind index lets staff find a deputy by phone.
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_index: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class Code(Base):
    """A QR code (亮码) and what it resolves to, copied from its deputy or station.

    The copy is what `GET /v1/codes/{code}` reads: every scan is one primary-key lookup, no join.
    Renaming or moving the deputy or station rewrites the live rows in the same transaction.
    """

    __tablename__ = "codes"
    __table_args__ = (
        CheckConstraint("kind IN ('deputy', 'station')", name="kind"),
        Index("uq_codes_kind_target_id_live", "kind", "target_id", unique=True,
              postgresql_where=text("revoked_at IS NULL")),
        Index("ix_codes_kind_target_id_issue_key", "kind", "target_id", "issue_key",
              postgresql_where=text("issue_key IS NOT NULL")),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(40))
    # The Idempotency-Key of the POST that issued it, so a retried POST gets the same code back.
    issue_key: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RegistryRecordRow(Base):
    """One record of one registry, latest version; personal fields encrypted, matched by blind index."""

    __tablename__ = "registry_records"
    __table_args__ = (
        CheckConstraint("source IN ('population', 'social_security', 'migrant')", name="source"),
        CheckConstraint("status IN ('active', 'deceased', 'emigrated')", name="status"),
        Index("ix_registry_records_person_index_source_updated_at", "person_index", "source",
              text("updated_at DESC")),
    )

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_index: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    name_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # Derived from the ID number; kept in clear because the age rule runs inside PostgreSQL.
    birth_date: Mapped[date] = mapped_column(Date)
    hukou_region_code: Mapped[str] = mapped_column(String(12))
    residence_region_code: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12))
    political_rights: Mapped[bool] = mapped_column(Boolean)
    residence_certificate: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Election(Base):
    __tablename__ = "elections"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    election_date: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class DistrictRegion(Base):
    """A district (选区) of an election and one region code it holds (by prefix)."""

    __tablename__ = "district_regions"

    election_id: Mapped[str] = mapped_column(ForeignKey("elections.id", ondelete="CASCADE"), primary_key=True)
    district_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    region_prefix: Mapped[str] = mapped_column(String(40), primary_key=True)


class Voter(Base):
    """A registration on the roll; the same person may appear once per district."""

    __tablename__ = "voters"
    __table_args__ = (
        Index("uq_voters_election_id_person_index_district_id", "election_id", "person_index", "district_id",
              unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    election_id: Mapped[str] = mapped_column(ForeignKey("elections.id", ondelete="CASCADE"))
    district_id: Mapped[str] = mapped_column(String(64))
    person_index: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    name_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    birth_date: Mapped[date] = mapped_column(Date)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReconciliationJob(Base):
    __tablename__ = "reconciliation_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name="status"),
        Index("ix_reconciliation_jobs_election_id", "election_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    election_id: Mapped[str] = mapped_column(ForeignKey("elections.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[str | None] = mapped_column(String(100))
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # A runner renews this while it works; a stale heartbeat lets another replica take the job over.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReconciliationItem(Base):
    """One finding; personal fields are looked up by `person_index` when a page is shown."""

    __tablename__ = "reconciliation_items"
    # One partition per job, filled before it is indexed and attached, dropped with its job
    # (migration 0011). No foreign key: only the job writes its findings, in the transaction
    # holding its row, and a per-row check cost a fifth of a run.
    __table_args__ = ({"postgresql_partition_by": "LIST (job_id)"},)

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    person_index: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    district_id: Mapped[str | None] = mapped_column(String(64))
    expected_district_id: Mapped[str | None] = mapped_column(String(64))


class RegistryPerson(Base):
    """The registries merged per person (the reconciliation rules of docs/integrators.md), kept current by
    every registry write."""

    __tablename__ = "registry_persons"
    # A run finds the distinct home regions of its election by this index (reconciliation_sql.py).
    __table_args__ = (Index("ix_registry_persons_home",
                            text("COALESCE(certified_residence, hukou_region_code)")),)

    person_index: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    birth_date: Mapped[date] = mapped_column(Date)
    in_population: Mapped[bool] = mapped_column(Boolean)
    hukou_region_code: Mapped[str | None] = mapped_column(String(12))
    status: Mapped[str | None] = mapped_column(String(12))
    political_rights: Mapped[bool | None] = mapped_column(Boolean)
    # Where a migrant with a residence certificate (选民资格证明) votes; null for everyone else.
    certified_residence: Mapped[str | None] = mapped_column(String(12))
    deceased: Mapped[bool] = mapped_column(Boolean)


class RegistryLoad(Base):
    """An initial load sent as one file (registry_loads_api.py): resumable after its last committed line."""

    __tablename__ = "registry_loads"

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(12))
    # The file's lines up to this one are stored (or rejected); a re-sent file skips them.
    lines_committed: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    accepted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    unchanged: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rejected: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RegistryLoadRejection(Base):
    __tablename__ = "registry_load_rejections"
    __table_args__ = (
        ForeignKeyConstraint(["source", "load_id"], [f"{SCHEMA}.registry_loads.source",
                                                     f"{SCHEMA}.registry_loads.load_id"],
                             name="fk_registry_load_rejections_load", ondelete="CASCADE"),
    )

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
