"""Reconciliation at province scale: persons found by home region, findings written without a
per-row foreign-key check.

A run maps the distinct home regions of its election to districts. With an index on the home
region (certified residence, else hukou) that is one index probe per distinct region instead of
a scan and sort of every person. Findings (`reconciliation_items`) are written by the job only, in
the transaction that holds their job row; the foreign key checked each of a million findings one
by one (about a fifth of the run). Deleting a job still deletes its findings, now by one
statement-level trigger.

Revision ID: identity_0010
Revises: identity_0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "identity_0010"
down_revision: str | None = "identity_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"


def upgrade() -> None:
    op.execute(f"CREATE INDEX ix_registry_persons_home ON {S}.registry_persons "
               "((coalesce(certified_residence, hukou_region_code)))")
    op.drop_constraint("fk_reconciliation_items_job_id_reconciliation_jobs", "reconciliation_items", schema=S,
                       type_="foreignkey")
    op.execute(f"""
CREATE FUNCTION {S}.reconciliation_items_of_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {S}.reconciliation_items i USING gone g WHERE i.job_id = g.id;
    RETURN NULL;
END $$""")
    op.execute(f"""
CREATE TRIGGER reconciliation_jobs_deleted AFTER DELETE ON {S}.reconciliation_jobs
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
EXECUTE FUNCTION {S}.reconciliation_items_of_deleted_jobs()""")


def downgrade() -> None:
    op.execute(f"DROP TRIGGER reconciliation_jobs_deleted ON {S}.reconciliation_jobs")
    op.execute(f"DROP FUNCTION {S}.reconciliation_items_of_deleted_jobs()")
    op.execute(f"DELETE FROM {S}.reconciliation_items i WHERE NOT EXISTS "
               f"(SELECT 1 FROM {S}.reconciliation_jobs j WHERE j.id = i.job_id)")
    op.create_foreign_key("fk_reconciliation_items_job_id_reconciliation_jobs", "reconciliation_items",
                          "reconciliation_jobs", ["job_id"], ["id"], source_schema=S, referent_schema=S,
                          ondelete="CASCADE")
    op.drop_index("ix_registry_persons_home", "registry_persons", schema=S)
