"""Initial registry loads (`POST /v1/registry/{source}/loads`) on real PostgreSQL: the same records
stored as the records endpoint stores them, NDJSON and CSV, bad lines refused alone with their line
numbers, and a load broken off and re-sent ending as if it had never been interrupted.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import date
from typing import Any

import httpx
import pytest
from conftest import Servers
from identityutil import bearer, identity_service, registry_record, with_wrong_check
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.identity import registry_loads_api
from services.identity.registry import ID_CONTEXT, NAME_CONTEXT
from services.identity.service import SPEC
from shared.body_limit import BodyLimit
from shared.pii import decrypt
from shared.service import Runtime

REGION = "320412"  # regions of this module: 3204xx, used by no other test module
INTEGRATION = bearer("integration")
NDJSON = {**INTEGRATION, "content-type": "application/x-ndjson"}
CSV = {**INTEGRATION, "content-type": "text/csv"}
FIELDS = ("record_id", "id_number", "name", "hukou_region_code", "residence_region_code", "status",
          "political_rights", "residence_certificate", "updated_at")


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with identity_service(servers, tmp_path_factory.mktemp("loads-home")) as pair:
        yield pair


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A few dozen lines then span several chunks, each its own transaction.
    monkeypatch.setattr(registry_loads_api, "CHUNK_LINES", 7)


def people(prefix: str, region: str) -> list[dict[str, Any]]:
    """Records of a county with what a real export holds: two records of one person, two versions
    of one record (the later one first), a deceased person, a migrant's certificate."""
    # Record ids are unique per source across every test module: these carry the module's prefix.
    out = [registry_record(region, f"LOAD-{prefix}-{i}", i, born=date(1970 + i % 30, 1 + i % 12, 1 + i % 28),
                           called="装载") for i in range(30)]
    out.append(registry_record(region, f"LOAD-{prefix}-twin", 3, born=date(1973, 4, 4), called="装载"))
    out[5]["status"] = "deceased"
    out[6]["residence_certificate"] = True
    out[7]["residence_certificate"] = False
    out.append({**out[8], "hukou_region_code": f"{region}009", "updated_at": "2026-09-01T08:00:00+08:00"})
    out[8]["updated_at"] = "2026-10-02T08:00:00+08:00"
    return out


def ndjson(records: Iterable[Any]) -> list[bytes]:
    return [(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)).encode() + b"\n" for r in records]


def with_bad_lines(records: list[dict[str, Any]]) -> list[Any]:
    """The records with a broken line, a wrong ID number and a bad boolean among them."""
    out: list[Any] = list(records)
    out.insert(4, '{"record_id": "broken", ')
    out[10] = {**out[10], "id_number": with_wrong_check(out[10]["id_number"])}
    out[15] = {**out[15], "political_rights": "maybe"}
    return out


def as_csv(records: list[Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FIELDS)
    for r in records:
        if isinstance(r, str):
            buf.write('"unclosed,quote\n')
            continue
        writer.writerow(["" if r.get(f) is None else str(r[f]).lower() if isinstance(r.get(f), bool) else r[f]
                         for f in FIELDS])
    return buf.getvalue().encode()


Snapshot = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


async def snapshot(servers: Servers, runtime: Runtime, region: str) -> Snapshot:
    """The stored records of a region (ID number and name decrypted) and the persons they make."""
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            records = (await conn.execute(text(
                "SELECT * FROM identity.registry_records WHERE hukou_region_code LIKE :r ORDER BY source, record_id"),
                {"r": f"{region}%"})).mappings().all()
            persons = (await conn.execute(text(
                "SELECT * FROM identity.registry_persons WHERE person_index = ANY(:p) ORDER BY person_index"),
                {"p": [r["person_index"] for r in records]})).all()
    finally:
        await engine.dispose()
    stored = [(r["source"], r["record_id"], r["person_index"], decrypt(runtime.keyring, r["id_number_encrypted"],
                                                                       context=ID_CONTEXT),
               decrypt(runtime.keyring, r["name_encrypted"], context=NAME_CONTEXT), r["birth_date"],
               r["hukou_region_code"], r["residence_region_code"], r["status"], r["political_rights"],
               r["residence_certificate"], r["updated_at"]) for r in records]
    return stored, [tuple(p) for p in persons]


async def forget(servers: Servers, region: str) -> None:
    """Remove a region's records and persons, so the same file can be stored again from nothing."""
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "DELETE FROM identity.registry_persons WHERE person_index IN (SELECT person_index FROM "
                "identity.registry_records WHERE hukou_region_code LIKE :r)"), {"r": f"{region}%"})
            await conn.execute(text("DELETE FROM identity.registry_records WHERE hukou_region_code LIKE :r"),
                               {"r": f"{region}%"})
    finally:
        await engine.dispose()


