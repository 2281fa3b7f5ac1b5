"""The public region tree on real PostgreSQL: what a citizen's page walks to pick where a matter is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import Servers
from identityutil import bearer, identity_service

ADMIN = bearer("admin")
PROBLEM_JSON = "application/problem+json"
# A province of this module's own: the session's database holds other modules' regions too.
TREE = (("460000", "海南省", None), ("460100", "海口市", "460000"), ("460200", "三亚市", "460000"),
        ("460105", "秀英区", "460100"), ("460105001", "长流镇", "460105"), ("460105001-G1", "第一网格", "460105001"))


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_service(servers, tmp_path_factory.mktemp("identity-public-regions")) as (client, _):
        for code, name, parent in TREE:
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        yield client


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def test_the_top_level_lists_regions_without_a_parent_in_code_order(identity: httpx.AsyncClient) -> None:
    resp = await identity.get("/v1/public/regions")  # no token: a citizen's page
    assert resp.status_code == 200, resp.text
    top = resp.json()
    assert {"code": "460000", "name": "海南省", "has_children": True} in top
    codes = [r["code"] for r in top]
    assert codes == sorted(codes)
    assert not {"460100", "460105"} & set(codes), "only regions without a parent"


async def test_children_are_the_direct_ones_with_whether_they_have_their_own(identity: httpx.AsyncClient) -> None:
    async def children(parent: str) -> list[dict[str, object]]:
        resp = await identity.get("/v1/public/regions", params={"parent_code": parent})
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    assert await children("460000") == [{"code": "460100", "name": "海口市", "has_children": True},
                                         {"code": "460200", "name": "三亚市", "has_children": False}]
    assert await children("460105") == [{"code": "460105001", "name": "长流镇", "has_children": True}]
    assert await children("460105001") == [{"code": "460105001-G1", "name": "第一网格", "has_children": False}]
    assert await children("469999") == [], "an unknown parent has no children"


async def test_a_region_shows_its_path_from_the_top(identity: httpx.AsyncClient) -> None:
    resp = await identity.get("/v1/public/regions/460105001-G1")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"code": "460105001-G1", "name": "第一网格", "parent_code": "460105001", "path": [
        {"code": code, "name": name} for code, name, _ in (TREE[0], TREE[1], TREE[3], TREE[4], TREE[5])]}
    top = (await identity.get("/v1/public/regions/460000")).json()
    assert top == {"code": "460000", "name": "海南省", "parent_code": None,
                   "path": [{"code": "460000", "name": "海南省"}]}


async def test_an_unknown_region_is_not_found_and_a_malformed_code_is_invalid(identity: httpx.AsyncClient) -> None:
    missing = await identity.get("/v1/public/regions/469999")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON
    assert is_chinese(missing.json()["detail"])
    for path, params in (("/v1/public/regions/46", {}), ("/v1/public/regions/4601%2005", {}),
                         ("/v1/public/regions", {"parent_code": "46"}),
                         ("/v1/public/regions", {"parent_code": "460000'--"})):
        resp = await identity.get(path, params=params)
        assert resp.status_code == 422, (path, params, resp.text)
        assert resp.headers["content-type"] == PROBLEM_JSON
