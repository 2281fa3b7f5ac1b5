"""Registry ingest over NATS against a bare COPY of the same rows, measured in the same run.

    .venv/bin/python bench/registry_ingest.py [--records 100000] [--replicas 1]

Starts its own PostgreSQL and NATS (sync_interval: always, as in production), loads N population
records into the REGISTRY stream (one record per message, as provincial systems send them), then
starts the identity service as a real process (`minyi serve identity`, several with --replicas)
and times it from ready until every record is in `identity.registry_records`: validated, ID
number and name encrypted, blind-indexed and upserted. The baseline COPYs the very same stored
rows (already encrypted, so it pays none of that work) into a table of the same definition.
Prints both rates and their ratio; the target is ≥ 0.3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime

import asyncpg
import nats
from identity_stack import Stack, birth_date, identity, person_id, stack

from services.identity import registry

ELECTION_DAY = date(2026, 12, 15)


def records(n: int) -> list[dict[str, object]]:
    return [{
        "record_id": f"P{i}", "id_number": person_id(i, birth_date(i, ELECTION_DAY)), "name": f"居民{i}",
        "hukou_region_code": f"320205{i % 300:03d}001", "residence_region_code": f"320205{i % 300:03d}001",
        "status": "active", "political_rights": True, "updated_at": "2026-10-01T08:00:00+08:00",
    } for i in range(n)]


async def preload(url: str, bodies: list[bytes]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    from shared.bus.streams import declare
    from shared.contracts import REGISTRY_STREAM

    await declare(js, REGISTRY_STREAM, replicas=1)
    window = 2000
    for start in range(0, len(bodies), window):
        acks = [js.publish("registry.population.records", b) for b in bodies[start:start + window]]
        await asyncio.gather(*acks)
        if start // window % 25 == 0:
            print(f"  … published {start + window}/{len(bodies)}", flush=True)
    await nc.close()


async def drained(url: str) -> bool:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("REGISTRY", "identity-registry")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)
    finally:
        await nc.close()


async def count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM identity.registry_records"))
    finally:
        await conn.close()


async def bare_copy(dsn: str, rows: list[tuple[object, ...]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE public.bare_registry (LIKE identity.registry_records INCLUDING ALL)")
        t0 = time.perf_counter()
        await conn.copy_records_to_table("bare_registry", records=rows, columns=list(registry.ROW_COLUMNS),
                                         schema_name="public")
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def ingest(s: Stack, n: int, replicas: int) -> float:
    dsn = s.postgres.url.replace("postgresql+asyncpg", "postgresql")
    with ExitStack() as services:
        started = [services.enter_context(identity(s)) for _ in range(replicas)]
        t0 = time.perf_counter()
        last = t0
        while (done := await count(dsn)) < n:
            await asyncio.sleep(0.2)
            if time.perf_counter() - last > 3:
                print(f"  … stored {done}/{n}", flush=True)
                last = time.perf_counter()
                if await drained(s.nats.url):
                    raise SystemExit(f"the feed is consumed but only {done} of {n} records were stored; "
                                     f"see the identity log under {s.root}")
        elapsed = time.perf_counter() - t0
        print(f"  identity RSS: {', '.join(f'{svc.rss / 2**20:.0f} MiB' for svc in started)}")
    return elapsed


async def main(n: int, replicas: int) -> None:
    data = records(n)
    with stack() as s:
        print(f"publishing {n} records to registry.population.records …", flush=True)
        await preload(s.nats.url, [json.dumps(r, ensure_ascii=False).encode() for r in data])
        print(f"ingest: {replicas} identity process(es) consuming the feed …", flush=True)
        ours = await ingest(s, n, replicas)
        print("baseline: bare COPY of the same stored rows …", flush=True)
        now = datetime.now(UTC)
        rows = [registry.to_row(s.keyring, registry.parse_record("population", r, now=now)) for r in data]
        base = await bare_copy(s.postgres.url.replace("postgresql+asyncpg", "postgresql"), rows)
    print(f"bare COPY  {n / base:9.0f} rows/s")
    print(f"ingest     {n / ours:9.0f} records/s")
    print(f"ratio ingest/COPY = {base / ours:.2f} (target ≥ 0.30)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.replicas))
