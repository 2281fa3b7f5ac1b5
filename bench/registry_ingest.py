"""Registry ingest over NATS and by bulk load, against a bare COPY of the same rows, in one run.

    .venv/bin/python bench/registry_ingest.py [--records 100000] [--replicas 1] [--skip-feed] [--skip-bulk]
                                              [--per-message 500]

Starts its own PostgreSQL and NATS (sync_interval: always, as in production), loads N population
records into the REGISTRY stream (one record per message, as provincial systems send them), then
starts the identity service as a real process (`minyi serve identity`, several with --replicas)
and times it from ready until every record is in `identity.registry_records`: validated, ID
number and name encrypted, blind-indexed and upserted. Then the same records again into emptied
tables, --per-message of them a message (a JSON array, as the feed also accepts). The baseline
COPYs the very same stored rows (already encrypted, so it pays none of that work) into a table of
the same definition.

The bulk path then loads the same N records into emptied tables as one NDJSON file streamed to
`POST /v1/registry/population/loads` of a fresh identity process, timed from the first byte sent
to the answer. Where the time goes is measured apart, in this process: validation and encryption
of the records (Python alone), and the store's statements (COPY to staging, upsert, persons merge)
on the prepared rows in chunks of the bulk path's size: first as people seen for the first time,
then the same people again as social-security records, whose persons are known (the whole merge).
Prints each rate and its ratio to COPY; the targets are ≥ 0.30 (feed) and ≥ 0.5 (bulk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, date, datetime

import asyncpg
import httpx
import nats
from identity_stack import Stack, birth_date, identity, person_id, stack
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.identity import registry, registry_lines
from services.identity.registry_loads_api import CHUNK_LINES
from services.identity.registry_store import store_rows
from shared.auth import ensure_dev_signing_key, sign_token
from shared.pii import Keyring

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


async def bare_copy(dsn: str, rows: list[tuple[object, ...]], runs: int = 3) -> float:
    """The median of `runs` COPYs into a fresh table: one COPY swung by a factor of 1.5 between runs."""
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(runs):
            await conn.execute("DROP TABLE IF EXISTS public.bare_registry")
            await conn.execute("CREATE TABLE public.bare_registry (LIKE identity.registry_records INCLUDING ALL)")
            await conn.execute("CHECKPOINT")
            t0 = time.perf_counter()
            await conn.copy_records_to_table("bare_registry", records=rows, columns=list(registry.ROW_COLUMNS),
                                             schema_name="public")
            times.append(time.perf_counter() - t0)
        print("  bare COPY runs: " + ", ".join(f"{len(rows) / t:,.0f} rows/s" for t in times), flush=True)
        return sorted(times)[len(times) // 2]
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
                # Counted again once drained: the last batch may commit between the count above and here.
                if await drained(s.nats.url) and (done := await count(dsn)) < n:
                    raise SystemExit(f"the feed is consumed but only {done} of {n} records were stored; "
                                     f"see the identity log under {s.root}")
        elapsed = time.perf_counter() - t0
        print(f"  identity RSS: {', '.join(f'{svc.rss / 2**20:.0f} MiB' for svc in started)}")
    return elapsed


async def reset_feed(url: str) -> None:
    """An empty REGISTRY stream and no feed consumer: the next identity process starts afresh."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.purge_stream("REGISTRY")
        await js.delete_consumer("REGISTRY", "identity-registry")
    finally:
        await nc.close()


