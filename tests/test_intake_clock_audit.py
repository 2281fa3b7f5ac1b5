"""Changes to what the statutory deadlines are counted on (a year's calendar, a region's own limits) are in intake's
audit log, with who made them and what was there before and after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import Servers
from intakeutil import Clock, bearer, declare_upstream_streams, intake_app

# A year no test counts deadlines in, and a county of its own.
YEAR = 2031
REGION = "349901"
ADMIN = bearer("admin", sub="calendar-keeper")
STAFF = bearer("npc_staff", REGION[:4], sub="county-clerk")


@pytest.fixture(scope="module")
async def client(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    await declare_upstream_streams(servers.nats_url)
    async with intake_app(servers, tmp_path_factory.mktemp("intake-clock-audit"), Clock()) as (client, _, _):
        yield client


async def entries(client: httpx.AsyncClient, action: str, subject_id: str) -> list[dict[str, Any]]:
    resp = await client.get("/v1/audit", params={"action": action, "subject_id": subject_id}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return list(reversed(resp.json()["items"]))  # oldest first


async def test_loading_a_year_s_calendar_is_audited_with_before_and_after(client: httpx.AsyncClient) -> None:
    first = {"holidays": ["2031-01-01", "2031-10-01"], "workdays": ["2031-09-27"]}
    resp = await client.put(f"/v1/calendar/{YEAR}", headers=ADMIN, json=first)
    assert resp.status_code == 200, resp.text
    second = {"holidays": ["2031-10-02", "2031-01-01"], "workdays": []}
    resp = await client.put(f"/v1/calendar/{YEAR}", headers=ADMIN, json=second)
    assert resp.status_code == 200, resp.text

    loaded = await entries(client, "calendar.loaded", str(YEAR))
    assert [(e["actor"], e["actor_roles"], e["subject_type"], e["region_code"]) for e in loaded] == [
        ("calendar-keeper", ["admin"], "calendar", "")] * 2
    assert [e["detail"]["before"] for e in loaded] == [
        None, {"holidays": ["2031-01-01", "2031-10-01"], "workdays": ["2031-09-27"]}]
    assert [e["detail"]["after"] for e in loaded] == [
        {"holidays": ["2031-01-01", "2031-10-01"], "workdays": ["2031-09-27"]},
        {"holidays": ["2031-01-01", "2031-10-02"], "workdays": []}]
    assert all(isinstance(e["detail"]["recomputed"], int) for e in loaded)


async def test_a_region_s_clock_rules_are_audited_with_before_and_after(client: httpx.AsyncClient) -> None:
    resp = await client.put(f"/v1/clock-rules/{REGION}", headers=STAFF, json={"ack_days": 3, "reply_days": 10})
    assert resp.status_code == 200, resp.text
    resp = await client.put(f"/v1/clock-rules/{REGION}", headers=STAFF,
                            json={"ack_days": 2, "reply_days": 5, "remind_hour": 8, "close_days": 20})
    assert resp.status_code == 200, resp.text
    # A refused change leaves no entry.
    resp = await client.put(f"/v1/clock-rules/{REGION}", headers=STAFF, json={"ack_days": 9, "reply_days": 4})
    assert resp.status_code == 422, resp.text

    changed = await entries(client, "clock_rules.changed", REGION)
    assert [(e["actor"], e["subject_type"], e["region_code"]) for e in changed] == [
        ("county-clerk", "clock_rules", REGION)] * 2
    assert [(e["detail"]["before"], e["detail"]["after"]) for e in changed] == [
        (None, {"ack_days": 3, "reply_days": 10, "remind_hour": 9, "close_days": 15}),
        ({"ack_days": 3, "reply_days": 10, "remind_hour": 9, "close_days": 15},
         {"ack_days": 2, "reply_days": 5, "remind_hour": 8, "close_days": 20})]
    # The county's staff read it within their region.
    resp = await client.get("/v1/audit", params={"action": "clock_rules.changed"}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert {e["subject_id"] for e in resp.json()["items"]} == {REGION}


async def test_clock_rules_are_listed_within_the_callers_region_by_content(client: httpx.AsyncClient) -> None:
    # A province no other test counts deadlines in: two counties, and two townships of the first with
    # rules of their own.
    body = {"ack_days": 2, "remind_hour": 9, "close_days": 7}
    for prefix in ("369911", "369911001", "369911002", "369922"):
        resp = await client.put(f"/v1/clock-rules/{prefix}", headers=ADMIN,
                                json={**body, "reply_days": len(prefix)})
        assert resp.status_code == 200, resp.text

    async def listed(region: str) -> set[str]:
        resp = await client.get("/v1/clock-rules", headers=bearer("npc_staff", region))
        assert resp.status_code == 200, resp.text
        return {r["region_prefix"] for r in resp.json()}

    # A township sees its own rules and its county's, which govern it; never its neighbour's.
    assert await listed("369911001") == {"369911", "369911001"}
    # The county sees its townships' too, and not the other county's.
    assert await listed("369911") == {"369911", "369911001", "369911002"}
    # The province sees both counties; a neighbour province none of them.
    assert {"369911", "369922"} <= await listed("36")
    assert not await listed("37") & {"369911", "369911001", "369911002", "369922"}


@pytest.mark.parametrize(("name", "path"), [("until", "/v1/audit"), ("since", "/v1/audit"),
                                             ("received_from", "/v1/reports"), ("received_to", "/v1/reports"),
                                             ("start_date", "/open311/v2/requests.json")])
@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T07:59:59+08:00"])
async def test_a_time_past_what_utc_can_hold_is_refused_with_the_field_named(
        client: httpx.AsyncClient, name: str, path: str, moment: str) -> None:
    # Either one is a valid RFC 3339 time that leaves years 1–9999 once turned to UTC; it failed the
    # query that compared it, a 500.
    resp = await client.get(path, params={name: moment}, headers=STAFF)
    assert resp.status_code in (400, 422), resp.text
    assert "超出可处理的范围" in resp.text, resp.text
    assert name in resp.text, resp.text
