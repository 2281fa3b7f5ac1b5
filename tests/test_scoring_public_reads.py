"""Scoring's routes open to anyone: the live ranking made once per short while and not per call,
read a bounded page at a time, and each anonymous caller flood-limited; the talk list, for staff,
names only deputies of the caller's region."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from conftest import Servers
from scoringutil import Scoring, scoring_service
from suggestionsutil import bearer

from services.scoring.domain import CHINA
from shared.errors import PROBLEM_JSON
from shared.ids import new_id

PROVINCE = "52"  # these tests only: 52xxxx
STAFF = bearer("npc_staff", PROVINCE)
NOW = datetime.now(CHINA)
YEAR = NOW.year


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scoring]:
    async with scoring_service(servers, tmp_path_factory.mktemp("scoring-public")) as service:
        yield service


async def deputies(svc: Scoring, region: str, count: int) -> list[str]:
    made = [f"pr-{new_id()[-10:]}" for _ in range(count)]
    for deputy in made:
        await svc.deputy(deputy, region)
    return made


async def award(svc: Scoring, deputy: str, kind: str, staff: dict[str, str] = STAFF) -> None:
    resp = await svc.client.post("/v1/activities", headers=staff, json={
        "deputy_id": deputy, "kind": kind, "on": NOW.date().isoformat(), "evidence": {"doc": "记录"}})
    assert resp.status_code == 201, resp.text


async def test_anonymous_calls_read_the_live_ranking_made_once_not_rank_the_region_again(svc: Scoring) -> None:
    region = "520101"
    a, b = await deputies(svc, region, 2)
    await award(svc, a, "survey")  # 3
    await svc.score(a, YEAR, entries=1, staff=STAFF)
    params = {"year": YEAR, "region_code": "52", "level": "county"}
    first = await svc.client.get("/v1/rankings", params=params)
    assert first.status_code == 200, first.text
    assert [(r["deputy_id"], r["total"]) for r in first.json() if r["deputy_id"] in (a, b)] == [(a, 3), (b, 0)]
    ranked_at = first.headers["minyi-ranked-at"]
    assert abs((datetime.fromisoformat(ranked_at) - datetime.now(CHINA)).total_seconds()) < 30

    await award(svc, b, "report_back")  # 5: b would now lead
    await svc.score(b, YEAR, entries=1, staff=STAFF)
    again = await svc.client.get("/v1/rankings", params=params)
    # The same ranking as made a moment ago, not a new pass over the province.
    assert again.content == first.content and again.headers["minyi-ranked-at"] == ranked_at
    # Another key (another level filter) is ranked on its own, and sees the new points.
    other = await svc.client.get("/v1/rankings", params={"year": YEAR, "region_code": "52"})
    assert [r["deputy_id"] for r in other.json() if r["deputy_id"] in (a, b)] == [b, a]


async def test_a_ranking_is_read_a_bounded_page_at_a_time(svc: Scoring) -> None:
    region = "520102"
    made = await deputies(svc, region, 5)
    for deputy, kind in zip(made, ("survey", "training", "training", "report_back", "inspection"), strict=True):
        await award(svc, deputy, kind)
    for deputy in made:
        await svc.score(deputy, YEAR, entries=1, staff=STAFF)
    params = {"year": YEAR, "region_code": region}
    whole = await svc.client.get("/v1/rankings", params=params)
    assert whole.headers["minyi-total-count"] == "5" and len(whole.json()) == 5
    # 5, 3, 3, 2, 2: ties share a rank across a page boundary too.
    assert [(r["total"], r["rank"]) for r in whole.json()] == [(5, 1), (3, 2), (3, 2), (2, 4), (2, 4)]
    paged = []
    for offset in (0, 2, 4):
        page = await svc.client.get("/v1/rankings", params={**params, "limit": 2, "offset": offset})
        assert page.status_code == 200 and page.headers["minyi-total-count"] == "5"
        paged += page.json()
    assert paged == whole.json()
    past = await svc.client.get("/v1/rankings", params={**params, "offset": 5})
    assert past.status_code == 200 and past.json() == []

    for bad in ({"limit": 1001}, {"limit": 0}, {"offset": -1}, {"offset": 1_000_001}):
        refused = await svc.client.get("/v1/rankings", params={**params, **bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert refused.json()["errors"][0]["field"] in bad

    published = await svc.client.post("/v1/rankings/publications", headers=STAFF, json=params)
    assert published.status_code == 201, published.text
    second = await svc.client.get("/v1/rankings", params={**params, "limit": 2, "offset": 2})
    assert second.json() == whole.json()[2:4] and second.headers["minyi-total-count"] == "5"
    assert "minyi-published-at" in second.headers


async def test_anonymous_callers_are_flood_limited_per_source(servers: Servers,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    async with scoring_service(servers, tmp_path_factory.mktemp("scoring-flood"),
                               # A day: a sliding window of a minute may roll over between the calls.
                               lookup_limit="3/day") as limited:
        for path, params in (("/v1/rankings", {"year": YEAR, "region_code": "520103"}),
                             ("/v1/units/board", {"year": YEAR, "region_code": "520103"}),
                             ("/v1/rules/520103", {})):
            for _ in range(3):
                ok = await limited.client.get(path, params=params)
                assert ok.status_code == 200, (path, ok.text)
            refused = await limited.client.get(path, params=params)
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["content-type"].startswith(PROBLEM_JSON)
            assert 1 <= int(refused.headers["retry-after"]) <= 24 * 3600
            assert "请求过于频繁" in refused.json()["detail"] and refused.headers["retry-after"] in \
                refused.json()["detail"]
            # Staff under a token that names them are not counted.
            staff = await limited.client.get(path, params=params, headers=STAFF)
            assert staff.status_code == 200, (path, staff.text)
            # Nor is a token a way around the limit for everyone else.
            deputy = await limited.client.get(path, params=params, headers=bearer("deputy", deputy_id="D1"))
            assert deputy.status_code == 429


async def test_the_talk_list_names_only_deputies_of_the_callers_region(svc: Scoring) -> None:
    here, there = "520201", "520301"
    mine = await deputies(svc, here, 3)
    theirs = await deputies(svc, there, 3)
    for deputy in (mine[0], theirs[0]):
        await award(svc, deputy, "report_back")
        await svc.score(deputy, YEAR, entries=1, staff=STAFF)
    county_staff = bearer("npc_staff", "5202")
    listed = await svc.client.get("/v1/talks", params={"year": YEAR, "region_code": "5202"}, headers=county_staff)
    assert listed.status_code == 200, listed.text
    named = {r["deputy_id"] for r in listed.json()}
    assert named and named <= set(mine) and not named & set(theirs)
    wider = await svc.client.get("/v1/talks", params={"year": YEAR, "region_code": "52"}, headers=county_staff)
    assert wider.status_code == 403
    province = await svc.client.get("/v1/talks", params={"year": YEAR, "region_code": "52"}, headers=STAFF)
    assert {r["deputy_id"] for r in province.json()} & set(theirs)
