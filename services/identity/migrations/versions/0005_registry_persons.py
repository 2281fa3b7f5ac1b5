"""Registry persons: the sources merged per person, maintained on write.

Revision ID: identity_0005
Revises: identity_0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0005"
down_revision: str | None = "identity_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    # Merging a person reads their latest record per source: one index serves the whole lookup.
    op.drop_index("ix_registry_records_person_index", "registry_records", schema=S)
    op.create_index("ix_registry_records_person_index_source_updated_at", "registry_records",
                    ["person_index", "source", sa.text("updated_at DESC")], schema=S)
    op.create_table(
        "registry_persons",
        sa.Column("person_index", sa.LargeBinary(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("in_population", sa.Boolean(), nullable=False),
        sa.Column("hukou_region_code", sa.String(12), nullable=True),
        sa.Column("status", sa.String(12), nullable=True),
        sa.Column("political_rights", sa.Boolean(), nullable=True),
        sa.Column("certified_residence", sa.String(12), nullable=True),
        sa.Column("deceased", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("person_index", name="pk_registry_persons"),
        schema=S,
    )
    # Records stored before this table existed.
    op.execute(f"""
        INSERT INTO {S}.registry_persons
        SELECT p.person_index, agg.birth_date, pop.person_index IS NOT NULL, pop.hukou_region_code, pop.status,
               pop.political_rights,
               CASE WHEN mig.residence_certificate THEN mig.residence_region_code END, agg.deceased
        FROM (SELECT DISTINCT person_index FROM {S}.registry_records) p
        CROSS JOIN LATERAL (SELECT min(birth_date) AS birth_date, bool_or(status = 'deceased') AS deceased
                            FROM {S}.registry_records r WHERE r.person_index = p.person_index) agg
        LEFT JOIN LATERAL (SELECT * FROM {S}.registry_records r WHERE r.person_index = p.person_index
                           AND r.source = 'population' ORDER BY r.updated_at DESC LIMIT 1) pop ON true
        LEFT JOIN LATERAL (SELECT * FROM {S}.registry_records r WHERE r.person_index = p.person_index
                           AND r.source = 'migrant' ORDER BY r.updated_at DESC LIMIT 1) mig ON true
    """)


def downgrade() -> None:
    op.drop_table("registry_persons", schema=S)
    op.drop_index("ix_registry_records_person_index_source_updated_at", "registry_records", schema=S)
    op.create_index("ix_registry_records_person_index", "registry_records", ["person_index"], schema=S)