async def empty_tables(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE identity.registry_records, identity.registry_persons")
    finally:
        await conn.close()


def integration_token(s: Stack) -> str:
    key = ensure_dev_signing_key(s.root / "home" / "keys" / "jwt-signing-key.pem")
    return sign_token(key, issuer="minyi", audience="minyi", sub="bench-integration", roles=["integration"],
                      region="", sources=["population"])


async def bulk(s: Stack, lines: list[bytes]) -> float:
    """Seconds from the first byte of the NDJSON file sent until the load's answer."""
    body = b"".join(lines)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    with identity(s) as svc:
        async with httpx.AsyncClient(base_url=svc.url, timeout=3600) as client:
            t0 = time.perf_counter()
            resp = await client.post("/v1/registry/population/loads", params={"load_id": "bench"}, content=stream(),
                                     headers={"Authorization": f"Bearer {integration_token(s)}",
                                              "Content-Type": "application/x-ndjson"})
            elapsed = time.perf_counter() - t0
        print(f"  identity RSS: {svc.rss / 2**20:.0f} MiB")
    resp.raise_for_status()
    answer = resp.json()
    if answer["accepted"] != len(lines):
        raise SystemExit(f"the load accepted {answer['accepted']} of {len(lines)}: {answer['rejections'][:3]}")
    return elapsed


async def store_only(url: str, rows: list[tuple[object, ...]]) -> float:
    """Seconds the store's statements take on prepared rows, chunk by chunk as the bulk path sends them."""
    engine = create_async_engine(url)
    try:
        t0 = time.perf_counter()
        for start in range(0, len(rows), CHUNK_LINES):
            async with AsyncSession(engine) as session, session.begin():
                await store_rows(session, rows[start:start + CHUNK_LINES])
        return time.perf_counter() - t0
    finally:
        await engine.dispose()


def prepare_only(keyring: Keyring, lines: list[bytes]) -> tuple[float, list[tuple[object, ...]]]:
    """Seconds validation and encryption take in Python alone, and the rows they make."""
    t0 = time.perf_counter()
    rows: list[tuple[object, ...]] = []
    for start in range(0, len(lines), CHUNK_LINES):
        numbered = list(enumerate(lines[start:start + CHUNK_LINES], start + 1))
        rows += registry_lines.prepare_lines("population", None, numbered, start + CHUNK_LINES, keyring,
                                             now=datetime.now(UTC)).rows
    return time.perf_counter() - t0, rows


async def main(n: int, replicas: int, feed: bool, bulk_load: bool, per_message: int) -> None:
    data = records(n)
    lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in data]
    results: list[tuple[str, float]] = []
    with stack() as s:
        dsn = s.postgres.url.replace("postgresql+asyncpg", "postgresql")
        if feed:
            print(f"publishing {n} records to registry.population.records, one a message …", flush=True)
            await preload(s.nats.url, [line.rstrip() for line in lines])
            print(f"ingest: {replicas} identity process(es) consuming the feed …", flush=True)
            results.append(("feed", await ingest(s, n, replicas)))
            if per_message > 1:
                await empty_tables(dsn)
                await reset_feed(s.nats.url)
                print(f"publishing the same {n} records, {per_message} a message …", flush=True)
                await preload(s.nats.url, [b"[" + b",".join(line.rstrip() for line in lines[i:i + per_message]) + b"]"
                                           for i in range(0, n, per_message)])
                print(f"ingest: {replicas} identity process(es) consuming the feed …", flush=True)
                results.append((f"feed, {per_message}/msg", await ingest(s, n, replicas)))
        if bulk_load:
            if feed:
                await empty_tables(dsn)
            print(f"bulk: {n} records as one NDJSON file to POST /v1/registry/population/loads …", flush=True)
            results.append(("bulk load", await bulk(s, lines)))
            print("where the time goes: validation and encryption alone, then the store's statements alone …",
                  flush=True)
            prepare_seconds, prepared = prepare_only(s.keyring, lines)
            await empty_tables(dsn)
            results.append(("  Python alone", prepare_seconds))
            results.append(("  SQL alone", await store_only(s.postgres.url, prepared)))
            # The same persons again from another registry: each is known, so the whole merge runs.
            known = [("social_security", f"S{row[1]}", *row[2:]) for row in prepared]
            results.append(("  SQL, known", await store_only(s.postgres.url, known)))
        print("baseline: bare COPY of the same stored rows …", flush=True)
        now = datetime.now(UTC)
        rows = [registry.to_row(s.keyring, registry.parse_record("population", r, now=now)) for r in data]
        base = await bare_copy(dsn, rows)
    print(f"bare COPY          {n / base:9.0f} rows/s")
    for name, seconds in results:
        print(f"{name:18} {n / seconds:9.0f} records/s   ratio to COPY {base / seconds:.2f}")
    print("targets: feed ≥ 0.30, bulk load ≥ 0.50")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--skip-feed", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--per-message", type=int, default=500,
                        help="records a message in the second feed run (a JSON array); 1 skips that run")
    args = parser.parse_args()
    asyncio.run(main(args.records, args.replicas, not args.skip_feed, not args.skip_bulk, args.per_message))
