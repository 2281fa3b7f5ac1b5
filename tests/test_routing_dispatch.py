"""Routing over real PostgreSQL, NATS and HTTP: reports reach the grid platform simulator as signed
tickets, survive its outages, fail for good on a 4xx, and its callbacks move tickets only forward."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from busutil import eventually, stream_messages
from conftest import Servers
from routingutil import (
    STAFF,
    Routing,
    Simulator,
    bearer,
    grid_simulator,
    publish_status,
    routing_events,
    routing_service,
    submit,
)

from services.routing import domain
from services.routing.taxonomy import CATEGORIES, category_of_hint
from shared.contracts import GRID_STREAM

SECRET = "grid-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
async def routing(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Routing]:
    async with routing_service(servers, tmp_path_factory.mktemp("routing")) as service:
        yield service


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with grid_simulator(SECRET, "--callback-delay-ms", "50", log_file=tmp_path / "gridsim.log") as sim:
        yield sim


@pytest.fixture
async def quiet_simulator(tmp_path: Path) -> AsyncIterator[Simulator]:
    """A simulator that takes tickets but leaves the callbacks to the test."""
    async with grid_simulator(SECRET, "--no-callbacks", log_file=tmp_path / "gridsim.log") as sim:
        yield sim


async def events_of(servers: Servers, report_id: str, kind: str) -> list[dict[str, Any]]:
    return [data for subject, data in await routing_events(servers.nats_url, report_id) if subject == kind]


async def ticket_of(servers: Servers, report_id: str) -> dict[str, Any]:
    async def created() -> bool:
        return bool(await events_of(servers, report_id, "routing.ticket.created"))

    await eventually(created, timeout=20, what=f"routing.ticket.created for {report_id}")
    return (await events_of(servers, report_id, "routing.ticket.created"))[0]


async def signed_callback(routing: Routing, body: dict[str, Any], *, secret: str = SECRET,
                          timestamp: int | None = None, signature: str | None = None) -> Any:
    raw = json.dumps(body, ensure_ascii=False).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    headers = {"X-Minyi-Timestamp": ts, "Content-Type": "application/json",
               "X-Minyi-Signature": signature or domain.signature(secret.encode(), ts, raw)}
    return await routing.client.post("/v1/grid/callbacks", content=raw, headers=headers)


async def test_a_report_reaches_the_platform_signed_and_its_callbacks_come_back(
        servers: Servers, routing: Routing, simulator: Simulator) -> None:
    await routing.platform("gp-dispatch", ["340701"], simulator.url, SECRET)
    report_id = await submit(servers.nats_url, "340701001",
                             "幸福路和人民路路口的路灯坏了一个星期，晚上一片漆黑，很不安全")

    created = await ticket_of(servers, report_id)
    assert created["platform_id"] == "gp-dispatch"
    assert created["category"] == "municipal_facilities"
    classified = await events_of(servers, report_id, "routing.report.classified")
    assert classified[0]["handler"] == "grid" and classified[0]["source"] == "text"

    seen = await simulator.ticket(created["ticket_id"])
    assert seen is not None and seen["report_id"] == report_id and seen["region_code"] == "340701001"
    assert seen["deliveries"] == 1

    async def resolved() -> bool:
        return [e["status"] for e in await events_of(servers, report_id, "routing.ticket.updated")] == [
            "accepted", "in_progress", "resolved"]

    await eventually(resolved, timeout=20, what="accepted → in_progress → resolved from the platform")
    resp = await routing.client.get(f"/v1/tickets/{created['ticket_id']}", headers=bearer("station_staff", "340701"))
    assert resp.status_code == 200, resp.text
    ticket = resp.json()
    assert ticket["status"] == "resolved" and ticket["attempts"] == 1 and ticket["last_error"] is None
    assert [h["status"] for h in ticket["history"]] == ["queued", "sent", "accepted", "in_progress", "resolved"]
    assert ticket["history"][-1]["note"]
    # Outside the ticket's region it does not exist.
    other = await routing.client.get(f"/v1/tickets/{created['ticket_id']}", headers=bearer("station_staff", "340702"))
    assert other.status_code == 404


async def test_livelihood_matters_and_places_without_a_platform_stay_with_the_deputy(
        servers: Servers, routing: Routing, simulator: Simulator) -> None:
    await routing.platform("gp-scope", ["340703"], simulator.url, SECRET)
    pension = await submit(servers.nats_url, "340703001", "我父亲的养老金已经两个月没有发放了，社保局一直说在核对")
    nowhere = await submit(servers.nats_url, "340799001", "小区门口的井盖被压坏了，晚上有人差点掉下去")
    hinted = await submit(servers.nats_url, "340703002", "东门外面那条路天天堵，希望加个红绿灯", category="道路交通")

    async def decided() -> bool:
        return all([await events_of(servers, r, "routing.report.classified") for r in (pension, nowhere, hinted)])

    await eventually(decided, timeout=20, what="the three reports classified")
    first = (await events_of(servers, pension, "routing.report.classified"))[0]
    assert (first["category"], first["handler"], first["reason"]) == ("social_security", "deputy", "not_grid_category")
    second = (await events_of(servers, nowhere, "routing.report.classified"))[0]
    assert (second["category"], second["handler"], second["reason"]) == ("municipal_facilities", "deputy",
                                                                         "no_platform")
    third = (await events_of(servers, hinted, "routing.report.classified"))[0]
    assert (third["category"], third["source"], third["handler"]) == ("roads_traffic", "hint", "grid")
    assert not await events_of(servers, pension, "routing.ticket.created")
    assert not await events_of(servers, nowhere, "routing.ticket.created")
    resp = await routing.client.get(f"/v1/decisions/{nowhere}", headers=STAFF)
    assert resp.status_code == 200 and resp.json()["handler"] == "deputy"


async def test_longest_prefix_wins_and_the_nats_transport_carries_tickets_and_statuses(
        servers: Servers, routing: Routing, simulator: Simulator) -> None:
    await routing.platform("gp-city", ["3407"], simulator.url, SECRET)
    await routing.platform("gp-county-nats", ["340704"], None, SECRET)
    city = await submit(servers.nats_url, "340705001", "菜市场门口垃圾桶满了没人清运，臭气熏天")
    county = await submit(servers.nats_url, "340704001", "菜市场门口垃圾桶满了没人清运，臭气熏天")

    assert (await ticket_of(servers, city))["platform_id"] == "gp-city"
    nats_ticket = await ticket_of(servers, county)
    assert nats_ticket["platform_id"] == "gp-county-nats"

    async def on_the_stream() -> list[dict[str, Any]]:
        return [json.loads(data) for subject, _h, data in await stream_messages(servers.nats_url, GRID_STREAM.name)
                if subject == "grid.gp-county-nats.tickets"]

    await eventually(lambda: _truthy(on_the_stream()), timeout=20, what="the ticket on grid.gp-county-nats.tickets")
    body = next(t for t in await on_the_stream() if t["ticket_id"] == nats_ticket["ticket_id"])
    assert body["report_id"] == county and body["category"] == "sanitation_environment"
    assert body["callback_url"].endswith("/v1/grid/callbacks")

    # Another platform may not move this platform's ticket, even signed: that message goes to dead letters.
    await publish_status(servers.nats_url, "gp-city", {"ticket_id": nats_ticket["ticket_id"], "status": "resolved",
                                                       "at": "2026-11-21T10:00:00+08:00"}, SECRET,
                         msg_id="cross-platform-1")
    await publish_status(servers.nats_url, "gp-county-nats", {"ticket_id": nats_ticket["ticket_id"],
                                                              "status": "accepted", "at": "2026-11-21T10:01:00+08:00"},
                         SECRET, msg_id="own-platform-1")

    async def accepted() -> bool:
        return [e["status"] for e in await events_of(servers, county, "routing.ticket.updated")] == ["accepted"]

    await eventually(accepted, timeout=20, what="accepted over the nats transport")

    async def dead_lettered() -> bool:
        return any(subject.startswith("deadletter.routing.grid.gp-city.events")
                   for subject, _h, _d in await stream_messages(servers.nats_url, "DEADLETTER_ROUTING"))

    await eventually(dead_lettered, timeout=30, what="the cross-platform status in routing's dead letters")
    resp = await routing.client.get(f"/v1/tickets/{nats_ticket['ticket_id']}", headers=STAFF)
    assert resp.json()["status"] == "accepted"


async def _truthy(awaitable: Any) -> bool:
    return bool(await awaitable)


async def test_tickets_wait_out_an_outage_and_arrive_once_when_the_platform_is_back(
        servers: Servers, routing: Routing, simulator: Simulator) -> None:
    await routing.platform("gp-outage", ["340706"], simulator.url, SECRET)
    await simulator.configure(down=True)
    reports = [await submit(servers.nats_url, "340706001", f"{n}号楼前面的人行道砖块松动翘起，老人走路容易绊倒")
               for n in range(1, 5)]

    async def failing() -> bool:
        resp = await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)
        body = resp.json()
        return body["failures"] >= 3 and body["queued"] == len(reports)

    await eventually(failing, timeout=30, what="the platform marked failing with every ticket queued")
    platform = (await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)).json()
    assert "503" in platform["last_error"]
    for report_id in reports:
        assert not await events_of(servers, report_id, "routing.ticket.created")
    # Backed off as a whole: while down, one probe at a time, not every ticket every time. Counted
    # between two moments of the outage, so the first pass (which may hold any of the tickets) is out.
    first = (await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)).json()["failures"]
    tried_before = (await simulator.stats())["failed_injected"]

    async def probed_twice_more() -> bool:
        resp = await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)
        return bool(resp.json()["failures"] >= first + 2)

    await eventually(probed_twice_more, timeout=30, what="two more probes of the platform")
    tried = (await simulator.stats())["failed_injected"] - tried_before
    # Read after the simulator's count: probing goes on meanwhile, and failures only grow.
    failures = (await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)).json()["failures"] - first
    assert tried <= failures + 1, (tried, failures)

    await simulator.configure(down=False)
    tickets = [await ticket_of(servers, r) for r in reports]
    seen = await simulator.tickets()
    ids = {t["ticket_id"] for t in tickets}
    assert {t["ticket_id"] for t in seen if t["ticket_id"] in ids} == ids
    assert all(t["deliveries"] == 1 for t in seen if t["ticket_id"] in ids)
    platform = (await routing.client.get("/v1/grid-platforms/gp-outage", headers=STAFF)).json()
    assert (platform["failures"], platform["queued"], platform["last_error"]) == (0, 0, None)


async def test_a_refusal_is_final_and_goes_back_with_the_platforms_answer(
        servers: Servers, routing: Routing, simulator: Simulator) -> None:
    await routing.platform("gp-refuse", ["340707"], simulator.url, SECRET)
    await simulator.configure(reject_marker="【测试拒收】")
    report_id = await submit(servers.nats_url, "340707001", "【测试拒收】小区里的垃圾站好几天没人清运了")

    async def failed() -> list[dict[str, Any]]:
        return await events_of(servers, report_id, "routing.ticket.updated")

    await eventually(lambda: _truthy(failed()), timeout=20, what="the refused ticket reported")
    update = (await failed())[0]
    assert update["status"] == "failed" and "422" in update["note"] and "不符合受理范围" in update["note"]
    assert not await events_of(servers, report_id, "routing.ticket.created")
    resp = await routing.client.get(f"/v1/tickets?report_id={report_id}", headers=STAFF)
    ticket = resp.json()[0]
    assert ticket["status"] == "failed" and ticket["attempts"] == 1 and ticket["next_attempt_at"] is None


async def test_callbacks_are_verified_applied_once_and_never_move_backwards(
        servers: Servers, routing: Routing, quiet_simulator: Simulator) -> None:
    await routing.platform("gp-callbacks", ["340708"], quiet_simulator.url, SECRET)
    report_id = await submit(servers.nats_url, "340708001", "公园里的大树枝干断了挂在半空，随时会掉下来砸到人")
    ticket_id = (await ticket_of(servers, report_id))["ticket_id"]
    at = "2026-11-21T09:00:00+08:00"

    unsigned = await routing.client.post("/v1/grid/callbacks", json={"ticket_id": ticket_id, "status": "accepted",
                                                                     "at": at})
    wrong = await signed_callback(routing, {"ticket_id": ticket_id, "status": "accepted", "at": at},
                                  secret="another-secret-0123456789")
    stale = await signed_callback(routing, {"ticket_id": ticket_id, "status": "accepted", "at": at},
                                  timestamp=int(time.time()) - 301)
    unknown = await signed_callback(routing, {"ticket_id": "no-such-ticket", "status": "accepted", "at": at})
    unsigned_unknown = await routing.client.post("/v1/grid/callbacks", headers={"X-Minyi-Timestamp": str(int(
        time.time()))}, json={"ticket_id": "no-such-ticket", "status": "accepted", "at": at})
    unsigned_known = await routing.client.post("/v1/grid/callbacks", headers={"X-Minyi-Timestamp": str(int(
        time.time()))}, json={"ticket_id": ticket_id, "status": "accepted", "at": at})
    for resp, words in ((unsigned, "X-Minyi-Timestamp"), (wrong, "签名不正确"), (stale, "5 分钟"),
                        (unknown, "签名不正确"), (unsigned_unknown, "X-Minyi-Signature"),
                        (unsigned_known, "X-Minyi-Signature")):
        assert resp.status_code == 401, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert words in resp.json()["detail"]
    # A prober without the secret cannot tell a ticket that exists from one that does not.
    for known, unknown_one in ((wrong, unknown), (unsigned_known, unsigned_unknown)):
        assert ({k: v for k, v in known.json().items() if k != "instance"}
                == {k: v for k, v in unknown_one.json().items() if k != "instance"})
    bad_status = await signed_callback(routing, {"ticket_id": ticket_id, "status": "done", "at": at})
    assert bad_status.status_code == 422 and bad_status.json()["errors"][0]["field"] == "status"

    first = await signed_callback(routing, {"ticket_id": ticket_id, "status": "accepted", "at": at})
    again = await signed_callback(routing, {"ticket_id": ticket_id, "status": "accepted", "at": at})
    assert (first.status_code, first.json()["applied"]) == (200, True)
    assert (again.status_code, again.json()["applied"]) == (200, False)
    done = await signed_callback(routing, {"ticket_id": ticket_id, "status": "resolved", "note": "已修剪断枝",
                                           "at": "2026-11-21T11:00:00+08:00"})
    late = await signed_callback(routing, {"ticket_id": ticket_id, "status": "in_progress",
                                           "at": "2026-11-21T10:00:00+08:00"})
    assert done.json() == {"ticket_id": ticket_id, "status": "resolved", "applied": True}
    assert late.json() == {"ticket_id": ticket_id, "status": "resolved", "applied": False}

    async def two_updates() -> bool:
        return len(await events_of(servers, report_id, "routing.ticket.updated")) >= 2

    await eventually(two_updates, timeout=20, what="the two applied statuses published")
    updates = await events_of(servers, report_id, "routing.ticket.updated")
    assert [(u["status"], u.get("note")) for u in updates] == [("accepted", None), ("resolved", "已修剪断枝")]
    history = (await routing.client.get(f"/v1/tickets/{ticket_id}", headers=STAFF)).json()["history"]
    assert [(h["status"], h["applied"]) for h in history][-4:] == [
        ("accepted", True), ("accepted", False), ("resolved", True), ("in_progress", False)]


async def test_a_returned_ticket_carries_the_platforms_note(
        servers: Servers, routing: Routing, quiet_simulator: Simulator) -> None:
    await routing.platform("gp-return", ["340709"], quiet_simulator.url, SECRET)
    report_id = await submit(servers.nats_url, "340709001", "楼下烧烤摊油烟直往楼上窗户里灌，晚上还特别吵")
    ticket_id = (await ticket_of(servers, report_id))["ticket_id"]
    resp = await signed_callback(routing, {"ticket_id": ticket_id, "status": "returned",
                                           "note": "该摊位位于商场内部，不属于网格受理范围",
                                           "at": "2026-11-21T12:00:00+08:00"})
    assert resp.status_code == 200 and resp.json()["applied"] is True
    after = await signed_callback(routing, {"ticket_id": ticket_id, "status": "resolved",
                                            "at": "2026-11-21T13:00:00+08:00"})
    assert after.json()["applied"] is False

    async def returned() -> list[dict[str, Any]]:
        return await events_of(servers, report_id, "routing.ticket.updated")

    await eventually(lambda: _truthy(returned()), timeout=20, what="returned published")
    assert [(u["status"], u["note"]) for u in await returned()] == [
        ("returned", "该摊位位于商场内部，不属于网格受理范围")]


async def test_platform_registration_checks_its_input_and_keeps_the_secret_to_itself(routing: Routing) -> None:
    base = {"name": "测试平台", "region_prefixes": ["340710"], "transport": "http",
            "url": "http://127.0.0.1:9/", "secret": "s" * 20}
    cases = [
        ({**base, "transport": "http", "url": None}, "url"),
        ({**base, "region_prefixes": ["34a7"]}, "region_prefixes"),
        ({**base, "secret": "short"}, "secret"),
        ({**base, "categories": ["education"]}, "categories"),
    ]
    for body, field in cases:
        resp = await routing.client.put("/v1/grid-platforms/gp-bad", json=body, headers=bearer("admin"))
        assert resp.status_code == 422, (field, resp.text)
        assert field in json.dumps(resp.json()["errors"]), (field, resp.text)
    missing = await routing.client.get("/v1/grid-platforms/gp-bad", headers=STAFF)
    assert missing.status_code == 404
    outside = await routing.client.put("/v1/grid-platforms/gp-bad", json=base, headers=bearer("admin", "3201"))
    assert outside.status_code == 403
    staff = await routing.client.put("/v1/grid-platforms/gp-bad", json=base, headers=STAFF)
    assert staff.status_code == 403
    made = await routing.client.put("/v1/grid-platforms/gp-good", json=base, headers=bearer("admin", "3407"))
    assert made.status_code == 201 and "secret" not in made.json()
    changed = await routing.client.put("/v1/grid-platforms/gp-good", json={**base, "name": "改名"},
                                       headers=bearer("admin", "3407"))
    assert changed.status_code == 200 and changed.json()["version"] == 2
    listed = await routing.client.get("/v1/grid-platforms", headers=bearer("npc_staff", "340710"))
    assert "gp-good" in [p["id"] for p in listed.json()]
    elsewhere = await routing.client.get("/v1/grid-platforms", headers=bearer("npc_staff", "3201"))
    assert "gp-good" not in [p["id"] for p in elsewhere.json()]


async def test_the_categories_are_public_in_the_taxonomys_order(routing: Routing) -> None:
    resp = await routing.client.get("/v1/categories")  # no token: the citizens' report form
    assert resp.status_code == 200, resp.text
    listed = resp.json()
    assert listed == [{"code": c.code, "label": c.label, "grid": c.grid} for c in CATEGORIES]
    assert listed[0] == {"code": "municipal_facilities", "label": "市政设施", "grid": True}
    assert [c["code"] for c in listed if not c["grid"]][-1] == "other" == listed[-1]["code"]
    # What a report's category hint may hold, code or label alike.
    assert all(category_of_hint(c[key]) == (c["code"] if c["code"] != "other" else None)
               for c in listed for key in ("code", "label"))


async def test_lists_show_a_region_only_its_own_rows(servers: Servers, routing: Routing,
                                                     quiet_simulator: Simulator) -> None:
    """Checked by what comes back: staff of one county never get a row of the next one."""
    await routing.platform("gp-scope-a", ["340731"], quiet_simulator.url, SECRET)
    await routing.platform("gp-scope-b", ["340732"], quiet_simulator.url, SECRET)
    mine = [await submit(servers.nats_url, "340731001", f"{n}号楼下水道堵了，污水漫到路面上") for n in (1, 2)]
    theirs = await submit(servers.nats_url, "340732001", "菜市场后面的路灯全不亮了")
    for report_id in [*mine, theirs]:
        await ticket_of(servers, report_id)
    for role in ("npc_staff", "station_staff"):
        listed = await routing.client.get("/v1/tickets?limit=200", headers=bearer(role, "340731"))
        assert listed.status_code == 200, listed.text
        rows = listed.json()
        assert rows and all(t["region_code"].startswith("340731") for t in rows), rows
        assert {t["report_id"] for t in rows} >= set(mine) and theirs not in {t["report_id"] for t in rows}
        # Asking for the other county's platform or report by name does not widen the scope.
        for query in ("platform_id=gp-scope-b", f"report_id={theirs}"):
            narrowed = await routing.client.get(f"/v1/tickets?{query}", headers=bearer(role, "340731"))
            assert narrowed.status_code == 200 and narrowed.json() == [], narrowed.text
        other = await routing.client.get("/v1/tickets?limit=200", headers=bearer(role, "340732"))
        assert [t["report_id"] for t in other.json() if t["region_code"].startswith("340732")] == [
            t["report_id"] for t in other.json()]
        assert theirs in {t["report_id"] for t in other.json()}
    platforms = await routing.client.get("/v1/grid-platforms", headers=bearer("npc_staff", "340731"))
    ids = [p["id"] for p in platforms.json()]
    assert "gp-scope-a" in ids and "gp-scope-b" not in ids
    assert all(any("340731".startswith(prefix) or prefix.startswith("340731") for prefix in p["region_prefixes"])
               for p in platforms.json()), platforms.json()
