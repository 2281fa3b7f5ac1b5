"""Writing registry records: COPY into a session-local staging table, then one upsert.

COPY is the fastest way into PostgreSQL; the upsert then applies "later `updated_at` wins" in one
statement, so a replayed feed finds nothing newer and changes nothing. The persons whose records
changed are merged again into `registry_persons` in the same transaction, so a reconciliation
reads one row per person instead of merging whole registries each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.registry import ROW_COLUMNS

_STAGING = "registry_incoming"

_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    source text, record_id text, person_index bytea, id_number_encrypted bytea, name_encrypted bytea,
    birth_date date, hukou_region_code text, residence_region_code text, status text,
    political_rights boolean, residence_certificate boolean, updated_at timestamptz
) ON COMMIT DELETE ROWS
"""

AFFECTED = "registry_affected"
# The persons to merge again; the applied record's values beside them, so that a person the upsert
# just created can be merged from here alone. A person left by a moved record has only its index.
_APPLIED = ("source", "birth_date", "hukou_region_code", "residence_region_code", "status", "political_rights",
            "residence_certificate", "updated_at")
CREATE_AFFECTED = f"""
CREATE TEMP TABLE IF NOT EXISTS {AFFECTED} (
    person_index bytea, source text, birth_date date, hukou_region_code text, residence_region_code text,
    status text, political_rights boolean, residence_certificate boolean, updated_at timestamptz
) ON COMMIT DELETE ROWS
"""

MERGE = f"""
WITH affected AS (SELECT DISTINCT person_index FROM {AFFECTED}),
merged AS (
    SELECT a.person_index, agg.n, agg.birth_date, agg.deceased, pop.person_index IS NOT NULL AS in_population,
           pop.hukou_region_code, pop.status, pop.political_rights,
           CASE WHEN mig.residence_certificate THEN mig.residence_region_code END AS certified_residence
    FROM affected a
    CROSS JOIN LATERAL (SELECT count(*) AS n, min(birth_date) AS birth_date,
                               coalesce(bool_or(status = 'deceased'), false) AS deceased
                        FROM identity.registry_records r WHERE r.person_index = a.person_index) agg
    LEFT JOIN LATERAL (SELECT * FROM identity.registry_records r WHERE r.person_index = a.person_index
                       AND r.source = 'population' ORDER BY r.updated_at DESC LIMIT 1) pop ON true
    LEFT JOIN LATERAL (SELECT * FROM identity.registry_records r WHERE r.person_index = a.person_index
                       AND r.source = 'migrant' ORDER BY r.updated_at DESC LIMIT 1) mig ON true
), gone AS (
    DELETE FROM identity.registry_persons p USING merged m WHERE p.person_index = m.person_index AND m.n = 0
)
INSERT INTO identity.registry_persons AS p (person_index, birth_date, in_population, hukou_region_code, status,
                                            political_rights, certified_residence, deceased)
SELECT person_index, birth_date, in_population, hukou_region_code, status, political_rights, certified_residence,
       deceased
FROM merged WHERE n > 0
ON CONFLICT (person_index) DO UPDATE SET
    birth_date = excluded.birth_date, in_population = excluded.in_population,
    hukou_region_code = excluded.hukou_region_code, status = excluded.status,
    political_rights = excluded.political_rights, certified_residence = excluded.certified_residence,
    deceased = excluded.deceased
"""

_COLS = ", ".join(ROW_COLUMNS)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS if c not in ("source", "record_id"))
# Each applied record's person is merged again, and so is the person a record now naming another
# ID number leaves (`old` is the row before the update; PostgreSQL 18's RETURNING OLD saves reading
# the records a second time to find those). Answers how many records changed and how many rows
# went to AFFECTED.
_UPSERT = f"""
WITH changed AS (
    INSERT INTO identity.registry_records AS r ({_COLS})
    SELECT {_COLS} FROM {_STAGING}
    ON CONFLICT (source, record_id) DO UPDATE SET {_UPDATES}, received_at = now()
    WHERE excluded.updated_at > r.updated_at
    RETURNING old.person_index AS former, new.person_index, {", ".join("new." + c for c in _APPLIED)}
), affected AS (
    INSERT INTO {AFFECTED} (person_index, {", ".join(_APPLIED)})
    SELECT person_index, {", ".join(_APPLIED)} FROM changed
    UNION ALL
    SELECT former, {", ".join("NULL" for _ in _APPLIED)} FROM changed WHERE former <> person_index
    RETURNING source
)
SELECT count(source) AS changed, count(*) AS affected FROM affected
"""

