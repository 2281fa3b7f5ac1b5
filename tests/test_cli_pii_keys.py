"""`minyi pii-keys` end to end: a keyring made by the command, data written under it by the identity
service, a rotation, the rewrite of every stored blob while the service runs, reads and blind-index
lookups across it, and the retirement of the old key, which the database must allow first.

The identity service runs on a database and a NATS server of the test's own, so the blobs counted
are exactly those this test wrote.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from busutil import eventually, fresh_database, unique_name
from conftest import Servers
from identityutil import bearer, id_number, identity_service
from sqlalchemy import LargeBinary, text
from sqlalchemy.ext.asyncio import create_async_engine

from minyi import pii_keys as pk
from minyi.servers import Nats, free_port
from shared.db import Database
from shared.pii import Keyring, key_id_of
from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN = bearer("admin")
STAFF = bearer("npc_staff", "320205")
INTEGRATION = bearer("integration")
D1 = "320205001001"
ADULT = date(1980, 5, 1)


@dataclass
class Env:
    servers: Servers
    env: dict[str, str]
    keys: Path
    home: Path

    @property
    def settings(self) -> Settings:
        return Settings(database_url=self.servers.database_url, nats_url=self.servers.nats_url)


@pytest.fixture
async def env(servers: Servers, own_nats: Nats, tmp_path: Path) -> AsyncIterator[Env]:
    name = unique_name("minyi_pii_keys_")
    await fresh_database(servers.database_url, name)
    mine = replace(servers, postgres=replace(servers.postgres, database=name), nats=own_nats)
    env = {**os.environ, "MINYI_DATABASE_URL": mine.database_url, "MINYI_NATS_URL": mine.nats_url,
           "MINYI_HOME": str(tmp_path / "home")}
    env.pop("MINYI_PII_KEYS_FILE", None)
    yield Env(mine, env, tmp_path / "secrets" / "pii-keys.json", tmp_path / "identity")


async def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it; in a thread, so a service in this loop keeps running."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "minyi.cli", "pii-keys", *args], env=env.env, cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False)



def identity(env: Env) -> Any:
    """The identity service with the keyring file as it is now: starting it again is a roll-out."""
    return identity_service(env.servers, env.home, pii_keys_file=env.keys)


def person(name: str, seq: int, **over: Any) -> dict[str, Any]:
    return {"record_id": f"pop-{seq}", "id_number": id_number(D1, ADULT, seq), "name": name,
            "hukou_region_code": D1, "residence_region_code": D1, "status": "active", "political_rights": True,
            "updated_at": "2026-09-01T00:00:00+08:00", **over}


PEOPLE = {"fine": person("正常", 1), "dead": person("已故", 2, status="deceased"), "missing": person("漏登", 3)}


async def register(client: httpx.AsyncClient, *names: str) -> dict[str, Any]:
    voters = [{"id_number": p["id_number"], "name": p["name"], "district_id": "D1"}
              for p in PEOPLE.values() if p["name"] in names]
    resp = await client.post("/v1/elections/E1/voters", json=voters, headers=STAFF)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def write_first_data(client: httpx.AsyncClient) -> None:
    for code, name, parent in (("320000", "江苏省", None), ("320200", "无锡市", "320000"),
                               ("320205", "锡山区", "320200")):
        resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
    resp = await client.put("/v1/deputies/D-1", headers=ADMIN, json={
        "name": "代表甲", "level": "county", "region_code": "320205", "station_ids": [], "phone": "13800138000"})
    assert resp.status_code == 201, resp.text
    resp = await client.post("/v1/registry/population/records", json=list(PEOPLE.values()), headers=INTEGRATION)
    assert resp.status_code == 200 and resp.json()["rejected"] == [], resp.text
    resp = await client.put("/v1/elections/E1", headers=STAFF, json={
        "region_code": "320205", "election_date": "2026-12-15", "districts": [{"id": "D1", "region_codes": [D1]}]})
    assert resp.status_code == 201, resp.text
    assert (await register(client, "正常"))["accepted"] == 1


async def reconcile(client: httpx.AsyncClient) -> dict[str, tuple[str, str]]:
    """Findings by name: (kind, masked ID number); names and numbers are decrypted to be shown."""
    started = await client.post("/v1/elections/E1/reconciliation", headers=STAFF)
    assert started.status_code == 202, started.text

    async def done() -> bool:
        state = (await client.get("/v1/elections/E1/reconciliation", headers=STAFF)).json()
        assert state["status"] != "failed", state
        return bool(state["status"] == "done" and state["job_id"] == started.json()["job_id"])

    await eventually(done, timeout=60, what="the reconciliation of E1")
    return await findings(client)


async def findings(client: httpx.AsyncClient) -> dict[str, tuple[str, str]]:
    resp = await client.get("/v1/elections/E1/reconciliation", headers=STAFF)
    assert resp.status_code == 200, resp.text
    return {i["name"]: (i["kind"], i["id_number_masked"]) for i in resp.json()["items"]}


def masked(key: str) -> str:
    number = PEOPLE[key]["id_number"]
    return f"{number[:4]}{'*' * 10}{number[-4:]}"


async def stored_blobs(env: Env) -> dict[str, list[bytes]]:
    """Every encrypted value in the database, by table and column."""
    out: dict[str, list[bytes]] = {}
    engine = create_async_engine(env.servers.database_url)
    try:
        async with engine.connect() as conn:
            for table in pk.CATALOG:
                if not await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table.qualified}):
                    continue
                for column in table.columns:
                    rows = await conn.execute(text(
                        f"SELECT {column.name} FROM {table.qualified} WHERE {column.name} IS NOT NULL"))
                    out[f"{table.qualified}.{column.name}"] = [bytes(r[0]) for r in rows]
    finally:
        await engine.dispose()
    return out


def key_ids(blobs: dict[str, list[bytes]]) -> dict[str, Counter[str]]:
    return {name: Counter(key_id_of(b) for b in values) for name, values in blobs.items() if values}


async def test_a_rotation_rewrites_every_blob_keeps_reads_and_blind_indexes_and_only_then_retires_the_old_key(
    env: Env,
) -> None:
    env.keys.parent.mkdir(mode=0o700)
    created = await cli(env, "create", "--out", str(env.keys))
    assert created.returncode == 0, created.stderr
    assert f"wrote a new keyring to {env.keys} (mode 0600)" in created.stdout
    assert "kubectl -n minyi patch secret minyi-secrets" in created.stdout
    assert stat.S_IMODE(env.keys.stat().st_mode) == 0o600
    first = env.keys.read_bytes()
    assert Keyring.from_file(env.keys).key_ids == ("k1",)
    twice = await cli(env, "create", "--out", str(env.keys))
    assert twice.returncode == 1 and "refusing to overwrite" in twice.stderr
    assert env.keys.read_bytes() == first
    # Where the command runs beside the services (`kubectl exec`), it finds their keyring as they do.
    env.env["MINYI_PII_KEYS_FILE"] = str(env.keys)

    async with identity(env) as (client, _):
        await write_first_data(client)
    under_k1 = await stored_blobs(env)
    assert key_ids(under_k1) == {
        "identity.deputies.phone_encrypted": Counter(k1=1),
        "identity.registry_records.id_number_encrypted": Counter(k1=3),
        "identity.registry_records.name_encrypted": Counter(k1=3),
        "identity.voters.id_number_encrypted": Counter(k1=1),
        "identity.voters.name_encrypted": Counter(k1=1),
    }

    rotated = await cli(env, "rotate", str(env.keys))
    assert rotated.returncode == 0, rotated.stderr
    assert f"added key k2 to {env.keys} as the current key (current key k2; also k1 for reading)" in rotated.stdout
    early = await cli(env, "retire", str(env.keys), "k1")
    assert early.returncode == 1
    assert "refusing to retire k1: 9 stored blobs are still under it:" in early.stdout
    assert Keyring.from_file(env.keys).key_ids == ("k1", "k2")

    async with identity(env) as (client, _):  # rolled: new blobs are written under k2
        assert (await register(client, "已故"))["accepted"] == 1
        assert key_ids(await stored_blobs(env))["identity.voters.name_encrypted"] == Counter(k1=1, k2=1)

        # Another keyring that also names k1 and k2 (another installation's, the embedded stack's):
        # refused before anything is written.
        other = env.keys.with_name("other.json")
        other.write_text(Keyring.generate().with_new_current_key().to_json())
        mixed = await stored_blobs(env)
        wrong = await cli(env, "reencrypt", "--keys", str(other))
        assert wrong.returncode == 1
        assert "does not decrypt with this keyring" in wrong.stderr
        assert await stored_blobs(env) == mixed

        keyring = Keyring.from_file(env.keys)
        db = Database.connect(env.servers.database_url, application_name="test-pii-keys", pool_size=2)
        try:
            # A run that stopped after one table: the next one carries on with what is left.
            voters = next(t for t in pk.CATALOG if t.qualified == "identity.voters")
            partial = await pk.rewrite_stale(db, keyring, [voters], batch=1, say=lambda line: None)
            assert (partial.rows, partial.blobs) == (1, 2)
            # The service changes a row between the rewrite's read and its write: its value stays.
            deputies = next(t for t in pk.CATALOG if t.qualified == "identity.deputies")
            read = await pk.stale_rows(db, deputies, "k2", None, 10)
            assert [r.id for r in read] == ["D-1"]
            changed = await client.put("/v1/deputies/D-1", headers=ADMIN, json={
                "name": "代表甲", "level": "county", "region_code": "320205", "station_ids": [],
                "phone": "13900139000"})
            assert changed.status_code == 200, changed.text
            assert await pk.rewrite_rows(db, keyring, deputies, read) == (0, 0)
        finally:
            await db.dispose()
        assert (await client.get("/v1/deputies/D-1", headers=ADMIN)).json()["phone_masked"] == "139****9000"

        run = await cli(env, "reencrypt", "identity", "--batch", "2")
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert lines[0] == f"keyring {env.keys}: current key k2; also k1 for reading"
        assert lines[1] == "stored blobs by key id, before:"
        assert "  identity.registry_records.id_number_encrypted  k1: 3" in lines
        assert "  identity.voters.name_encrypted                 k2: 2" in lines
        assert "  identity.deputies.phone_encrypted              k2: 1" in lines
        assert "rewriting 6 blobs under k2, 2 rows per transaction …" in lines
        assert "  identity.registry_records: 3 rows rewritten" in lines
        assert "  identity.deputies: nothing to rewrite" in lines
        assert "  identity.voters: nothing to rewrite" in lines
        assert "rewrote 6 blobs in 3 rows" in run.stdout
        after = lines.index("stored blobs by key id, after:")
        assert all(line.endswith(("k2: 1", "k2: 2", "k2: 3")) for line in lines[after + 1:after + 6]), lines
        assert lines[-1] == "every stored blob is under k2."

        now = await stored_blobs(env)
        assert all(set(counts) == {"k2"} for counts in key_ids(now).values()), key_ids(now)
        assert not {b for v in now.values() for b in v} & {b for v in under_k1.values() for b in v}

        # Reads decrypt the rewritten blobs; blind indexes made under k1 still match people under k2.
        deputy = (await client.get("/v1/deputies/D-1", headers=ADMIN)).json()
        assert deputy["phone_masked"] == "139****9000"
        again = await register(client, "正常")
        assert again["rejected"] == [{"index": 0, "error": "该选民已在本选区登记"}]
        assert await reconcile(client) == {"已故": ("deceased", masked("dead")), "漏登": ("missing", masked("missing"))}

    retired = await cli(env, "retire", str(env.keys), "k1")
    assert retired.returncode == 0, retired.stdout + retired.stderr
    assert f"retired k1: no stored blob uses it; {env.keys} now has current key k2." in retired.stdout
    assert Keyring.from_file(env.keys).key_ids == ("k2",)
    assert stat.S_IMODE(env.keys.stat().st_mode) == 0o600

    async with identity(env) as (client, _):  # rolled without k1: everything still reads
        assert (await client.get("/v1/deputies/D-1", headers=ADMIN)).json()["phone_masked"] == "139****9000"
        assert await findings(client) == {"已故": ("deceased", masked("dead")), "漏登": ("missing", masked("missing"))}

    nothing = await cli(env, "reencrypt")
    assert nothing.returncode == 0, nothing.stderr
    assert "rewrote 0 blobs in 0 rows" in nothing.stdout and "every stored blob is under k2." in nothing.stdout


def test_a_staged_key_is_known_first_and_current_only_when_activated(tmp_path: Path) -> None:
    keys = tmp_path / "pii-keys.json"
    original = pk.create(keys)
    staged, added = pk.rotate(keys, stage=True)
    assert (added, staged.current_key_id, staged.key_ids) == ("k2", "k1", ("k1", "k2"))
    assert Keyring.from_file(keys).current_key_id == "k1"
    live = pk.activate(keys, "k2")
    assert (live.current_key_id, Keyring.from_file(keys).current_key_id) == ("k2", "k2")
    # The blind-index key never changes: a lookup made before the rotation still matches.
    from shared.pii import blind_index

    assert blind_index(original, "13800138000", kind="phone") == blind_index(live, "13800138000", kind="phone")
    with pytest.raises(pk.Refused, match="has no key 'k7'"):
        pk.activate(keys, "k7")
    with pytest.raises(pk.Refused, match="already in the keyring"):
        pk.rotate(keys, key_id="k1")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file is left behind"


async def test_mistakes_are_clear_errors(env: Env) -> None:
    env.keys.parent.mkdir(parents=True)
    pk.create(env.keys)
    keys = str(env.keys)
    current = await cli(env, "retire", keys, "k1")
    assert current.returncode == 1
    assert "k1 is the current key" in current.stderr
    unknown = await cli(env, "reencrypt", "billing")
    assert unknown.returncode == 2 and "unknown service billing" in unknown.stderr
    no_keyring = await cli(env, "reencrypt")
    assert no_keyring.returncode == 1 and "no keyring: set MINYI_PII_KEYS_FILE" in no_keyring.stderr
    port = free_port()
    down = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "minyi.cli", "pii-keys", "reencrypt", "--keys", keys], cwd=ROOT,
        env={**env.env, "MINYI_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/minyi"},
        capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 1
    assert f"error: cannot reach PostgreSQL at postgresql+asyncpg://postgres@127.0.0.1:{port}/minyi" in down.stderr
    missing = await cli(env, "rotate", str(env.keys.parent / "nope.json"))
    assert missing.returncode == 1 and "nope.json: no such file" in missing.stderr


# Binary columns that hold no `encrypt` blob, with the reason.
NOT_ENCRYPTED = {"routing.tickets.body": "the signed request body sent to a grid platform",
                 "routing.hotspots.meaning_sum": "the sum of a hotspot's meaning vectors (float32), no text"}


def test_the_catalog_names_every_encrypted_column_with_the_context_its_service_uses() -> None:
    from services.identity.elections_api import VOTER_ID_CONTEXT, VOTER_NAME_CONTEXT
    from services.identity.registry import ID_CONTEXT, NAME_CONTEXT
    from services.intake.api import PII_CONTEXT
    from services.intake.supports_api import PII_CONTEXT as SUPPORT_CONTEXT
    from services.routing.platforms import API_KEY_CONTEXT, SECRET_CONTEXT

    catalog = {f"{t.qualified}.{c.name}": c.context for t in pk.CATALOG for c in t.columns}
    binary: set[str] = set()
    for service in SERVICES:
        metadata = importlib.import_module(f"services.{service}.models").Base.metadata
        for table in metadata.tables.values():
            for column in table.columns:
                if isinstance(column.type, LargeBinary):
                    binary.add(f"{table.fullname}.{column.name}")
    # Keyed digests, not ciphertext: a phone's blind index, and a supporter's digest derived from it.
    blind_indexes = {name for name in binary if name.endswith(("_index", ".person_index", ".person_digest"))}
    assert binary - blind_indexes - set(NOT_ENCRYPTED) == set(catalog)
    assert catalog == {
        "intake.reports.reporter_name": PII_CONTEXT["name"],
        "intake.reports.reporter_phone": PII_CONTEXT["phone"],
        "intake.reports.reporter_id_number": PII_CONTEXT["id_number"],
        "intake.report_supports.supporter_name": SUPPORT_CONTEXT["name"],
        "intake.report_supports.supporter_phone": SUPPORT_CONTEXT["phone"],
        "routing.grid_platforms.secret": SECRET_CONTEXT,
        "routing.grid_platforms.api_key": API_KEY_CONTEXT,
        "identity.deputies.phone_encrypted": "identity.deputy.phone",
        "identity.registry_records.id_number_encrypted": ID_CONTEXT,
        "identity.registry_records.name_encrypted": NAME_CONTEXT,
        "identity.voters.id_number_encrypted": VOTER_ID_CONTEXT,
        "identity.voters.name_encrypted": VOTER_NAME_CONTEXT,
    }
    for table in pk.CATALOG:
        model = importlib.import_module(f"services.{table.schema}.models").Base.metadata.tables[table.qualified]
        assert tuple(c.name for c in model.primary_key.columns) == tuple(name for name, _ in table.key)
