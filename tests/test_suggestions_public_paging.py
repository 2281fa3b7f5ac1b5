"""The public replies are paged by an opaque cursor: each page says where the next one starts, a
page holds at most 100 replies, and `offset` only reaches a little way in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

from shared.ids import new_id

REGION = "350302"
STAFF = bearer("npc_staff", REGION)
YEAR = datetime.now(UTC).year
URL = "/v1/public/replies"


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-paging")) as service:
        unit = await service.client.put("/v1/units/u-paging", json={"name": "水利局", "region_code": REGION},
                                        headers=STAFF)
        assert unit.status_code == 200, unit.text
        yield service


async def replied(svc: Suggestions, n: int) -> str:
    deputy = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy, REGION)
    created = await svc.submit(deputy, title=f"关于第{n}号排水渠清淤的建议", year=YEAR,
                               content="排水渠淤积严重，汛期容易漫溢，建议尽快清淤疏浚。")
    await svc.act(created["id"], "assignment", {"lead_unit_id": "u-paging"}, STAFF)
    await svc.act(created["id"], "replies", {"unit_id": "u-paging", "content": f"第{n}号渠已清淤。", "outcome": "A"},
                  bearer("unit", unit_id="u-paging"))
    await svc.recorded(created["id"], 3, headers=STAFF)
    return str(created["id"])


async def test_following_next_walks_every_reply_once_newest_first(svc: Suggestions) -> None:
    made = [await replied(svc, n) for n in range(5)]
    pages: list[list[str]] = []
    params: dict[str, object] = {"year": YEAR, "region_code": REGION, "limit": 2}
    while True:
        resp = await svc.client.get(URL, params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert set(page) == {"items", "next"}
        pages.append([item["id"] for item in page["items"]])
        if page["next"] is None:
            break
        assert isinstance(page["next"], str) and len(pages) < 10
        params = {**params, "after": page["next"]}
    # Replied one after another: the last reply comes first.
    assert pages == [made[4:2:-1], made[2:0:-1], made[0:1]]

    # A cursor of a filtered list, used with the same filter, goes on from where that page ended.
    first = (await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "q": "清淤", "limit": 3})).json()
    rest = (await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "q": "清淤", "limit": 3,
                                             "after": first["next"]})).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == made[::-1] and rest["next"] is None

    # A small offset still works, and agrees with the cursor.
    skipped = (await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "limit": 2,
                                                "offset": 2})).json()
    assert [i["id"] for i in skipped["items"]] == made[2:0:-1]


@pytest.mark.parametrize(("params", "field"), [
    ({"offset": 1001}, "offset"),
    ({"offset": 10_000_000}, "offset"),
    ({"limit": 101}, "limit"),
    ({"after": "not-a-cursor"}, "after"),
    ({"after": "eyJ4IjoxfQ"}, "after"),
    ({"after": "A" * 201}, "after"),
])
async def test_deep_offsets_big_pages_and_forged_cursors_are_refused(svc: Suggestions, params: dict[str, object],
                                                                     field: str) -> None:
    resp = await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, **params})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in resp.json()["errors"]] == [field]


async def test_offset_and_cursor_do_not_mix(svc: Suggestions) -> None:
    page = (await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "limit": 1})).json()
    if page["next"] is None:
        await replied(svc, 100)
        await replied(svc, 101)
        page = (await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "limit": 1})).json()
    assert page["next"] is not None
    resp = await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "after": page["next"],
                                             "offset": 1})
    assert resp.status_code == 422 and [e["field"] for e in resp.json()["errors"]] == ["offset"]
    fine = await svc.client.get(URL, params={"year": YEAR, "region_code": REGION, "offset": 1000})
    assert fine.status_code == 200 and fine.json() == {"items": [], "next": None}
