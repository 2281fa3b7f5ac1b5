"""Registry records, elections, voters and reconciliation jobs.

Revision ID: identity_0004
Revises: identity_0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "identity_0004"
down_revision: str | None = "identity_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    op.create_table(
        "registry_records",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("person_index", sa.LargeBinary(), nullable=False),
        sa.Column("id_number_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("name_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("hukou_region_code", sa.String(12), nullable=False),
        sa.Column("residence_region_code", sa.String(12), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("political_rights", sa.Boolean(), nullable=False),
        sa.Column("residence_certificate", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("source", "record_id", name="pk_registry_records"),
        sa.CheckConstraint("source IN ('population', 'social_security', 'migrant')", name="ck_registry_records_source"),
        sa.CheckConstraint("status IN ('active', 'deceased', 'emigrated')", name="ck_registry_records_status"),
        schema=S,
    )
    op.create_index("ix_registry_records_person_index", "registry_records", ["person_index"], schema=S)

    op.create_table(
        "elections",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("region_code", sa.String(40), nullable=False),
        sa.Column("election_date", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_elections"),
        sa.ForeignKeyConstraint(["region_code"], [f"{S}.regions.code"], name="fk_elections_region_code_regions"),
        schema=S,
    )
    op.create_table(
        "district_regions",
        sa.Column("election_id", sa.String(64), nullable=False),
        sa.Column("district_id", sa.String(64), nullable=False),
        sa.Column("region_prefix", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("election_id", "district_id", "region_prefix", name="pk_district_regions"),
        sa.ForeignKeyConstraint(["election_id"], [f"{S}.elections.id"], ondelete="CASCADE",
                                name="fk_district_regions_election_id_elections"),
        schema=S,
    )
    op.create_table(
        "voters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("election_id", sa.String(64), nullable=False),
        sa.Column("district_id", sa.String(64), nullable=False),
        sa.Column("person_index", sa.LargeBinary(), nullable=False),
        sa.Column("id_number_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("name_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_voters"),
        sa.ForeignKeyConstraint(["election_id"], [f"{S}.elections.id"], ondelete="CASCADE",
                                name="fk_voters_election_id_elections"),
        schema=S,
    )
    op.create_index("uq_voters_election_id_person_index_district_id", "voters",
                    ["election_id", "person_index", "district_id"], unique=True, schema=S)

    op.create_table(
        "reconciliation_jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("election_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("step", sa.String(100), nullable=True),
        sa.Column("counts", JSONB(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_jobs"),
        sa.ForeignKeyConstraint(["election_id"], [f"{S}.elections.id"], ondelete="CASCADE",
                                name="fk_reconciliation_jobs_election_id_elections"),
        sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name="ck_reconciliation_jobs_status"),
        schema=S,
    )
    op.create_index("ix_reconciliation_jobs_election_id", "reconciliation_jobs", ["election_id", "created_at"],
                    schema=S)
    op.create_table(
        "reconciliation_items",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("person_index", sa.LargeBinary(), nullable=False),
        sa.Column("district_id", sa.String(64), nullable=True),
        sa.Column("expected_district_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "kind", "person_index", name="pk_reconciliation_items"),
        sa.ForeignKeyConstraint(["job_id"], [f"{S}.reconciliation_jobs.id"], ondelete="CASCADE",
                                name="fk_reconciliation_items_job_id_reconciliation_jobs"),
        schema=S,
    )


def downgrade() -> None:
    for table in ("reconciliation_items", "reconciliation_jobs", "voters", "district_regions", "elections",
                  "registry_records"):
        op.drop_table(table, schema=S)
