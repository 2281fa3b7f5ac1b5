"""Writing registry records: COPY into a session-local staging table, then one upsert.

COPY is the fastest way into PostgreSQL; the upsert then applies "later `updated_at` wins" in one
statement, so a replayed feed finds nothing newer and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

_COLS = ", ".join(ROW_COLUMNS)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS if c not in ("source", "record_id"))
_UPSERT = f"""
INSERT INTO identity.registry_records AS r ({_COLS})
SELECT {_COLS} FROM {_STAGING}
ON CONFLICT (source, record_id) DO UPDATE SET {_UPDATES}, received_at = now()
WHERE excluded.updated_at > r.updated_at
"""


async def _driver(session: AsyncSession) -> Any:
    # The dialect opens its transaction on the first statement it runs itself; before that, driver
    # calls would autocommit one by one and a failed batch could leave half its rows behind.
    await session.execute(text("SELECT 1"))
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def store_rows(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> int:
    """Upsert rows (at most one per key) in the session's transaction; how many changed anything."""
    if not rows:
        return 0
    driver = await _driver(session)
    await driver.execute(_CREATE_STAGING)
    await driver.copy_records_to_table(_STAGING, records=rows, columns=list(ROW_COLUMNS))
    status: str = await driver.execute(_UPSERT)
    # Several batches may share one transaction (a streamed HTTP body); each starts from empty.
    await driver.execute(f"TRUNCATE {_STAGING}")
    return int(status.rsplit(" ", 1)[-1])
