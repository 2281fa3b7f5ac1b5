"""Who sees what, checked by content: a caller of one county never gets a row of another from any
list of the suggestions service, and a token that lacks the claim its role needs (a unit without
`unit_id`, a deputy without `deputy_id`, staff without a region) is never taken to mean "all"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from busutil import event_body, eventually, publish
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

from shared.ids import new_id

A, A_TOWN, B = "370101", "370101002", "370102"
YEAR = datetime.now(UTC).year
STAFF_A, STAFF_B = bearer("npc_staff", A), bearer("npc_staff", B)
CONTENT = "建议在村口增设路灯和护栏，方便村民夜间出行，保障通行安全。"


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-scope")) as service:
        yield service


async def _deputy(svc: Suggestions, region: str) -> str:
    deputy_id = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy_id, region)
    return deputy_id


async def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json()


@pytest.fixture(scope="module")
async def world(svc: Suggestions) -> dict[str, Any]:
    """Two counties, each with a unit, an assigned and replied suggestion, an unassigned one, an
    unassigned micro-suggestion, a fund with one spending and an open supervision topic."""
    made: dict[str, Any] = {}
    for region, staff, town in ((A, STAFF_A, A_TOWN), (B, STAFF_B, None)):
        unit = f"u-{region}-{new_id()[-6:]}"
        await _ok(await svc.client.put(f"/v1/units/{unit}", json={"name": f"{region}住建局", "region_code": region},
                                       headers=staff))
        lead = await _deputy(svc, region)
        other = await _deputy(svc, town or region)
        replied = await svc.submit(lead, title=f"关于{region}村口路灯的建议", content=CONTENT, year=YEAR)
        await svc.act(replied["id"], "assignment", {"lead_unit_id": unit}, staff)
        await svc.act(replied["id"], "replies", {"unit_id": unit, "content": "已安装路灯。", "outcome": "A"},
                      bearer("unit", unit_id=unit))
        unassigned = await svc.submit(other, title=f"关于{region}小区停车的建议", content=CONTENT, year=YEAR)
        micro = await svc.submit(lead, title=f"关于{region}修缮小桥的微建议", content=CONTENT, year=YEAR, micro=True)
        await _ok(await svc.client.put(f"/v1/micro-funds/{region}/{YEAR}", json={"amount": "1000.00"},
                                       headers=staff))
        await _ok(await svc.client.post(f"/v1/suggestions/{micro['id']}/spending",
                                        json={"amount": "10.00", "note": "购置护栏"}, headers=staff), 201)
        topic = new_id()
        data = {"id": topic, "region_code": region, "category": "roads_traffic", "count": 6,
                "keywords": ["路灯"], "report_ids": [new_id() for _ in range(6)],
                "first_at": "2026-10-01T08:00:00+08:00", "last_at": "2026-10-20T08:00:00+08:00", "window_days": 30}
        await publish(svc.nats_url, "routing.hotspot.detected", event_body(new_id(), "routing.hotspot.detected", data))
        made[region] = {"unit": unit, "replied": replied["id"], "unassigned": unassigned["id"], "micro": micro["id"],
                        "topic": topic, "staff": staff}
        await svc.recorded(replied["id"], 3, headers=staff)
        for sid in (unassigned["id"], micro["id"]):
            await svc.recorded(sid, 1, headers=staff)

    async def topics_in() -> bool:
        found = set()
        for region in (A, B):
            resp = await svc.client.get("/v1/supervision-topics", headers=made[region]["staff"])
            found |= {t["id"] for t in resp.json()} if resp.status_code == 200 else set()
        return {made[A]["topic"], made[B]["topic"]} <= found

    await eventually(topics_in, timeout=20, what="both hotspots as supervision topics")
    return made


def _ids(world: dict[str, Any], region: str) -> set[str]:
    return {world[region][k] for k in ("replied", "unassigned", "micro")}


@pytest.mark.parametrize("region", [A, B])
async def test_suggestion_lists_hold_only_the_callers_region(svc: Suggestions, world: dict[str, Any],
                                                              region: str) -> None:
    other = B if region == A else A
    staff = world[region]["staff"]
    for params in ({}, {"year": YEAR}, {"status": "submitted"}, {"status": "replied"}, {"color": "green"},
                   {"unit_id": world[other]["unit"]}):
        items = await _ok(await svc.client.get("/v1/suggestions", params=params, headers=staff))
        assert all(item["region_code"].startswith(region) for item in items), (params, items)
        assert not {item["id"] for item in items} & _ids(world, other), params
    listed = {item["id"] for item in await _ok(await svc.client.get("/v1/suggestions", headers=staff))}
    assert _ids(world, region) <= listed
    # A suggestion of the other county is not to be read one by one either.
    refused = await svc.client.get(f"/v1/suggestions/{world[other]['replied']}", headers=staff)
    assert refused.status_code == 403


async def test_topics_funds_audit_and_public_replies_hold_only_the_callers_region(
        svc: Suggestions, world: dict[str, Any]) -> None:
    for region, other in ((A, B), (B, A)):
        staff = world[region]["staff"]
        topics = await _ok(await svc.client.get("/v1/supervision-topics", headers=staff))
        assert topics and all(t["region_code"].startswith(region) for t in topics)
        assert world[region]["topic"] in {t["id"] for t in topics}
        assert world[other]["topic"] not in {t["id"] for t in topics}

        fund = await _ok(await svc.client.get(f"/v1/micro-funds/{region}/{YEAR}", headers=staff))
        assert [i["suggestion_id"] for i in fund["items"]] == [world[region]["micro"]]
        assert (await svc.client.get(f"/v1/micro-funds/{other}/{YEAR}", headers=staff)).status_code == 403
        assert (await svc.client.put(f"/v1/micro-funds/{other}/{YEAR}", json={"amount": "1.00"},
                                     headers=staff)).status_code == 403

        audit = await _ok(await svc.client.get("/v1/audit", params={"limit": 500}, headers=staff))
        subjects = {e["subject_id"] for e in audit["items"]}
        assert audit["items"] and all(e["region_code"].startswith(region) for e in audit["items"])
        assert world[region]["replied"] in subjects and not subjects & _ids(world, other)

        public = await _ok(await svc.client.get("/v1/public/replies", params={"year": YEAR, "region_code": region}))
        assert [i["id"] for i in public["items"]] == [world[region]["replied"]]
        assert all(i["region_code"].startswith(region) for i in public["items"])


async def test_a_unit_token_without_its_unit_sees_and_spends_nothing(svc: Suggestions,
                                                                     world: dict[str, Any]) -> None:
    nameless_unit = bearer("unit", sub="unit-without-id")
    listed = await svc.client.get("/v1/suggestions", headers=nameless_unit)
    assert listed.status_code == 403 or listed.json() == [], listed.text
    spent = await svc.client.post(f"/v1/suggestions/{world[B]['micro']}/spending",
                                  json={"amount": "5.00", "note": "不应登记"}, headers=nameless_unit)
    assert spent.status_code == 403, spent.text
    fund = await _ok(await svc.client.get(f"/v1/micro-funds/{B}/{YEAR}", headers=STAFF_B))
    assert fund["spent"] == "10.00" and len(fund["items"]) == 1
    # The unit named in its token sees its own suggestion and no unassigned one.
    own = await _ok(await svc.client.get("/v1/suggestions", headers=bearer("unit", unit_id=world[A]["unit"])))
    assert [item["id"] for item in own] == [world[A]["replied"]]


async def test_a_deputy_without_id_or_staff_without_region_lists_nothing(svc: Suggestions,
                                                                         world: dict[str, Any]) -> None:
    nameless_deputy = bearer("deputy", sub="deputy-without-id")
    regionless_staff = bearer("npc_staff", "", sub="staff-without-region")
    for token, path in ((nameless_deputy, "/v1/suggestions"), (regionless_staff, "/v1/suggestions"),
                        (regionless_staff, "/v1/supervision-topics")):
        resp = await svc.client.get(path, headers=token)
        assert resp.status_code == 403 or resp.json() == [], (path, resp.text)
    spent = await svc.client.post(f"/v1/suggestions/{world[A]['micro']}/spending", json={"amount": "5.00",
                                  "note": "不应登记"}, headers=regionless_staff)
    assert spent.status_code == 403, spent.text
