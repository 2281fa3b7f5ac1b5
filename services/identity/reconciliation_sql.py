"""The reconciliation rules of `reconciliation.py`, as set-based SQL inside PostgreSQL.

The registries are merged per person as they are written (`registry_persons`, see
registry_store.py), so a run is: map the few distinct home regions to districts, then one pass
that joins every person with their registrations (hash joins and a hash aggregate, no sorts of
the whole roll) and classifies them. Step names and their share of the work drive the progress
staff see.
"""

from __future__ import annotations

import re
from typing import Final

# (step name, progress once done, statement). Parameters: :election_id, :region (the election's
# region code, which every district's prefix starts with), :region_end (`region_end(region)`),
# :cutoff, :job_id; `{findings}` is the job's own table of findings (`FINDINGS_TABLE`), not yet
# indexed nor attached to `reconciliation_items` (identity migration 0011).
STEPS: Final[tuple[tuple[str, float, str], ...]] = (
    # The distinct home regions come from the home-region index one probe each (a loose index
    # scan): a county has hundreds of villages but may have millions of persons. Codes are digits,
    # so in any collation every code starting with :region lies in [:region, :region_end)
    # (`region_end`).
    ("map regions to districts", 0.05, """
CREATE TEMP TABLE rc_region ON COMMIT DROP AS
WITH RECURSIVE homes(code) AS (
    (SELECT coalesce(certified_residence, hukou_region_code) FROM identity.registry_persons
     WHERE coalesce(certified_residence, hukou_region_code) >= :region
       AND coalesce(certified_residence, hukou_region_code) < :region_end
     ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (SELECT coalesce(certified_residence, hukou_region_code) FROM identity.registry_persons
            WHERE coalesce(certified_residence, hukou_region_code) > h.code
              AND coalesce(certified_residence, hukou_region_code) < :region_end
            ORDER BY 1 LIMIT 1)
    FROM homes h WHERE h.code IS NOT NULL
)
SELECT DISTINCT ON (r.code) r.code::text AS code, d.district_id
FROM homes r
JOIN identity.district_regions d
  ON d.election_id = :election_id AND left(r.code, length(d.region_prefix)) = d.region_prefix
WHERE r.code IS NOT NULL
ORDER BY r.code, length(d.region_prefix) DESC, d.district_id
"""),
    # Persons are those at home in the election's region and those on its roll from elsewhere: a
    # county's run reads its own people, not the whole province's registry. Per person of the roll
    # only counts and bounds are kept (no array of districts): the rare person on three rolls or more
    # is looked up again for the district to show.
    ("classify persons and registrations", 1.0, """
INSERT INTO identity.{findings} (job_id, kind, person_index, district_id, expected_district_id)
SELECT :job_id, kind, person_index, shown, expected
FROM (
    SELECT person_index, e.district_id AS expected,
           CASE WHEN r.n = 1 OR r.first_district IS DISTINCT FROM e.district_id THEN r.first_district
                WHEN r.n = 2 THEN r.last_district
                ELSE (SELECT min(v.district_id) FROM identity.voters v
                      WHERE v.election_id = :election_id AND v.person_index = r.person_index
                        AND v.district_id <> e.district_id) END AS shown,
           CASE WHEN r.person_index IS NULL THEN
                    CASE WHEN p.in_population AND p.status = 'active' AND NOT p.deceased AND p.political_rights
                              AND p.birth_date <= :cutoff AND e.district_id IS NOT NULL THEN 'missing' END
                WHEN p.deceased THEN 'deceased'
                WHEN p.political_rights = false THEN 'deprived'
                WHEN r.birth_date > :cutoff THEN 'underage'
                WHEN r.n > 1 THEN 'duplicate'
                WHEN coalesce(p.certified_residence, p.hukou_region_code) IS NOT NULL
                     AND r.first_district IS DISTINCT FROM e.district_id THEN 'wrong_district'
           END AS kind
    FROM (
        SELECT * FROM identity.registry_persons p
        WHERE left(coalesce(p.certified_residence, p.hukou_region_code), length(:region)) = :region
           OR EXISTS (SELECT 1 FROM identity.voters v
                      WHERE v.election_id = :election_id AND v.person_index = p.person_index)
    ) p
    FULL JOIN (
        SELECT person_index, count(*) AS n, min(birth_date) AS birth_date, min(district_id) AS first_district,
               max(district_id) AS last_district
        FROM identity.voters WHERE election_id = :election_id
        GROUP BY person_index
    ) r USING (person_index)
    LEFT JOIN rc_region e ON e.code = coalesce(p.certified_residence, p.hukou_region_code)
) classified
WHERE kind IS NOT NULL
"""),
)

# The name `reconciliation_items_begin` returns; checked before it is written into a statement.
FINDINGS_TABLE: Final = re.compile(r"reconciliation_items_[0-9a-f]{32}")

BEGIN_FINDINGS: Final = "SELECT identity.reconciliation_items_begin(:job_id)"
ATTACH_FINDINGS: Final = "SELECT identity.reconciliation_items_attach(:job_id)"


def region_end(region: str) -> str:
    """The least code after every code that starts with `region` (codes are digits): 320205 → 320206.
    A region of nines has no such code of its length; a letter, after every digit, bounds it."""
    digits = region.rstrip("9")
    if not digits:
        return region + "A"
    return digits[:-1] + str(int(digits[-1]) + 1) + "0" * (len(region) - len(digits))


COUNTS: Final = """
SELECT kind, count(*) FROM identity.reconciliation_items WHERE job_id = :job_id GROUP BY kind
"""
