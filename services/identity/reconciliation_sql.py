"""The reconciliation rules of `reconciliation.py`, as set-based SQL steps inside PostgreSQL.

Each step is one statement over whole tables (hash joins and aggregates, no per-person round
trips); the temporary tables live for the job's single transaction. Step names and their share of
the work drive the progress that staff see.
"""

from __future__ import annotations

from typing import Final

# (step name, progress once done, statement). Parameters: :election_id, :cutoff, :job_id.
STEPS: Final[tuple[tuple[str, float, str], ...]] = (
    ("merge registry sources", 0.35, """
CREATE TEMP TABLE rc_person ON COMMIT DROP AS
WITH pop AS (
    SELECT DISTINCT ON (person_index) person_index, hukou_region_code, status, political_rights, birth_date
    FROM identity.registry_records WHERE source = 'population'
    ORDER BY person_index, updated_at DESC
), mig AS (
    SELECT DISTINCT ON (person_index) person_index, residence_region_code, residence_certificate
    FROM identity.registry_records WHERE source = 'migrant'
    ORDER BY person_index, updated_at DESC
), dead AS (
    SELECT DISTINCT person_index FROM identity.registry_records WHERE status = 'deceased'
)
SELECT person_index,
       pop.person_index IS NOT NULL AS in_population,
       pop.hukou_region_code, pop.status, pop.political_rights, pop.birth_date,
       CASE WHEN mig.residence_certificate THEN mig.residence_region_code END AS certified_residence,
       dead.person_index IS NOT NULL AS deceased
FROM pop FULL JOIN mig USING (person_index) FULL JOIN dead USING (person_index)
"""),
    ("find expected districts", 0.55, """
CREATE TEMP TABLE rc_expect ON COMMIT DROP AS
WITH region AS (
    SELECT DISTINCT ON (r.code) r.code, d.district_id
    FROM (SELECT DISTINCT coalesce(certified_residence, hukou_region_code) AS code FROM rc_person) r
    JOIN identity.district_regions d
      ON d.election_id = :election_id AND left(r.code, length(d.region_prefix)) = d.region_prefix
    ORDER BY r.code, length(d.region_prefix) DESC, d.district_id
)
SELECT p.*, coalesce(p.certified_residence, p.hukou_region_code) IS NOT NULL AS known,
       region.district_id AS expected
FROM rc_person p LEFT JOIN region ON region.code = coalesce(p.certified_residence, p.hukou_region_code)
"""),
    ("group registrations", 0.7, """
CREATE TEMP TABLE rc_reg ON COMMIT DROP AS
SELECT person_index, count(*) AS n, min(birth_date) AS birth_date,
       array_agg(district_id ORDER BY district_id) AS districts
FROM identity.voters WHERE election_id = :election_id
GROUP BY person_index
"""),
    ("classify registered voters", 0.85, """
INSERT INTO identity.reconciliation_items (job_id, kind, person_index, district_id, expected_district_id)
SELECT :job_id, kind, person_index, shown, expected
FROM (
    SELECT r.person_index, e.expected, s.shown,
           CASE WHEN e.deceased THEN 'deceased'
                WHEN e.political_rights = false THEN 'deprived'
                WHEN r.birth_date > :cutoff THEN 'underage'
                WHEN r.n > 1 THEN 'duplicate'
                WHEN e.known AND s.shown IS DISTINCT FROM e.expected THEN 'wrong_district'
           END AS kind
    FROM rc_reg r
    LEFT JOIN rc_expect e USING (person_index)
    -- The district shown is one the person should not be registered in, when there is one.
    CROSS JOIN LATERAL (
        SELECT CASE WHEN r.districts[1] IS NOT DISTINCT FROM e.expected
                    THEN coalesce(r.districts[2], r.districts[1]) ELSE r.districts[1] END AS shown
    ) s
) classified
WHERE kind IS NOT NULL
"""),
    ("find missing voters", 1.0, """
INSERT INTO identity.reconciliation_items (job_id, kind, person_index, district_id, expected_district_id)
SELECT :job_id, 'missing', e.person_index, NULL, e.expected
FROM rc_expect e
WHERE e.in_population AND e.status = 'active' AND NOT e.deceased AND e.political_rights
  AND e.birth_date <= :cutoff AND e.expected IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM rc_reg r WHERE r.person_index = e.person_index)
"""),
)

COUNTS: Final = """
SELECT kind, count(*) FROM identity.reconciliation_items WHERE job_id = :job_id GROUP BY kind
"""
