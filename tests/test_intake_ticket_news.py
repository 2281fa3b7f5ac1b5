"""Routing's ticket news reaching intake out of order, on the real PostgreSQL and NATS.

Several replicas of routing's relay, or of intake's consumers, can deliver a ticket's events in
another order than routing wrote them. Each event carries the ticket's version; intake applies the
newest and sets an older one aside, so a late "in progress" never follows a "returned" on the
citizen's receipt. Events without a version (a routing not yet upgraded) are applied as before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from busutil import conforming, consumer_state
from conftest import Servers
from intakeutil import Intake, bearer, directory, intake_stack, wait_for
from prometheus_client.parser import text_string_to_metric_families

from services.intake.domain import NOTES
from shared.contracts import STREAMS

REGION = "340618"
UPDATES = "intake-ticket-updated"


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-ticket-news"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {"D1": []}, [])
        yield it


async def _publish(intake: Intake, kind: str, data: dict[str, Any]) -> int:
    """One routing event on the real stream, under a fresh id; its stream sequence."""
    body = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/minyi/routing", "type": kind,
                       "time": "2026-11-20T10:00:00+08:00", "data": conforming(kind, data)}).encode()
    nc = await nats.connect(intake.runtime.settings.nats_url)
    try:
        ack = await nc.jetstream().publish(kind, body, timeout=5)
        return int(ack.seq)
    finally:
        await nc.close()


async def _consumed(intake: Intake, durable: str, seq: int) -> None:
    """Wait until intake's consumer has acknowledged everything up to stream sequence `seq`."""

    async def done() -> bool:
        info = await consumer_state(intake.runtime.settings.nats_url, STREAMS["routing"].name, durable)
        return bool(info.ack_floor.stream_seq >= seq and not info.num_ack_pending)

    await wait_for(done, timeout=20, what=f"{durable} to acknowledge stream sequence {seq}")


async def _file(intake: Intake) -> dict[str, Any]:
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "code": intake.codes["D1"], "anonymous": True,
        "content": "村口的排水沟堵了，下雨天污水漫进院子"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _detail(intake: Intake, report_id: str) -> dict[str, Any]:
    resp = await intake.client.get(f"/v1/reports/{report_id}", headers=bearer("npc_staff", REGION))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def _public_notes(intake: Intake, receipt_code: str) -> list[str]:
    resp = await intake.client.get(f"/v1/receipts/{receipt_code}")
    assert resp.status_code == 200, resp.text
    return [str(e["note"]) for e in resp.json()["timeline"]]


async def _stale_count(intake: Intake) -> float:
    resp = await intake.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return sum(s.value for family in text_string_to_metric_families(resp.text) for s in family.samples
               if s.name == "minyi_stale_ticket_news_total" and s.labels.get("event") == "routing.ticket.updated")


async def _dispatched(intake: Intake, ticket: str, report: dict[str, Any], version: int | None) -> None:
    data: dict[str, Any] = {"ticket_id": ticket, "report_id": report["id"], "platform_id": "order-grid"}
    if version is not None:
        data["version"] = version
    seq = await _publish(intake, "routing.ticket.created", data)
    await _consumed(intake, "intake-ticket-created", seq)
    assert (await _detail(intake, report["id"]))["status"] == "dispatched"


async def _updated(intake: Intake, ticket: str, report: dict[str, Any], status: str, version: int | None,
                   note: str | None = None) -> None:
    data: dict[str, Any] = {"ticket_id": ticket, "report_id": report["id"], "platform_id": "order-grid",
                            "status": status}
    if version is not None:
        data["version"] = version
    if note is not None:
        data["note"] = note
    await _consumed(intake, UPDATES, await _publish(intake, "routing.ticket.updated", data))


async def test_an_older_in_progress_after_returned_stays_off_the_citizens_receipt(intake: Intake) -> None:
    report = await _file(intake)
    before = await _stale_count(intake)
    await _dispatched(intake, "order-T1", report, version=2)
    await _updated(intake, "order-T1", report, "returned", version=3, note="不属于网格事项")
    await _updated(intake, "order-T1", report, "in_progress", version=2)

    notes = await _public_notes(intake, report["receipt_code"])
    returned = notes.index(NOTES["grid_returned"])
    later = notes[returned + 1:]
    assert NOTES["grid_in_progress"] not in later and NOTES["grid_accepted"] not in later, notes
    assert NOTES["grid_in_progress"] not in notes, "version 2 came after version 3 and must not be applied"
    detail = await _detail(intake, report["id"])
    assert detail["status"] == "submitted", "returned to the deputy, and stays so"
    assert await _stale_count(intake) == before + 1


async def test_the_same_news_told_again_under_a_new_id_is_written_once(intake: Intake) -> None:
    # A replay past the stream's duplicate window: a new event id, so only the version tells.
    report = await _file(intake)
    await _dispatched(intake, "order-T2", report, version=2)
    for _ in range(2):
        await _updated(intake, "order-T2", report, "accepted", version=3)
    notes = await _public_notes(intake, report["receipt_code"])
    assert notes.count(NOTES["grid_accepted"]) == 1, notes


async def test_news_without_a_version_is_applied_as_it_comes(intake: Intake) -> None:
    # During a rolling upgrade routing replicas not yet upgraded send events without a version,
    # between those of upgraded ones.
    report = await _file(intake)
    await _dispatched(intake, "order-T3", report, version=2)
    await _updated(intake, "order-T3", report, "accepted", version=None)
    await _updated(intake, "order-T3", report, "returned", version=3)
    await _updated(intake, "order-T3", report, "in_progress", version=None)
    notes = await _public_notes(intake, report["receipt_code"])
    assert [n for n in notes if n.startswith("基层治理平台")] == [
        NOTES["grid_accepted"], NOTES["grid_returned"], NOTES["grid_in_progress"]], notes


async def test_a_late_announcement_of_the_ticket_is_set_aside_too(intake: Intake) -> None:
    # created (version 2) comes through another consumer and can arrive after the ticket was returned
    # (version 3): the report stays with the deputy, and the citizen is not told it was sent again.
    report = await _file(intake)
    await _updated(intake, "order-T4", report, "accepted", version=3)
    await _updated(intake, "order-T4", report, "returned", version=4)
    seq = await _publish(intake, "routing.ticket.created", {
        "ticket_id": "order-T4", "report_id": report["id"], "platform_id": "order-grid", "version": 2})
    await _consumed(intake, "intake-ticket-created", seq)
    detail = await _detail(intake, report["id"])
    assert detail["status"] == "submitted", detail["status"]
    notes = await _public_notes(intake, report["receipt_code"])
    assert notes.count(NOTES["dispatched"]) == 1, notes
