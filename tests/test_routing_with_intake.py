"""The citizen's side of routing: a report filed at intake reaches the grid platform simulator, and
the platform's work comes back into the report and its public receipt; a refused ticket comes
back to the deputy. Identity, intake and routing on the real servers, the simulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from busutil import eventually
from conftest import Servers
from intakeutil import Intake, directory, intake_stack
from routingutil import Routing, Simulator, grid_simulator, routing_events, routing_service

SECRET = "grid-secret-for-intake-chain-0001"
REGION = "340730"


@pytest.fixture(scope="module")
async def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[tuple[Intake, Routing, Simulator]]:
    home = tmp_path_factory.mktemp("routing-intake")
    async with intake_stack(servers, home, flood_limit="1000/minute") as intake, \
            routing_service(servers, home / "routing") as routing, \
            grid_simulator(SECRET, "--callback-delay-ms", "100", log_file=home / "gridsim.log") as sim:
        await directory(intake, REGION, None, {"D1": ["S1"]}, ["S1"])
        await routing.platform("gp-chain", [REGION], sim.url, SECRET)
        yield intake, routing, sim


async def receipt(intake: Intake, code: str) -> dict[str, Any]:
    resp = await intake.client.get(f"/v1/receipts/{code}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_the_platforms_resolution_answers_the_citizen(stack: tuple[Intake, Routing, Simulator]) -> None:
    intake, _routing, sim = stack
    resp = await intake.client.post("/v1/reports", json={
        "channel": "miniprogram", "code": intake.codes["D1"], "anonymous": True,
        "content": "人民路和建设路交叉口的红绿灯坏了两天了，早高峰车辆乱成一团"})
    assert resp.status_code == 201, resp.text
    report = resp.json()

    async def answered() -> dict[str, Any] | None:
        seen = await receipt(intake, report["receipt_code"])
        return seen if seen["status"] == "answered" else None

    await eventually(lambda: _truthy(answered()), timeout=30, what="the report answered by the grid platform")
    seen = await receipt(intake, report["receipt_code"])
    assert seen["category"] == "roads_traffic"
    timeline = " ".join(e["note"] for e in seen["timeline"])
    assert "基层治理平台" in timeline
    tickets = [t for t in await sim.tickets() if t["report_id"] == report["id"]]
    assert len(tickets) == 1 and tickets[0]["deliveries"] == 1


async def test_a_refused_ticket_goes_back_to_the_deputy(stack: tuple[Intake, Routing, Simulator]) -> None:
    intake, _routing, sim = stack
    await sim.configure(reject_marker="【拒收】")
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "code": intake.codes["D1"], "anonymous": True,
        "content": "【拒收】小区北门外的垃圾站一周没清运了，味道很大"})
    assert resp.status_code == 201, resp.text
    report = resp.json()

    async def handed_back() -> bool:
        seen = await receipt(intake, report["receipt_code"])
        return any("未能转交基层治理平台" in e["note"] for e in seen["timeline"])

    await eventually(handed_back, timeout=30, what="the refusal on the citizen's timeline")
    seen = await receipt(intake, report["receipt_code"])
    assert seen["status"] == "submitted"
    # The platform's own words are for staff, not for the public receipt.
    assert not any("不符合受理范围" in e["note"] for e in seen["timeline"])


async def test_ticket_events_carry_the_version_of_each_change(stack: tuple[Intake, Routing, Simulator]) -> None:
    # Intake applies them newest-wins by this version: with several replicas they can arrive out of order.
    intake, routing, _sim = stack
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "code": intake.codes["D1"], "anonymous": True,
        "content": "幸福小区12号楼门口的路灯不亮了，晚上走路很危险"})
    assert resp.status_code == 201, resp.text
    report_id = resp.json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []

    async def resolved() -> bool:
        nonlocal events
        events = await routing_events(routing.runtime.settings.nats_url, report_id)
        return any(data.get("status") == "resolved" for _subject, data in events)

    await eventually(resolved, timeout=30, what="routing.ticket.updated resolved for the report")
    told = sorted((data["version"], subject, data.get("status")) for subject, data in events
                  if subject.startswith("routing.ticket."))
    # Opened queued (1), sent (2), then each status the platform called back: one versioned status each.
    assert told == [(2, "routing.ticket.created", "sent"), (3, "routing.ticket.updated", "accepted"),
                    (4, "routing.ticket.updated", "in_progress"), (5, "routing.ticket.updated", "resolved")], told


async def _truthy(awaitable: Any) -> bool:
    return bool(await awaitable)
