"""Identity directory over HTTP on real PostgreSQL and NATS: regions, stations, deputies, events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from busutil import eventually, stream_messages
from conftest import Servers
from identityutil import bearer, identity_service
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ADMIN = bearer("admin")


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_service(servers, tmp_path_factory.mktemp("identity-home")) as (client, _):
        for code, name, parent in (("320000", "江苏省", None), ("320900", "盐城市", "320000"),
                                   ("320923", "阜宁县", "320900")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        yield client


async def test_regions_nest_by_code(identity: httpx.AsyncClient) -> None:
    town = await identity.put("/v1/regions/320923101", json={"name": "阜城街道", "parent_code": "320923"},
                              headers=ADMIN)
    assert town.status_code in (200, 201)
    assert town.json() == {"code": "320923101", "name": "阜城街道", "level": "township", "parent_code": "320923"}
    again = await identity.put("/v1/regions/320923101", json={"name": "阜城街道", "parent_code": "320923"},
                               headers=ADMIN)
    assert again.status_code == 200
    grid = await identity.put("/v1/regions/320923101-G03", json={"name": "第三网格", "parent_code": "320923101"},
                              headers=ADMIN)
    assert grid.status_code in (200, 201) and grid.json()["level"] == "grid"


@pytest.mark.parametrize(
    ("code", "body", "field", "message"),
    [
        ("3209231", {"name": "x", "parent_code": "320923"}, "code", "地区代码应为6位、9位或12位数字"),
        ("320924", {"name": "射阳县"}, "code", "除省级外，地区必须指定上级地区"),
        ("330100101", {"name": "x", "parent_code": "320923"}, "parent_code", "地区代码与上级地区代码不一致"),
        ("320923999", {"name": "x", "parent_code": "320923999"}, "parent_code", "上级地区不能是自己"),
        ("321023", {"name": "x", "parent_code": "321000"}, "parent_code", "地区不存在，请先登记该地区"),
    ],
)
async def test_bad_regions_are_refused_with_the_field_at_fault(
    identity: httpx.AsyncClient, code: str, body: dict[str, str], field: str, message: str
) -> None:
    resp = await identity.put(f"/v1/regions/{code}", json=body, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    (error,) = resp.json()["errors"]
    assert error["field"] == field and error["message"].startswith(message)


async def test_an_admin_cannot_write_outside_their_region(identity: httpx.AsyncClient) -> None:
    resp = await identity.put("/v1/stations/S-OUT", json={"name": "外县联络站", "kind": "station",
                                                          "region_code": "320923"},
                              headers=bearer("admin", "320924"))
    assert resp.status_code == 403
    staff = await identity.put("/v1/stations/S-OUT", json={"name": "x", "kind": "station", "region_code": "320923"},
                               headers=bearer("npc_staff"))
    assert staff.status_code == 403


async def test_station_changes_publish_events_once(identity: httpx.AsyncClient, servers: Servers) -> None:
    body = {"name": "阜城街道人大代表联络站", "kind": "station", "region_code": "320923"}
    first = await identity.put("/v1/stations/S-FC", json=body, headers=ADMIN)
    assert first.status_code == 201 and first.json()["version"] == 1
    same = await identity.put("/v1/stations/S-FC", json=body, headers=ADMIN)
    assert same.status_code == 200 and same.json()["version"] == 1
    renamed = await identity.put("/v1/stations/S-FC", json={**body, "kind": "home"}, headers=ADMIN)
    assert renamed.json()["version"] == 2

    async def events() -> list[dict[str, object]]:
        msgs = await stream_messages(servers.nats_url, "IDENTITY")
        docs = [json.loads(d) for s, _, d in msgs if s == "identity.station.updated"]
        return [d["data"] for d in docs if d["data"]["id"] == "S-FC"]

    async def two() -> bool:
        return len(await events()) == 2

    await eventually(two, timeout=10, what="two station events")
    assert [e["kind"] for e in await events()] == ["station", "home"]


async def test_deputies_keep_their_phone_encrypted_and_masked(identity: httpx.AsyncClient, servers: Servers) -> None:
    await identity.put("/v1/stations/S-1", json={"name": "一号站", "kind": "station", "region_code": "320923"},
                       headers=ADMIN)
    body = {"name": "王建国", "level": "county", "region_code": "320923", "station_ids": ["S-1"],
            "district_id": "D-07", "groups": ["农业专业小组"], "phone": "13812345678"}
    resp = await identity.put("/v1/deputies/DEP-1", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["phone_masked"] == "138****5678" and "phone" not in out
    assert (await identity.get("/v1/deputies/DEP-1", headers=bearer("npc_staff", "320923"))).json() == out
    assert (await identity.get("/v1/deputies/DEP-1", headers=bearer("npc_staff", "320924"))).status_code == 404

    engine = create_async_engine(servers.database_url)
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM identity.deputies WHERE id = 'DEP-1'"))).mappings().one()
    await engine.dispose()
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert b"13812345678" not in stored and b"5678" not in row["phone_encrypted"]

    async def event() -> list[dict[str, object]]:
        msgs = await stream_messages(servers.nats_url, "IDENTITY")
        return [json.loads(d) for s, _, d in msgs if s == "identity.deputy.updated" and b"DEP-1" in d]

    async def has_event() -> bool:
        return bool(await event())

    await eventually(has_event, timeout=10, what="the deputy event")
    (ev,) = await event()
    assert "13812345678" not in json.dumps(ev) and ev["data"]["station_ids"] == ["S-1"]

    unknown = await identity.put("/v1/deputies/DEP-2", json={**body, "station_ids": ["S-NOPE"]}, headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "station_ids"
