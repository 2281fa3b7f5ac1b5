"""Reconciliation findings in one partition per job.

A county's run writes about a hundred thousand findings. Kept in one shared table, each finding
was a random insert into its primary key (about a quarter of the run); a job of its own is filled
first and indexed once, in one sorted pass, before it is attached, and a superseded job's findings
go by dropping its partition rather than deleting its rows one by one.

`reconciliation_items_begin(job_id)` creates the job's empty table (standalone, so it has no index
yet) and returns its name; `reconciliation_items_attach(job_id)` indexes it and attaches it. The
name is derived from the job id by the database alone, so a job id never becomes SQL text.

Revision ID: identity_0011
Revises: identity_0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "identity_0011"
down_revision: str | None = "identity_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "identity"
COLUMNS = """
    job_id varchar(40) NOT NULL,
    kind varchar(16) NOT NULL,
    person_index bytea NOT NULL,
    district_id varchar(64),
    expected_district_id varchar(64)"""


def _replace_findings_table(old_name: str, partitioned: bool) -> None:
    """`reconciliation_items` renamed to `old_name`, and a new one made in its place."""
    op.execute(f"ALTER TABLE {S}.reconciliation_items RENAME TO {old_name}")
    op.execute(f"ALTER INDEX {S}.pk_reconciliation_items RENAME TO pk_{old_name}")
    op.execute(f"""
CREATE TABLE {S}.reconciliation_items ({COLUMNS},
    CONSTRAINT pk_reconciliation_items PRIMARY KEY (job_id, kind, person_index)
){" PARTITION BY LIST (job_id)" if partitioned else ""}""")


def upgrade() -> None:
    _replace_findings_table("reconciliation_items_shared", partitioned=True)
    op.execute(f"""
CREATE FUNCTION {S}.reconciliation_items_partition(job_id text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT 'reconciliation_items_' || md5(job_id) $$""")
    op.execute(f"""
CREATE FUNCTION {S}.reconciliation_items_begin(job_id text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE part text := {S}.reconciliation_items_partition(job_id);
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS {S}.%I', part);
    EXECUTE format('CREATE TABLE {S}.%I (LIKE {S}.reconciliation_items)', part);
    RETURN part;
END $$""")
    op.execute(f"""
CREATE FUNCTION {S}.reconciliation_items_attach(job_id text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE part text := {S}.reconciliation_items_partition(job_id);
BEGIN
    EXECUTE format('ALTER TABLE {S}.%I ADD CONSTRAINT %I PRIMARY KEY (job_id, kind, person_index)',
                   part, 'pk_' || part);
    EXECUTE format('ALTER TABLE {S}.reconciliation_items ATTACH PARTITION {S}.%I FOR VALUES IN (%L)',
                   part, job_id);
END $$""")
    op.execute(f"""
CREATE OR REPLACE FUNCTION {S}.reconciliation_items_of_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE gone_id text;
BEGIN
    FOR gone_id IN SELECT id FROM gone LOOP
        EXECUTE format('DROP TABLE IF EXISTS {S}.%I', {S}.reconciliation_items_partition(gone_id));
    END LOOP;
    RETURN NULL;
END $$""")
    op.execute(f"""
DO $$
DECLARE job text;
BEGIN
    FOR job IN SELECT DISTINCT i.job_id FROM {S}.reconciliation_items_shared i
               JOIN {S}.reconciliation_jobs j ON j.id = i.job_id LOOP
        EXECUTE format('INSERT INTO {S}.%I SELECT * FROM {S}.reconciliation_items_shared WHERE job_id = %L',
                       {S}.reconciliation_items_begin(job), job);
        PERFORM {S}.reconciliation_items_attach(job);
    END LOOP;
END $$""")
    op.execute(f"DROP TABLE {S}.reconciliation_items_shared")


def downgrade() -> None:
    _replace_findings_table("reconciliation_items_by_job", partitioned=False)
    op.execute(f"INSERT INTO {S}.reconciliation_items SELECT * FROM {S}.reconciliation_items_by_job")
    op.execute(f"DROP TABLE {S}.reconciliation_items_by_job")
    op.execute(f"""
CREATE OR REPLACE FUNCTION {S}.reconciliation_items_of_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {S}.reconciliation_items i USING gone g WHERE i.job_id = g.id;
    RETURN NULL;
END $$""")
    op.execute(f"DROP FUNCTION {S}.reconciliation_items_attach(text)")
    op.execute(f"DROP FUNCTION {S}.reconciliation_items_begin(text)")
    op.execute(f"DROP FUNCTION {S}.reconciliation_items_partition(text)")
