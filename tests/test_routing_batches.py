"""Routing's `intake.report.submitted` consumer writes what one fetch brings in one transaction:
a poison event in a batch is taken out and dead-lettered alone while the others are routed, and
events that come again (the same event id, or the same report under another id, even twice in one
batch) open no second decision, ticket, hotspot placement or event."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from busutil import consumer_state, event_body, eventually, publish, stream_messages
from conftest import Servers
from routingutil import Routing, routing_events, routing_service, submitted_event
from sqlalchemy import func, select

from services.routing.models import HotspotReport, RoutingDecision, Ticket
from shared.bus.streams import dead_letter_stream
from shared.contracts import STREAMS
from shared.ids import new_id

SECRET = "grid-secret-for-batch-tests-0123456789"
DURABLE = "routing-submitted"
# Distinct problems at distinct places, so that the reports do not all fall into one cluster.
TEXTS = ("{n}号楼门口的路灯坏了好几天，晚上一片漆黑", "幸福小区{n}栋楼下垃圾堆了一周没人清运",
         "长山路{n}号门口下水道堵了，污水冒到路面上")


async def publish_report(servers: Servers, data: dict[str, Any], *, event_id: str | None = None,
                         msg_id: str | None = None) -> str:
    event_id = event_id or new_id()
    await publish(servers.nats_url, "intake.report.submitted", event_body(event_id, "intake.report.submitted", data),
                  msg_id=msg_id or event_id)
    return event_id


async def counts(routing: Routing, report_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """For each table routing writes per report: how many rows each of `report_ids` has."""
    out: dict[str, dict[str, int]] = {}
    async with routing.runtime.sessions()() as session:
        for name, column in (("decisions", RoutingDecision.report_id), ("tickets", Ticket.report_id),
                             ("hotspot_reports", HotspotReport.report_id)):
            rows = (await session.execute(select(column, func.count()).where(column.in_(report_ids))
                                          .group_by(column))).all()
            out[name] = {str(r[0]): int(r[1]) for r in rows}
    return out


async def all_settled(servers: Servers) -> bool:
    info = await consumer_state(servers.nats_url, STREAMS["intake"].name, DURABLE)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def dead_letters(servers: Servers) -> list[dict[str, Any]]:
    return [json.loads(data) for subject, _h, data in await stream_messages(servers.nats_url,
                                                                           dead_letter_stream("routing").name)
            if subject == "deadletter.routing.intake.report.submitted"]


async def with_platform(servers: Servers, home: Path) -> None:
    """Routing once to register the nats-transport platform of the tests' region (and to create the
    durable consumer), then stopped: what is published next waits in the stream, to be fetched
    together when routing starts again."""
    async with routing_service(servers, home) as routing:
        await routing.platform("gp-batch", ["341302"], None, SECRET)
        await eventually(lambda: all_settled(servers), timeout=30, what="routing's backlog consumed")


def failed_batches(caplog: pytest.LogCaptureFixture) -> list[int]:
    sizes = []
    for record in caplog.records:
        found = re.match(rf"{DURABLE}: a batch of (\d+) failed", record.getMessage())
        if found:
            sizes.append(int(found.group(1)))
    return sizes


async def test_a_poison_report_is_dead_lettered_alone_and_its_batch_is_routed(
        servers: Servers, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minyi.consumer")
    await with_platform(servers, tmp_path / "setup")
    before = len(await dead_letters(servers))
    good: list[str] = []
    for n in range(12):
        report_id, data = submitted_event("341302100000", TEXTS[n % len(TEXTS)].format(n=n))
        good.append(report_id)
        await publish_report(servers, data)
        if n == 6:
            # Valid by the event's model, refused by the database (no region code is 41 characters
            # long): a failure retrying cannot fix, found only inside the batch's transaction.
            poison_id, poison = submitted_event("341302" + "0" * 35, "路灯坏了，晚上很黑")
            poison_event = await publish_report(servers, poison)
    async with routing_service(servers, tmp_path / "routing", max_deliver=3) as routing:
        async def poison_dead() -> bool:
            return len(await dead_letters(servers)) > before

        await eventually(poison_dead, timeout=60, what="the poison report in routing's dead letters")
        await eventually(lambda: all_settled(servers), timeout=30, what="every message acknowledged")
        found = await counts(routing, [*good, poison_id])

    assert any(size > 1 for size in failed_batches(caplog)), \
        f"the poison never shared a batch with good reports: {failed_batches(caplog)}"
    letters = (await dead_letters(servers))[before:]
    assert [json.loads(letter["original"]["text"])["id"] for letter in letters] == [poison_event]
    assert letters[0]["deliveries"] == 3, "a failure that might pass is retried up to max_deliver"
    assert "region_code" in letters[0]["error"] or "too long" in letters[0]["error"], letters[0]["error"]
    for table in ("decisions", "tickets", "hotspot_reports"):
        assert found[table] == dict.fromkeys(good, 1), f"{table}: {found[table]}"
    classified = [data["report_id"] for subject, data in await routing_events(servers.nats_url)
                  if subject == "routing.report.classified" and data["report_id"] in {*good, poison_id}]
    assert sorted(classified) == sorted(good)


async def test_reports_that_come_again_are_routed_once(servers: Servers, tmp_path: Path) -> None:
    await with_platform(servers, tmp_path / "setup")
    first: list[tuple[str, str, dict[str, Any]]] = []
    for n in range(8):
        report_id, data = submitted_event("341302100000", TEXTS[n % len(TEXTS)].format(n=100 + n))
        first.append((report_id, await publish_report(servers, data), data))
    async with routing_service(servers, tmp_path / "routing-1") as routing:
        await eventually(lambda: all_settled(servers), timeout=30, what="the first reports routed")
        assert (await counts(routing, [r for r, _, _ in first]))["tickets"] == dict.fromkeys(
            [r for r, _, _ in first], 1)

    # While routing is down: each event again under its own id (a redelivery, as after a crash
    # between the commit and the ack), each report again under a new id (a replay), and a new
    # report twice under two ids; fetched together when routing is back.
    for _report_id, event_id, data in first:
        await publish_report(servers, data, event_id=event_id, msg_id=f"again-{event_id}")
        await publish_report(servers, data)
    twice_id, twice = submitted_event("341302100000", "菜市场门口下水道堵了，污水冒到路面上")
    await publish_report(servers, twice)
    await publish_report(servers, twice)
    report_ids = [r for r, _, _ in first] + [twice_id]
    async with routing_service(servers, tmp_path / "routing-2") as routing:
        await eventually(lambda: all_settled(servers), timeout=30, what="the repeated events consumed")

        async def relayed() -> bool:
            return await routing.runtime.relay.backlog() == 0

        await eventually(relayed, timeout=30, what="routing's events published")
        found = await counts(routing, report_ids)

    for table in ("decisions", "tickets", "hotspot_reports"):
        assert found[table] == dict.fromkeys(report_ids, 1), f"{table}: {found[table]}"
    told: dict[tuple[str, str], int] = {}
    for subject, data in await routing_events(servers.nats_url):
        if data.get("report_id") in report_ids:
            told[subject, data["report_id"]] = told.get((subject, data["report_id"]), 0) + 1
    for kind in ("routing.report.classified", "routing.ticket.created"):
        assert {r: told.get((kind, r), 0) for r in report_ids} == dict.fromkeys(report_ids, 1), kind
    assert not [letter for letter in await dead_letters(servers)
                if json.loads(letter["original"]["text"])["data"]["report_id"] in report_ids]
