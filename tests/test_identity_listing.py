"""The region's deputies and stations, listed for colleagues who pick them: by name, paged, never a phone,
never another county's rows. Two counties of Nantong (320611, 320612) on the real identity service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import Servers
from identityutil import KEY, bearer, identity_service

from shared.auth import sign_token
from shared.cursors import decode, encode

COUNTY_A, COUNTY_B = "320611", "320612"  # used by no other test module
ADMIN = bearer("admin", sub="admin-all")
STAFF_A = bearer("npc_staff", COUNTY_A, sub="staff-a")
CLERK_A = bearer("station_staff", COUNTY_A, sub="clerk-a")
CLERK_B = bearer("station_staff", COUNTY_B, sub="clerk-b")
PHONE = "13912345678"


def deputy_token(deputy_id: str, region: str) -> dict[str, str]:
    tok = sign_token(KEY, issuer="minyi", audience="minyi", sub=f"d-{deputy_id}", roles=["deputy"], region=region,
                     deputy_id=deputy_id)
    return {"Authorization": f"Bearer {tok}"}


DEPUTY_A = deputy_token("LA-1", COUNTY_A)
# Names of county A; one holds a LIKE wildcard, to show `q` matches it literally.
NAMES_A = ["张建国", "张秀英", "李张明", "王芳", "Zhang Wei", "赵100%"]


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_service(servers, tmp_path_factory.mktemp("listing-home")) as (client, _):
        for code, name, parent in (("320000", "江苏省", None), ("320600", "南通市", "320000"),
                                   (COUNTY_A, "测甲区", "320600"), (COUNTY_B, "测乙区", "320600")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        for sid, name, region in (("LS-A1", "城东联络站", COUNTY_A), ("LS-A2", "城西代表之家", COUNTY_A),
                                  ("LS-B1", "城东联络站（乙）", COUNTY_B)):
            resp = await client.put(f"/v1/stations/{sid}", headers=ADMIN,
                                    json={"name": name, "kind": "station", "region_code": region})
            assert resp.status_code in (200, 201), resp.text
        for n, name in enumerate(NAMES_A, start=1):
            resp = await client.put(f"/v1/deputies/LA-{n}", headers=ADMIN, json={
                "name": name, "level": "county", "region_code": COUNTY_A, "phone": PHONE,
                # The first deputy also sits at the other county's station: that one is not named to county A.
                "station_ids": ["LS-A1", "LS-B1"] if n == 1 else ["LS-A2"]})
            assert resp.status_code in (200, 201), resp.text
        for n, name in enumerate(("张乙一", "钱乙二"), start=1):
            resp = await client.put(f"/v1/deputies/LB-{n}", headers=ADMIN, json={
                "name": name, "level": "county", "region_code": COUNTY_B, "station_ids": ["LS-B1"]})
            assert resp.status_code in (200, 201), resp.text
        assert (await client.post("/v1/stations/LS-A1/code", headers=ADMIN)).status_code == 201
        assert (await client.post("/v1/deputies/LA-2/code", headers=ADMIN)).status_code == 201
        yield client


async def everything(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
                     ) -> list[dict[str, Any]]:
    """Every page of a listing, two rows at a time, following `next`."""
    items: list[dict[str, Any]] = []
    after = None
    for _ in range(20):
        resp = await client.get(path, headers=headers, params={**params, "limit": 2,
                                                               **({"after": after} if after else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["items"]) <= 2
        items += body["items"]
        after = body["next"]
        if after is None:
            return items
    raise AssertionError("the listing never ended")


async def test_a_deputy_lists_the_deputies_of_their_county_by_name_in_pages(identity: httpx.AsyncClient) -> None:
    rows = await everything(identity, "/v1/deputies", DEPUTY_A)
    assert sorted(r["name"] for r in rows) == sorted(NAMES_A)
    assert len({r["id"] for r in rows}) == len(NAMES_A)  # no row twice across pages
    assert all(r["region_code"] == COUNTY_A for r in rows)
    first = next(r for r in rows if r["id"] == "LA-1")
    assert first["stations"] == [{"id": "LS-A1", "name": "城东联络站"}]
    # Names, not contacts: no phone in any form, and a deputy is not handed the QR codes.
    assert PHONE[-4:] not in str(rows) and "phone" not in str(rows)
    assert all(r["code"] is None for r in rows)


async def test_q_finds_a_part_of_the_name_in_any_case_and_literally(identity: httpx.AsyncClient) -> None:
    found = (await identity.get("/v1/deputies", params={"q": "张"}, headers=DEPUTY_A)).json()["items"]
    assert sorted(r["name"] for r in found) == sorted(["张建国", "张秀英", "李张明"])
    latin = (await identity.get("/v1/deputies", params={"q": "zhANG"}, headers=STAFF_A)).json()["items"]
    assert [r["name"] for r in latin] == ["Zhang Wei"]
    # `%` and `_` are letters here, not wildcards.
    assert [r["name"] for r in (await identity.get("/v1/deputies", params={"q": "0%"}, headers=STAFF_A)
                                ).json()["items"]] == ["赵100%"]
    assert (await identity.get("/v1/deputies", params={"q": "_"}, headers=STAFF_A)).json()["items"] == []


async def test_a_caller_of_one_county_never_sees_the_other_countys_rows(identity: httpx.AsyncClient) -> None:
    b = await everything(identity, "/v1/deputies", CLERK_B)
    assert sorted(r["id"] for r in b) == ["LB-1", "LB-2"]
    a_stations = await everything(identity, "/v1/stations", CLERK_A)
    assert sorted(s["id"] for s in a_stations) == ["LS-A1", "LS-A2"]
    # Asking for the other county, or for the whole city above one's own, is refused in words.
    for headers, region in ((CLERK_A, COUNTY_B), (DEPUTY_A, COUNTY_B), (CLERK_A, "3206")):
        resp = await identity.get("/v1/deputies", params={"region_code": region}, headers=headers)
        assert resp.status_code == 403, resp.text
        assert resp.json()["detail"] == "该地区不在您的管辖范围内。"
    # The city's admin sees both counties and may narrow to one.
    city = bearer("admin", "3206", sub="admin-city")
    assert {r["region_code"] for r in await everything(identity, "/v1/deputies", city)} == {COUNTY_A, COUNTY_B}
    only_b = await everything(identity, "/v1/stations", city, region_code=COUNTY_B)
    assert [s["id"] for s in only_b] == ["LS-B1"]


async def test_staff_get_the_live_qr_codes_to_register_reports_by(identity: httpx.AsyncClient) -> None:
    stations = {s["id"]: s for s in await everything(identity, "/v1/stations", CLERK_A)}
    assert stations["LS-A1"]["code"] and stations["LS-A2"]["code"] is None
    resolved = await identity.get(f"/v1/codes/{stations['LS-A1']['code']}")
    assert resolved.status_code == 200 and resolved.json()["id"] == "LS-A1"
    deputies = {d["id"]: d for d in await everything(identity, "/v1/deputies", CLERK_A)}
    assert deputies["LA-2"]["code"] and deputies["LA-1"]["code"] is None


async def test_units_citizens_and_integrations_may_not_list(identity: httpx.AsyncClient) -> None:
    assert (await identity.get("/v1/deputies")).status_code == 401
    unit = sign_token(KEY, issuer="minyi", audience="minyi", sub="u", roles=["unit"], region=COUNTY_A, unit_id="U1")
    for headers in ({"Authorization": f"Bearer {unit}"}, bearer("integration", COUNTY_A)):
        assert (await identity.get("/v1/stations", headers=headers)).status_code == 403


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"after": "not-a-cursor"}, "after"),
    ({"region_code": "32%"}, "region_code"), ({"q": "x" * 51}, "q"), ({"q": "a\x00b"}, "q"),
])
async def test_bad_input_is_a_422_in_chinese(identity: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    resp = await identity.get("/v1/deputies", params=params, headers=STAFF_A)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in e["message"]) for e in errors)


def test_the_cursor_round_trips_and_refuses_anything_else() -> None:
    assert decode(encode("张建国", "LA-1"), 2) == ("张建国", "LA-1")
    for bad in ("", "!!!", encode("a", "b")[:-3], "WzFd", encode("a\x00", "b")):  # "WzFd" is [1]
        with pytest.raises(ValueError):
            decode(bad, 2)