async def test_a_load_stores_what_the_records_endpoint_stores(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, runtime = identity
    region = f"{REGION[:4]}01"
    lines = ndjson(with_bad_lines(people("E", region)))
    by_records = await client.post("/v1/registry/population/records", content=b"".join(lines), headers=NDJSON)
    assert by_records.status_code == 200, by_records.text
    expected = await snapshot(servers, runtime, region)
    # 33 lines: 3 bad, E-8 twice, and E-3 and E-twin are one person.
    assert len(expected[0]) == 29 and len(expected[1]) == 28
    await forget(servers, region)

    resp = await client.post("/v1/registry/population/loads", params={"load_id": "same-as-records"},
                             content=b"".join(lines), headers=NDJSON)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert await snapshot(servers, runtime, region) == expected
    assert (out["state"], out["lines_committed"], out["lines_read"], out["lines_skipped"]) == ("complete", 33, 33, 0)
    assert (out["accepted"] + out["unchanged"], out["rejected"]) == (30, 3)
    # The same refusals, numbered by line (from 1) instead of position (from 0).
    assert [(r["line"], r["error"]) for r in out["rejections"]] == [
        (r["index"] + 1, r["error"]) for r in by_records.json()["rejected"]]
    assert [r["line"] for r in out["rejections"]] == [5, 11, 16]


async def test_csv_stores_what_ndjson_stores(identity: tuple[httpx.AsyncClient, Runtime], servers: Servers) -> None:
    client, runtime = identity
    region = f"{REGION[:4]}02"
    records = with_bad_lines(people("C", region))
    resp = await client.post("/v1/registry/population/loads", content=b"".join(ndjson(records)), headers=NDJSON)
    assert resp.status_code == 200, resp.text
    expected = await snapshot(servers, runtime, region)
    assert len(expected[0]) == 29
    await forget(servers, region)

    body = as_csv(records)
    resp = await client.post("/v1/registry/population/loads", content=body, headers=CSV)
    assert resp.status_code == 200, resp.text
    assert await snapshot(servers, runtime, region) == expected
    out = resp.json()
    # Line 1 is the header: every data line is one further down than in the NDJSON file.
    assert [r["line"] for r in out["rejections"]] == [6, 12, 17]
    assert out["rejections"][0]["error"] == "不是有效的 CSV 行（引号不成对）"
    assert out["rejections"][2]["error"] == "political_rights: 应为 true 或 false"
    assert out["lines_committed"] == body.count(b"\n")

    # A client that only sends files as bytes (a generated one) sends NDJSON as application/octet-stream.
    await forget(servers, region)
    resp = await client.post("/v1/registry/population/loads", content=b"".join(ndjson(records)),
                             headers={**INTEGRATION, "content-type": "application/octet-stream"})
    assert resp.status_code == 200, resp.text
    assert await snapshot(servers, runtime, region) == expected
    assert [r["line"] for r in resp.json()["rejections"]] == [5, 11, 16]


async def test_a_csv_row_of_the_wrong_width_is_rejected_alone(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    region = f"{REGION[:4]}03"
    good = as_csv(people("W", region)[:3]).decode().splitlines()
    body = "\n".join([good[0], good[1], good[2] + ",extra", good[3]]) + "\n"
    resp = await client.post("/v1/registry/population/loads", content=body.encode(), headers=CSV)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["accepted"], out["rejected"]) == (2, 1)
    assert out["rejections"] == [{"line": 3, "error": f"CSV 行有{len(FIELDS) + 1}个字段，表头有{len(FIELDS)}个"}]


async def test_a_csv_header_without_a_required_field_is_refused(
    identity: tuple[httpx.AsyncClient, Runtime]
) -> None:
    client, _ = identity
    resp = await client.post("/v1/registry/population/loads", content=b"record_id,name\nx,y\n", headers=CSV)
    assert resp.status_code == 422, resp.text
    assert "id_number" in resp.json()["detail"]


async def test_an_interrupted_load_resumes_after_its_committed_lines(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, runtime = identity
    region = f"{REGION[:4]}04"
    lines = ndjson(with_bad_lines(people("I", region)))
    resp = await client.post("/v1/registry/population/loads", content=b"".join(lines), headers=NDJSON)
    assert resp.status_code == 200, resp.text
    uninterrupted = await snapshot(servers, runtime, region)
    await forget(servers, region)

    class ConnectionLost(Exception):
        pass

    async def breaks_off_after(n: int) -> AsyncIterator[bytes]:
        for line in lines[:n]:
            yield line
        yield lines[n][:9]  # half a line, then the connection is gone
        raise ConnectionLost

    with pytest.raises(ConnectionLost):
        await client.post("/v1/registry/population/loads", params={"load_id": "county-04"},
                          content=breaks_off_after(24), headers=NDJSON)
    progress = await client.get("/v1/registry/population/loads/county-04", headers=INTEGRATION)
    assert progress.status_code == 200, progress.text
    broken = progress.json()
    # Chunks of 7 lines: three whole chunks are committed, the fourth (lines 22–24 and half of 25) is not.
    assert (broken["state"], broken["lines_committed"]) == ("interrupted", 21)
    assert [r["line"] for r in broken["rejections"]] == [5, 11, 16]
    stored_then = await snapshot(servers, runtime, region)
    assert len(stored_then[0]) == 21 - 3

    resp = await client.post("/v1/registry/population/loads", params={"load_id": "county-04"},
                             content=b"".join(lines), headers=NDJSON)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["state"], out["lines_skipped"], out["lines_read"], out["lines_committed"]) == (
        "complete", 21, 12, 33)
    assert (out["rejected"], [r["line"] for r in out["rejections"]]) == (3, [5, 11, 16])
    assert out["accepted"] + out["unchanged"] == 30
    assert await snapshot(servers, runtime, region) == uninterrupted

    # Sent once more, the whole file is skipped and nothing changes.
    again = await client.post("/v1/registry/population/loads", params={"load_id": "county-04"},
                              content=b"".join(lines), headers=NDJSON)
    assert (again.json()["lines_skipped"], again.json()["lines_read"], again.json()["accepted"]) == (33, 0,
                                                                                                     out["accepted"])
    assert await snapshot(servers, runtime, region) == uninterrupted


async def test_progress_of_a_load(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    region = f"{REGION[:4]}05"
    lines = ndjson(people("G", region)[:10])
    resp = await client.post("/v1/registry/migrant/loads", params={"load_id": "g-1"}, content=b"".join(lines),
                             headers=NDJSON)
    assert resp.status_code == 200, resp.text
    progress = await client.get("/v1/registry/migrant/loads/g-1", headers=INTEGRATION)
    assert progress.status_code == 200
    body = progress.json()
    assert {k: body[k] for k in ("load_id", "source", "state", "lines_committed", "accepted", "unchanged",
                                 "rejected", "rejections")} == {
        "load_id": "g-1", "source": "migrant", "state": "complete", "lines_committed": 10, "accepted": 10,
        "unchanged": 0, "rejected": 0, "rejections": []}
    # A load belongs to its source.
    assert (await client.get("/v1/registry/population/loads/g-1", headers=INTEGRATION)).status_code == 404
    generated = await client.post("/v1/registry/migrant/loads", content=b"\n", headers=NDJSON)
    assert generated.status_code == 200 and len(generated.json()["load_id"]) == 32


async def test_only_integrations_of_the_source_load(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    lines = b"".join(ndjson(people("A", f"{REGION[:4]}06")[:2]))
    staff = await client.post("/v1/registry/population/loads", content=lines,
                              headers={**bearer("station_staff"), "content-type": "application/x-ndjson"})
    assert staff.status_code == 403
    migrant_only = {**bearer("integration", sources=["migrant"]), "content-type": "application/x-ndjson"}
    other = await client.post("/v1/registry/population/loads", params={"load_id": "a-1"}, content=lines,
                              headers=migrant_only)
    assert other.status_code == 403
    assert "population" in other.json()["detail"]
    assert (await client.get("/v1/registry/population/loads/a-1", headers=migrant_only)).status_code == 403
    # Nothing was started under the refused call.
    assert (await client.get("/v1/registry/population/loads/a-1", headers=INTEGRATION)).status_code == 404


async def test_a_load_is_ndjson_or_csv(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    resp = await client.post("/v1/registry/population/loads", json=[], headers=INTEGRATION)
    assert resp.status_code == 415
    assert resp.headers["content-type"] == "application/problem+json"


async def test_loads_may_be_larger_than_record_batches(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    limits = BodyLimit(app=None, limits=SPEC.body_limits, default=1)  # type: ignore[arg-type]
    for source in ("population", "social_security", "migrant"):
        assert limits.limit_for(f"/v1/registry/{source}/loads") == registry_loads_api.BODY_LIMIT
        assert limits.limit_for(f"/v1/registry/{source}/records") == 64 * 1024 * 1024
    assert registry_loads_api.BODY_LIMIT >= 16 * 1024**3
    client, _ = identity
    resp = await client.post("/v1/registry/population/loads", content=b"\n",
                             headers={**NDJSON, "content-length": str(registry_loads_api.BODY_LIMIT + 1)})
    assert resp.status_code == 413


async def overtake_after_first_chunk(servers: Servers) -> None:
    engine = create_async_engine(servers.database_url)
    try:
        for _ in range(200):
            async with engine.begin() as conn:
                moved = await conn.execute(text(
                    "UPDATE identity.registry_loads SET lines_committed = lines_committed + 7 "
                    "WHERE source = 'population' AND load_id = 'm-1' AND lines_committed = 7"))
            if moved.rowcount == 1:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the first chunk of the load was never committed")
    finally:
        await engine.dispose()


async def test_a_load_moved_on_by_another_request_stops_with_409(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    lines = ndjson(people("M", f"{REGION[:4]}07"))

    async def overtaken() -> AsyncIterator[bytes]:
        for number, line in enumerate(lines, 1):
            if number == 10:
                # Meanwhile another request, sent with the same load_id, commits lines of its own.
                await overtake_after_first_chunk(servers)
            yield line

    resp = await client.post("/v1/registry/population/loads", params={"load_id": "m-1"}, content=overtaken(),
                             headers=NDJSON)
    assert resp.status_code == 409, resp.text
    progress = (await client.get("/v1/registry/population/loads/m-1", headers=INTEGRATION)).json()
    # Only what the other request committed; this one stopped at its first chunk past the move.
    assert progress["lines_committed"] == 14
    assert progress["accepted"] == 7
