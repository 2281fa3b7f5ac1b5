"""The elections of a region, for congress staff to pick one to reconcile: latest first, paged, each
with its latest reconciliation, never another county's. Two counties of Lianyungang (320721,
320722) on the real identity service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from busutil import eventually
from conftest import Servers
from identityutil import bearer, identity_service

COUNTY_A, COUNTY_B = "320721", "320722"  # used by no other test module
ADMIN = bearer("admin", sub="admin-all")
STAFF_A = bearer("npc_staff", COUNTY_A, sub="staff-a")
STAFF_B = bearer("npc_staff", COUNTY_B, sub="staff-b")
STAFF_CITY = bearer("npc_staff", "3207", sub="staff-city")


def election(region: str, day: str) -> dict[str, Any]:
    return {"region_code": region, "election_date": day, "districts": [{"id": "D1", "region_codes": [region]}]}


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_service(servers, tmp_path_factory.mktemp("election-list-home")) as (client, _):
        for code, name, parent in (("320000", "江苏省", None), ("320700", "连云港市", "320000"),
                                   (COUNTY_A, "测丙区", "320700"), (COUNTY_B, "测丁区", "320700")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        for election_id, region, day, staff in (("EL-A-2021", COUNTY_A, "2021-11-20", STAFF_A),
                                                ("EL-A-2026b", COUNTY_A, "2026-12-01", STAFF_A),
                                                ("EL-A-2026a", COUNTY_A, "2026-12-01", STAFF_A),
                                                ("EL-B-2026", COUNTY_B, "2026-12-02", STAFF_B)):
            resp = await client.put(f"/v1/elections/{election_id}", json=election(region, day), headers=staff)
            assert resp.status_code == 201, resp.text
        yield client


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page, two at a time, following `next`."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = {"limit": 2, **params, **({"after": after} if after else {})}
        resp = await client.get("/v1/elections", params=query, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["items"]
        after = body["next"]
        if after is None:
            return items


async def test_staff_see_their_region_s_elections_latest_first_in_pages(identity: httpx.AsyncClient) -> None:
    mine = await listed(identity, STAFF_A)
    assert [e["id"] for e in mine] == ["EL-A-2026a", "EL-A-2026b", "EL-A-2021"]
    assert mine[0] == {"id": "EL-A-2026a", "region_code": COUNTY_A, "election_date": "2026-12-01",
                       "reconciliation": None}
    # The city's staff see both counties, and may narrow to one; a county's staff may not look next door.
    assert [e["id"] for e in await listed(identity, STAFF_CITY)] == ["EL-B-2026", "EL-A-2026a", "EL-A-2026b",
                                                                       "EL-A-2021"]
    assert [e["id"] for e in await listed(identity, STAFF_CITY, region_code=COUNTY_B)] == ["EL-B-2026"]
    refused = await identity.get("/v1/elections", params={"region_code": COUNTY_B}, headers=STAFF_A)
    assert refused.status_code == 403
    assert (await identity.get("/v1/elections", headers=bearer("deputy", COUNTY_A))).status_code == 403
    assert (await identity.get("/v1/elections", headers=bearer("admin", COUNTY_A))).status_code == 403
    bad = await identity.get("/v1/elections", params={"after": "not-ours"}, headers=STAFF_A)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "after"


async def test_each_election_carries_its_latest_reconciliation(identity: httpx.AsyncClient) -> None:
    started = await identity.post("/v1/elections/EL-A-2021/reconciliation", headers=STAFF_A)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]

    async def finished() -> bool:
        rows = {e["id"]: e for e in await listed(identity, STAFF_A)}
        summary = rows["EL-A-2021"]["reconciliation"]
        assert summary is not None and summary["job_id"] == job_id
        return bool(summary["status"] == "done")

    await eventually(finished, timeout=60, what="the listed reconciliation done", interval=0.1)
    rows = {e["id"]: e for e in await listed(identity, STAFF_A)}
    summary = rows["EL-A-2021"]["reconciliation"]
    assert summary["progress"] == 1.0 and summary["finished_at"] is not None
    assert summary["started_at"] <= summary["finished_at"]
    assert rows["EL-A-2026a"]["reconciliation"] is None
