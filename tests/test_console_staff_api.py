"""What the suggestions service added for congress staff's console, on the real servers: the list's
`key` and `carried` filters and `GET /v1/suggestion-counts`, each within the caller's reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from busutil import event_body, eventually, publish
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

from shared.ids import new_id

COUNTY = "340871"  # used by no other test module: the counts below are this county's alone
YEAR = datetime.now(UTC).year
STAFF = bearer("npc_staff", COUNTY)


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("console-staff-api")) as service:
        await service.unit("cs-road", COUNTY)
        await service.unit("cs-house", COUNTY)
        yield service


@pytest.fixture(scope="module")
async def seeded(svc: Suggestions) -> dict[str, str]:
    """A plain assigned one, a key one, one born of a supervision topic, one carried over from last year."""
    lead = f"d-{new_id()[-12:]}"
    await svc.deputy(lead, COUNTY)
    text = "建议在学校门口路口增设信号灯和减速带，保障学生上下学安全。"
    ids: dict[str, str] = {}
    for name, year in (("plain", YEAR), ("key", YEAR), ("carried", YEAR - 1)):
        ids[name] = (await svc.submit(lead, title=f"关于{name}路口的建议{new_id()[-6:]}", content=text + name,
                                      year=year))["id"]
    await svc.act(ids["plain"], "assignment", {"lead_unit_id": "cs-road"}, STAFF)
    await svc.act(ids["key"], "assignment", {"lead_unit_id": "cs-house", "assisting_unit_ids": ["cs-road"],
                                             "key": True, "supervisor": "王副主任"}, STAFF)
    topic = new_id()
    data = {"id": topic, "region_code": COUNTY, "category": "roads_traffic", "count": 5, "keywords": ["信号灯"],
            "report_ids": [new_id() for _ in range(5)], "first_at": "2026-10-01T08:00:00+08:00",
            "last_at": "2026-10-20T08:00:00+08:00", "window_days": 30}
    await publish(svc.nats_url, "routing.hotspot.detected", event_body(new_id(), "routing.hotspot.detected", data))

    async def listed() -> bool:
        resp = await svc.client.get("/v1/supervision-topics", headers=STAFF)
        return any(t["id"] == topic for t in resp.json())

    await eventually(listed, timeout=20, what="the hotspot as a supervision topic")
    converted = await svc.client.post(f"/v1/supervision-topics/{topic}/conversion", headers=STAFF, json={
        "lead_deputy_id": lead, "title": "关于学校周边交通安全的监督建议", "year": YEAR,
        "content": "群众多次反映学校门口路口没有信号灯，建议作为重点建议督办。"})
    assert converted.status_code == 201, converted.text
    ids["topic"] = converted.json()["suggestion"]["id"]
    await svc.recorded(ids["topic"], 1, STAFF)

    async def carried_over() -> bool:
        return YEAR in (await svc.get(ids["carried"], STAFF))["years"]

    # Last year's list closed at its year's end, long past: the workflow carries it over at once.
    await eventually(carried_over, timeout=30, what="last year's suggestion carried onto this year's list")
    return ids


async def listed(svc: Suggestions, headers: dict[str, str] | None = None, **params: Any) -> set[str]:
    resp = await svc.client.get("/v1/suggestions", params=params, headers=headers or STAFF)
    assert resp.status_code == 200, resp.text
    return {s["id"] for s in resp.json()}


async def test_key_filter_holds_key_ones_and_topics_waiting_to_be_made_key(svc: Suggestions,
                                                                           seeded: dict[str, str]) -> None:
    assert await listed(svc, year=YEAR, key="true") == {seeded["key"], seeded["topic"]}
    assert await listed(svc, year=YEAR, key="false") == {seeded["plain"], seeded["carried"]}
    # Assigned without the key, the topic's suggestion is no longer waiting to be made one.
    await svc.act(seeded["topic"], "assignment", {"lead_unit_id": "cs-road"}, STAFF)
    assert await listed(svc, year=YEAR, key="true") == {seeded["key"]}
    assert seeded["topic"] in await listed(svc, year=YEAR, key="false")


async def test_carried_filter_names_what_an_earlier_year_left(svc: Suggestions, seeded: dict[str, str]) -> None:
    assert await listed(svc, year=YEAR, carried="true") == {seeded["carried"]}
    assert seeded["carried"] not in await listed(svc, year=YEAR, carried="false")
    assert await listed(svc, year=YEAR - 1, carried="true") == set()
    assert seeded["carried"] in await listed(svc, year=YEAR - 1, carried="false")
    assert seeded["carried"] in await listed(svc, carried="true")
    assert seeded["plain"] not in await listed(svc, carried="true")
    bad = await svc.client.get("/v1/suggestions", params={"carried": "sometimes"}, headers=STAFF)
    assert bad.status_code == 422


async def test_counts_match_the_list_for_the_same_token(svc: Suggestions, seeded: dict[str, str]) -> None:
    resp = await svc.client.get("/v1/suggestion-counts", params={"year": YEAR}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    counts = resp.json()
    everything = await listed(svc, year=YEAR, limit=1000)
    assert counts["total"] == len(everything) == 4
    assert sum(counts["colors"].values()) == counts["total"]
    for color, n in counts["colors"].items():
        assert n == len(await listed(svc, year=YEAR, color=color, limit=1000)), color
    for status, n in counts["statuses"].items():
        assert n == len(await listed(svc, year=YEAR, status=status, limit=1000)), status
    assert counts["key"] == len(await listed(svc, year=YEAR, key="true")) and counts["carried"] == 1
    by_unit = {u["unit_id"]: u for u in counts["units"]}
    assert set(by_unit) <= {"cs-road", "cs-house"} and by_unit["cs-house"]["total"] == 1
    assert by_unit["cs-house"]["colors"]["green"] == 1
    assert by_unit["cs-road"]["total"] == len(await listed(svc, year=YEAR, unit_id="cs-road")) - 1  # key: assisting

    # Another county's staff count nothing of this one; a unit counts what it may list.
    other = await svc.client.get("/v1/suggestion-counts", params={"year": YEAR}, headers=bearer("npc_staff", "110101"))
    assert other.status_code == 200 and other.json()["total"] == 0 and other.json()["units"] == []
    unit = bearer("unit", unit_id="cs-house")
    mine = (await svc.client.get("/v1/suggestion-counts", params={"year": YEAR}, headers=unit)).json()
    assert mine["total"] == len(await listed(svc, unit, year=YEAR)) == 1
    assert (await svc.client.get("/v1/suggestion-counts", params={"year": YEAR},
                                 headers=bearer("admin", COUNTY))).status_code == 403
    assert (await svc.client.get("/v1/suggestion-counts", headers=STAFF)).status_code == 422