# A person with no row in registry_persons had no records before this statement's upsert, so its
# records are exactly the applied ones above: it is merged from them, without reading the records
# table (three index probes a person, half of a first load's merging). The rest, and anyone the
# insert finds already there, are left in AFFECTED for MERGE. A separate statement from MERGE on
# purpose: when another transaction creates the same person first, the insert waits for it, and
# MERGE's fresh snapshot then sees that transaction's records.
_NEWEST = "(array_agg({value} ORDER BY updated_at DESC) FILTER (WHERE source = '{source}'))[1]"
_FRESH = f"""
WITH fresh AS (
    INSERT INTO identity.registry_persons (person_index, birth_date, in_population, hukou_region_code, status,
                                           political_rights, certified_residence, deceased)
    SELECT person_index, min(birth_date), bool_or(source = 'population'),
           {_NEWEST.format(value="hukou_region_code", source="population")},
           {_NEWEST.format(value="status", source="population")},
           {_NEWEST.format(value="political_rights", source="population")},
           {_NEWEST.format(value="CASE WHEN residence_certificate THEN residence_region_code END", source="migrant")},
           coalesce(bool_or(status = 'deceased'), false)
    FROM {AFFECTED} a
    WHERE NOT EXISTS (SELECT FROM identity.registry_persons p WHERE p.person_index = a.person_index)
    GROUP BY person_index HAVING bool_and(source IS NOT NULL)
    ON CONFLICT (person_index) DO NOTHING
    RETURNING person_index
)
DELETE FROM {AFFECTED} a USING fresh WHERE a.person_index = fresh.person_index
"""


async def _driver(session: AsyncSession) -> Any:
    # The dialect opens its transaction on the first statement it runs itself; before that, driver
    # calls would autocommit one by one and a failed batch could leave half its rows behind.
    await session.execute(text("SELECT 1"))
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# The known persons to merge, locked first, in one order so that two batches locking the same
# persons cannot deadlock. A transaction writing records of the same person commits before it lets go, and MERGE's
# snapshot, taken after, then holds that transaction's records too: without the lock, MERGE would
# wait only at its own write and then overwrite the person with what it read before the wait.
_LOCK_KNOWN = f"""
SELECT FROM identity.registry_persons
WHERE person_index IN (SELECT person_index FROM {AFFECTED})
ORDER BY person_index FOR UPDATE
"""


def _count(status: str) -> int:
    """The row count of a command's status, such as `INSERT 0 42` or `DELETE 7`."""
    return int(status.rsplit(" ", 1)[-1])


async def store_rows(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> int:
    """Upsert rows (at most one per key) in the session's transaction; how many changed anything."""
    if not rows:
        return 0
    driver = await _driver(session)
    await driver.execute(_CREATE_STAGING)
    await driver.execute(CREATE_AFFECTED)
    await driver.copy_records_to_table(_STAGING, records=rows, columns=list(ROW_COLUMNS))
    changed, affected = await driver.fetchrow(_UPSERT)
    if changed and _count(await driver.execute(_FRESH)) < affected:
        await driver.execute(_LOCK_KNOWN)
        await driver.execute(MERGE)
    # Several batches may share one transaction (a streamed HTTP body); each starts from empty.
    await driver.execute(f"TRUNCATE {_STAGING}, {AFFECTED}")
    return changed


# SQLSTATE classes that belong to the values of a statement, not to the database or the connection:
# data exceptions (22: out of range, too long, bad encoding), integrity (23), a trigger's refusal
# (P0) and program limits such as an oversized row (54). Anything else is retried as a whole.
_VALUE_CLASSES: Final = ("22", "23", "P0", "54")
# What asyncpg's encoders raise for a Python value they cannot send (a year-1 timestamp in UTC).
_ENCODING_ERRORS: Final = (OverflowError, ValueError, TypeError, UnicodeError)


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(5):  # SQLAlchemy wraps the driver's error, which may wrap asyncpg's
        if seen is None:
            return None
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def refused_value(exc: BaseException) -> str | None:
    """The SQLSTATE (or error type) when `exc` is the database refusing a value; None for failures
    of the database itself (down, restarting, out of connections), which retrying the whole solves."""
    state = _sqlstate(exc)
    if state is not None:
        return state if state[:2] in _VALUE_CLASSES else None
    if isinstance(exc, _ENCODING_ERRORS):
        return type(exc).__name__
    return None


@dataclass
class Stored:
    changed: int = 0
    # Position in the given rows, and why the database refused it (a code, never the value).
    refused: list[tuple[int, str]] = field(default_factory=list)


async def store_rows_apart(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> Stored:
    """Like `store_rows`, but a row the database refuses is set aside instead of failing the others.

    The rows are written under a savepoint; when the database refuses a value the savepoint is
    rolled back and each half is tried again, down to the single row at fault: a thousand rows
    with one bad row cost about 2·log2(1000) ≈ 20 extra statements. Failures of the database itself
    propagate, so the caller retries the whole batch later.
    """
    result = Stored()

    async def attempt(positions: list[int]) -> None:
        try:
            async with session.begin_nested():
                result.changed += await store_rows(session, [rows[i] for i in positions])
        except Exception as exc:
            state = refused_value(exc)
            if state is None:
                raise
            if len(positions) == 1:
                result.refused.append((positions[0], state))
                return
            middle = len(positions) // 2
            await attempt(positions[:middle])
            await attempt(positions[middle:])

    if rows:
        await attempt(list(range(len(rows))))
    return result
