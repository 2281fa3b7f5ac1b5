"""Directory writes stay within the writer's region, and each one is on the audit log.

Two counties of one city (Suzhou: 320505 Huqiu, 320506 Wuzhong) with an admin each, a provincial
admin above them, on the real identity service (PostgreSQL, NATS).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import Servers
from identityutil import bearer, identity_service

COUNTY_A, COUNTY_B = "320505", "320506"  # regions of this module: 3205xx, used by no other test module
ADMIN = bearer("admin", sub="admin-all")
PROVINCE_ADMIN = bearer("admin", "32", sub="admin-province")
ADMIN_A = bearer("admin", COUNTY_A, sub="admin-a")
ADMIN_B = bearer("admin", COUNTY_B, sub="admin-b")
STAFF_A = bearer("npc_staff", COUNTY_A, sub="staff-a")
STAFF_B = bearer("npc_staff", COUNTY_B, sub="staff-b")


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_service(servers, tmp_path_factory.mktemp("scope-home")) as (client, _):
        for code, name, parent in (("320000", "江苏省", None), ("320500", "苏州市", "320000"),
                                   (COUNTY_A, "虎丘区", "320500"), (COUNTY_B, "吴中区", "320500")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        for station_id, region, admin in (("SA-1", COUNTY_A, ADMIN_A), ("SB-1", COUNTY_B, ADMIN_B)):
            resp = await client.put(f"/v1/stations/{station_id}", headers=admin,
                                    json={"name": f"{station_id} 联络站", "kind": "station", "region_code": region})
            assert resp.status_code == 201, resp.text
        yield client


def deputy(region: str, stations: list[str], **over: Any) -> dict[str, Any]:
    return {"name": "周代表", "level": "county", "region_code": region, "station_ids": stations, **over}


async def audit(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/audit", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


# --- references to other objects stay in the writer's region ----------------------------------------------


async def test_a_county_admin_cannot_attach_a_deputy_to_another_countys_station(identity: httpx.AsyncClient) -> None:
    resp = await identity.put("/v1/deputies/DA-1", json=deputy(COUNTY_A, ["SA-1", "SB-1"]), headers=ADMIN_A)
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["errors"]
    assert error == {"field": "station_ids", "message": "联络站不存在或不在您的管辖范围内：SB-1"}
    # The same answer as for a station that does not exist: nothing tells the two apart.
    unknown = await identity.put("/v1/deputies/DA-1", json=deputy(COUNTY_A, ["SB-NONE"]), headers=ADMIN_A)
    assert unknown.json()["errors"][0]["message"] == "联络站不存在或不在您的管辖范围内：SB-NONE"
    assert (await identity.get("/v1/deputies/DA-1", headers=STAFF_A)).status_code == 404
    own = await identity.put("/v1/deputies/DA-1", json=deputy(COUNTY_A, ["SA-1"]), headers=ADMIN_A)
    assert own.status_code == 201 and own.json()["station_ids"] == ["SA-1"]


async def test_links_made_from_above_stay_and_only_their_admin_breaks_them(identity: httpx.AsyncClient) -> None:
    both = deputy(COUNTY_A, ["SA-1", "SB-1"], level="provincial")
    assert (await identity.put("/v1/deputies/DA-2", json=both, headers=PROVINCE_ADMIN)).status_code == 201
    # The county's admin changes what is theirs and leaves the other county's link as it is.
    kept = await identity.put("/v1/deputies/DA-2", json={**both, "groups": ["农业小组"]}, headers=ADMIN_A)
    assert kept.status_code == 200, kept.text
    assert kept.json()["station_ids"] == ["SA-1", "SB-1"] and kept.json()["version"] == 2
    dropped = await identity.put("/v1/deputies/DA-2", json={**both, "station_ids": ["SA-1"]}, headers=ADMIN_A)
    assert dropped.status_code == 422
    assert dropped.json()["errors"][0]["message"] == "不能解除不在您管辖范围内的联络站：SB-1"
    by_province = await identity.put("/v1/deputies/DA-2", json={**both, "station_ids": ["SA-1"]},
                                     headers=PROVINCE_ADMIN)
    assert by_province.status_code == 200 and by_province.json()["station_ids"] == ["SA-1"]


async def test_a_county_admin_names_their_county_but_cannot_move_it(identity: httpx.AsyncClient) -> None:
    renamed = await identity.put(f"/v1/regions/{COUNTY_A}", json={"name": "虎丘区（高新区）", "parent_code": "320500"},
                                 headers=ADMIN_A)
    assert renamed.status_code == 200, renamed.text
    moved = await identity.put(f"/v1/regions/{COUNTY_A}", json={"name": "虎丘区", "parent_code": "320000"},
                               headers=ADMIN_A)
    assert moved.status_code == 403, moved.text
    assert moved.json()["detail"] == "该地区不在您的管辖范围内。"
    place = await identity.get(f"/v1/regions/{COUNTY_A}", headers=STAFF_A)
    assert place.json()["parent_code"] == "320500"
    town = await identity.put(f"/v1/regions/{COUNTY_A}001", json={"name": "横塘街道", "parent_code": COUNTY_A},
                              headers=ADMIN_A)
    assert town.status_code == 201
    # A region of the other county cannot be hung under this one either (the code must nest anyway).
    across = await identity.put(f"/v1/regions/{COUNTY_B}001", json={"name": "x", "parent_code": COUNTY_B},
                                headers=ADMIN_A)
    assert across.status_code == 403


async def test_a_county_admin_cannot_issue_or_move_across_the_border(identity: httpx.AsyncClient) -> None:
    code = await identity.post("/v1/stations/SB-1/code", headers=ADMIN_A)
    assert code.status_code == 403
    station = await identity.put("/v1/stations/SB-1", headers=ADMIN_A,
                                 json={"name": "SB-1 联络站", "kind": "station", "region_code": COUNTY_A})
    assert station.status_code == 403


# --- the audit log ---------------------------------------------------------------------------------------


async def test_station_writes_are_audited_with_before_and_after(identity: httpx.AsyncClient) -> None:
    body = {"name": "横塘联络站", "kind": "station", "region_code": COUNTY_A}
    assert (await identity.put("/v1/stations/SA-2", json=body, headers=ADMIN_A)).status_code == 201
    assert (await identity.put("/v1/stations/SA-2", json=body, headers=ADMIN_A)).status_code == 200
    assert (await identity.put("/v1/stations/SA-2", json={**body, "kind": "home"}, headers=ADMIN_A)).status_code == 200
    entries = await audit(identity, STAFF_A, action="station.changed", subject_id="SA-2")
    assert len(entries) == 2, "an unchanged PUT is not a change"
    changed, created = entries
    assert (created["actor"], created["actor_roles"], created["region_code"]) == ("admin-a", ["admin"], COUNTY_A)
    assert created["detail"] == {"before": None, "after": {"name": "横塘联络站", "kind": "station",
                                                           "region_code": COUNTY_A}}
    assert changed["detail"] == {"before": {"name": "横塘联络站", "kind": "station", "region_code": COUNTY_A},
                                 "after": {"name": "横塘联络站", "kind": "home", "region_code": COUNTY_A}}


async def test_region_writes_are_audited_with_before_and_after(identity: httpx.AsyncClient) -> None:
    code = f"{COUNTY_A}002"
    first = {"name": "枫桥街道", "parent_code": COUNTY_A}
    assert (await identity.put(f"/v1/regions/{code}", json=first, headers=ADMIN_A)).status_code == 201
    assert (await identity.put(f"/v1/regions/{code}", json=first, headers=ADMIN_A)).status_code == 200
    second = {"name": "枫桥街道（新）", "parent_code": COUNTY_A}
    assert (await identity.put(f"/v1/regions/{code}", json=second, headers=ADMIN_A)).status_code == 200
    entries = await audit(identity, STAFF_A, action="region.changed", subject_id=code)
    assert [(e["actor"], e["detail"]) for e in entries] == [
        ("admin-a", {"before": first, "after": second}),
        ("admin-a", {"before": None, "after": first}),
    ]


async def test_deputy_writes_are_audited_without_the_phone(identity: httpx.AsyncClient) -> None:
    body = deputy(COUNTY_A, ["SA-1"], name="吴代表", district_id="D-3", phone="13912345678")
    assert (await identity.put("/v1/deputies/DA-3", json=body, headers=ADMIN_A)).status_code == 201
    assert (await identity.put("/v1/deputies/DA-3", json=body, headers=ADMIN_A)).status_code == 200
    moved = {**body, "phone": "13987654321", "groups": ["教育小组"]}
    assert (await identity.put("/v1/deputies/DA-3", json=moved, headers=ADMIN_A)).status_code == 200
    entries = await audit(identity, STAFF_A, action="deputy.changed", subject_id="DA-3")
    assert len(entries) == 2
    state = {"name": "吴代表", "level": "county", "region_code": COUNTY_A, "station_ids": ["SA-1"],
             "district_id": "D-3", "groups": []}
    assert entries[1]["detail"] == {"before": None, "after": state, "phone_changed": True}
    assert entries[0]["detail"] == {"before": state, "after": {**state, "groups": ["教育小组"]}, "phone_changed": True}
    logged = json.dumps(entries)
    for digits in ("13912345678", "13987654321", "5678", "4321"):
        assert digits not in logged


async def test_staff_read_only_their_own_countys_directory_entries(identity: httpx.AsyncClient) -> None:
    body = {"name": "吴中联络站", "kind": "studio", "region_code": COUNTY_B}
    assert (await identity.put("/v1/stations/SB-2", json=body, headers=ADMIN_B)).status_code == 201
    seen_by_b = await audit(identity, STAFF_B, limit="500")
    assert {"SB-1", "SB-2"} <= {e["subject_id"] for e in seen_by_b if e["action"] == "station.changed"}
    assert all(e["region_code"].startswith(COUNTY_B) for e in seen_by_b)
    seen_by_a = await audit(identity, STAFF_A, limit="500")
    assert "SA-1" in {e["subject_id"] for e in seen_by_a}
    assert all(e["region_code"].startswith(COUNTY_A) for e in seen_by_a)
