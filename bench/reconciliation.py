"""Voter-roll reconciliation against the bare SQL it cannot beat, measured in the same run.

    .venv/bin/python bench/reconciliation.py [--persons 1000000]

Starts its own PostgreSQL and NATS, writes N registry persons (population records, with migrant
and social-security records for some) and about N registrations straight into the identity
tables with COPY (encrypted as the service stores them), then starts the identity service as a
real process, asks it to reconcile over HTTP and waits for `done`, sampling the service's memory.
The baseline runs the bare anti-join (registry persons not on the roll) plus the duplicate
GROUP BY on the same tables. Prints both times, the ratio (target ≤ 3) and the peak RSS of the
service (target < 1 GiB).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
from identity_stack import Stack, birth_date, identity, person_id, stack

from services.identity import reconciliation as rules
from services.identity import registry, registry_store
from services.identity.elections_api import VOTER_ID_CONTEXT, VOTER_NAME_CONTEXT
from shared import idnumber
from shared.pii import blind_index, encrypt

ELECTION_DAY = date(2026, 12, 15)
VILLAGES = 300
CHUNK = 50_000


def village(n: int) -> str:
    return f"320205{n % 30 + 1:03d}{n // 30 % 10 + 1:03d}"


def population_row(s: Stack, n: int, now: datetime) -> tuple[Any, ...]:
    status = "deceased" if n % 50 == 0 else "active"
    record = registry.RegistryRecord(
        source="population", record_id=f"P{n}", id_number=person_id(n, birth_date(n, ELECTION_DAY)),
        name=f"居民{n}", birth_date=birth_date(n, ELECTION_DAY), hukou_region_code=village(n),
        residence_region_code=village(n), status=status,
        political_rights=n % 97 != 0, residence_certificate=None, updated_at=now)
    return registry.to_row(s.keyring, record)


def extra_rows(s: Stack, n: int, now: datetime) -> list[tuple[Any, ...]]:
    """Every tenth person also has a migrant record (half with a certificate), every 20th social security."""
    rows = []
    born = birth_date(n, ELECTION_DAY)
    id_number = person_id(n, born)
    if n % 10 == 3:
        rows.append(registry.to_row(s.keyring, registry.RegistryRecord(
            source="migrant", record_id=f"M{n}", id_number=id_number, name=f"居民{n}", birth_date=born,
            hukou_region_code=village(n), residence_region_code=village(n + 7), status="active",
            political_rights=True, residence_certificate=n % 20 == 3, updated_at=now)))
    if n % 20 == 5:
        rows.append(registry.to_row(s.keyring, registry.RegistryRecord(
            source="social_security", record_id=f"S{n}", id_number=id_number, name=f"居民{n}", birth_date=born,
            hukou_region_code=village(n), residence_region_code=village(n), status="active",
            political_rights=True, residence_certificate=None, updated_at=now)))
    return rows


def voter_rows(s: Stack, n: int) -> list[tuple[Any, ...]]:
    """Adults: 95 % registered where their hukou is, 1 % also elsewhere, 1 % only elsewhere; 1 in 200
    minors registered by mistake."""
    born_on = birth_date(n, ELECTION_DAY)
    minor = born_on > rules.adult_cutoff(ELECTION_DAY)
    if n % 20 == 7 or (minor and n % 200 != 1):
        return []
    id_number = person_id(n, born_on)
    person = blind_index(s.keyring, id_number, kind="id_number")
    enc_id = encrypt(s.keyring, id_number, context=VOTER_ID_CONTEXT)
    enc_name = encrypt(s.keyring, f"居民{n}", context=VOTER_NAME_CONTEXT)
    born = idnumber.birth_date(id_number)
    home = f"D{village(n)[6:]}"
    districts = [home]
    if n % 100 == 11:
        districts.append(f"D{village(n + 1)[6:]}")
    if n % 100 == 13:
        districts = [f"D{village(n + 2)[6:]}"]
    return [("E1", d, person, enc_id, enc_name, born) for d in districts]


async def load(s: Stack, n: int) -> None:
    dsn = s.postgres.url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    try:
        await conn.execute("INSERT INTO identity.regions (code, name, level) VALUES ('320205', '锡山区', 'county')")
        await conn.execute("INSERT INTO identity.elections (id, region_code, election_date) VALUES "
                           "('E1', '320205', $1)", ELECTION_DAY)
        await conn.executemany(
            "INSERT INTO identity.district_regions (election_id, district_id, region_prefix) VALUES ('E1', $1, $2)",
            [(f"D{village(v)[6:]}", village(v)) for v in range(VILLAGES)])
        registered = 0
        for start in range(0, n, CHUNK):
            people = range(start, min(n, start + CHUNK))
            records = [population_row(s, i, now) for i in people]
            records += [row for i in people for row in extra_rows(s, i, now)]
            await conn.copy_records_to_table("registry_records", schema_name="identity", records=records,
                                             columns=list(registry.ROW_COLUMNS))
            voters = [row for i in people for row in voter_rows(s, i)]
            registered += len(voters)
            await conn.copy_records_to_table(
                "voters", schema_name="identity", records=voters,
                columns=["election_id", "district_id", "person_index", "id_number_encrypted", "name_encrypted",
                         "birth_date"])
            print(f"  … wrote {people.stop}/{n} persons, {registered} registrations", flush=True)
        await conn.execute("ANALYZE identity.registry_records")
        print("  merging the registries per person, as every registry write does …", flush=True)
        async with conn.transaction():
            await conn.execute(registry_store.CREATE_AFFECTED)
            await conn.execute(f"INSERT INTO {registry_store.AFFECTED} "
                               "SELECT DISTINCT person_index FROM identity.registry_records")
            await conn.execute(registry_store.MERGE)
        await conn.execute("VACUUM ANALYZE identity.registry_records")
        await conn.execute("VACUUM ANALYZE identity.registry_persons")
        await conn.execute("VACUUM ANALYZE identity.voters")
    finally:
        await conn.close()


async def baseline(s: Stack) -> float:
    conn = await asyncpg.connect(s.postgres.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        t0 = time.perf_counter()
        missing = await conn.fetchval("""
            SELECT count(*) FROM identity.registry_records r WHERE r.source = 'population'
            AND NOT EXISTS (SELECT 1 FROM identity.voters v WHERE v.election_id = 'E1'
                            AND v.person_index = r.person_index)""")
        duplicates = await conn.fetchval("""
            SELECT count(*) FROM (SELECT person_index FROM identity.voters WHERE election_id = 'E1'
                                  GROUP BY person_index HAVING count(*) > 1) d""")
        elapsed = time.perf_counter() - t0
        print(f"  baseline found {missing} unregistered and {duplicates} registered twice")
        return elapsed
    finally:
        await conn.close()


async def reconcile(s: Stack, token: str) -> tuple[float, int, dict[str, int]]:
    headers = {"Authorization": f"Bearer {token}"}
    with identity(s, log_level="INFO") as svc:
        peak = svc.rss
        async with httpx.AsyncClient(base_url=svc.url, headers=headers, timeout=30) as client:
            t0 = time.perf_counter()
            started = await client.post("/v1/elections/E1/reconciliation")
            started.raise_for_status()
            last = ""
            while True:
                state = (await client.get("/v1/elections/E1/reconciliation")).json()
                peak = max(peak, svc.rss)
                if state["status"] == "done":
                    break
                if state["status"] == "failed":
                    raise SystemExit(f"reconciliation failed: {state}")
                line = f"  … {state['progress']:.0%} {state['step'] or ''}"
                if line != last:
                    print(line, flush=True)
                    last = line
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            first = (await client.get("/v1/elections/E1/reconciliation?kind=duplicate")).json()["items"][:1]
            print(f"  a finding as staff see it: {first}")
    # Where the time went, as the service logged each step.
    for log in sorted(s.root.glob("identity-*.log")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if "reconciliation" in line and (" took " in line or " done" in line):
                print(f"  service: {line.split('reconciliation', 1)[1].strip()[:160]}")
    return elapsed, peak, state["counts"]


async def main(n: int) -> None:
    with stack() as s:
        token = s.token("npc_staff", "320205")
        print("creating the identity schema …", flush=True)
        with identity(s):
            pass
        print(f"writing {n} registry persons and their registrations …", flush=True)
        await load(s, n)
        print("baseline: bare anti-join + duplicate GROUP BY …", flush=True)
        base = await baseline(s)
        print("reconciliation through the identity service …", flush=True)
        ours, peak, counts = await reconcile(s, token)
    print(f"counts: {counts}")
    print(f"bare SQL         {base:8.2f} s")
    print(f"reconciliation   {ours:8.2f} s")
    print(f"ratio reconciliation/bare = {ours / base:.2f} (target ≤ 3.00)")
    print(f"identity peak RSS {peak / 2**20:.0f} MiB (target < 1024 MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().persons))
