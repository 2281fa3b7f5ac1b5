"""Batched consumers (group commit) against a real nats-server and PostgreSQL: the events in hand at
once are written in one transaction, each exactly once; one bad event does not hold back the rest;
and what each event causes continues that event's own trace."""

from __future__ import annotations

import json
import uuid

from busutil import consumer_state, count_rows, event_body, eventually, publish_all, stream_messages, unique_name
from conftest import Servers
from probe import attempts, batches, create_schema, hold_in_hand, make_probe, probe_settings

from shared.service import build_app


async def _all_acked(nats_url: str, stream: str, durable: str) -> bool:
    info = await consumer_state(nats_url, stream, durable)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_events_in_hand_together_are_written_in_batches_each_exactly_once(servers: Servers) -> None:
    probe = make_probe(unique_name(), batched=True)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    ids = [f"{probe.name}-{n}" for n in range(300)]
    async with app.router.lifespan_context(app):
        await app.state.runtime.bus_started.wait()
        # The first event holds its batch up for a moment, so the others pile up behind it.
        first = [(probe.subject, event_body(ids[0], probe.subject, {"value": "0", "sleep": 0.5}),
                  {"Nats-Msg-Id": ids[0]})]
        await publish_all(servers.nats_url, first)
        rest = [(probe.subject, event_body(i, probe.subject, {"value": i}), {"Nats-Msg-Id": i}) for i in ids[1:]]
        # The same event again under another message id, as a publisher that retried would send it.
        again = [(probe.subject, event_body(i, probe.subject, {"value": i}), {"Nats-Msg-Id": f"again-{i}"})
                 for i in ids[1:50]]
        await publish_all(servers.nats_url, rest + again)

        async def all_applied() -> bool:
            return await count_rows(servers.database_url, probe.effects) == len(ids)

        await eventually(all_applied, timeout=30, what="every event applied")
        await eventually(lambda: _all_acked(servers.nats_url, probe.stream, probe.durable), timeout=15,
                         what="every message acknowledged")

        async def echoes_out() -> bool:
            return await app.state.runtime.relay.backlog() == 0

        await eventually(echoes_out, timeout=15, what="the echo events published")

    sizes = batches[probe.name]
    assert max(sizes) > 1, f"the events never went together: {sizes}"
    assert len(sizes) < len(ids) // 2, f"{len(sizes)} transactions for {len(ids)} events"
    assert all(attempts[i] == 1 for i in ids), "a batch that commits is never applied again"
    echoes = [m for m in await stream_messages(servers.nats_url, probe.stream) if m[0] == f"{probe.name}.echo.made"]
    causes = sorted(json.loads(data)["data"]["cause"] for _, _, data in echoes)
    assert causes == sorted(ids), "one echo per event, none for the repeats"


async def test_a_failing_event_is_taken_out_of_its_batch_and_the_others_are_applied(servers: Servers) -> None:
    probe = make_probe(unique_name(), batched=True)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, max_deliver=3))
    good = [f"{probe.name}-good-{n}" for n in range(40)]
    failing, bad = f"{probe.name}-failing", f"{probe.name}-bad"
    async with app.router.lifespan_context(app):
        await app.state.runtime.bus_started.wait()
        await publish_all(servers.nats_url, [(probe.subject, event_body(
            f"{probe.name}-slow", probe.subject, {"value": "slow", "sleep": 0.5}), {"Nats-Msg-Id": "slow"})])
        messages = [(probe.subject, event_body(i, probe.subject, {"value": i}), {"Nats-Msg-Id": i}) for i in good]
        messages.insert(10, (probe.subject, event_body(failing, probe.subject, {"value": "poison", "fail": True}),
                             {"Nats-Msg-Id": failing}))
        messages.insert(25, (probe.subject, event_body(bad, probe.subject, {"value": "bad", "bad": True}),
                             {"Nats-Msg-Id": bad}))
        await publish_all(servers.nats_url, messages)
        dead_stream = f"DEADLETTER_{probe.name.upper()}"

        async def both_dead() -> bool:
            return len(await stream_messages(servers.nats_url, dead_stream)) == 2

        await eventually(both_dead, timeout=30, what="the failing and the bad event in dead letters")
        await eventually(lambda: _all_acked(servers.nats_url, probe.stream, probe.durable), timeout=15,
                         what="every message acknowledged")

    assert max(batches[probe.name]) > 2, batches[probe.name]
    assert await count_rows(servers.database_url, probe.effects) == len(good) + 1  # and the slow one
    letters = {json.loads(json.loads(data)["original"]["text"])["id"]: json.loads(data)
               for _, _, data in await stream_messages(servers.nats_url, dead_stream)}
    assert set(letters) == {failing, bad}
    assert "refusing 'poison' on purpose" in letters[failing]["error"]
    assert letters[failing]["deliveries"] == 3, "a failure that might pass is retried up to max_deliver"
    assert letters[bad]["error"].startswith("BadEvent:") and letters[bad]["deliveries"] == 1


async def test_what_a_batched_event_causes_continues_that_events_own_trace(servers: Servers) -> None:
    probe = make_probe(unique_name(), batched=True)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    traces = {f"{probe.name}-{n}": uuid.uuid4().int & (2**128 - 1) for n in range(30)}
    async with app.router.lifespan_context(app):
        await app.state.runtime.bus_started.wait()
        await publish_all(servers.nats_url, [(probe.subject, event_body(
            f"{probe.name}-slow", probe.subject, {"value": "slow", "sleep": 0.5}), {"Nats-Msg-Id": "slow"})])
        await publish_all(servers.nats_url, [
            (probe.subject, event_body(i, probe.subject, {"value": i}),
             {"Nats-Msg-Id": i, "traceparent": f"00-{t:032x}-{uuid.uuid4().int & (2**64 - 1):016x}-01"})
            for i, t in traces.items()])

        async def echoed() -> bool:
            echoes = [m for m in await stream_messages(servers.nats_url, probe.stream)
                      if m[0] == f"{probe.name}.echo.made"]
            return len(echoes) == len(traces) + 1

        await eventually(echoed, timeout=30, what="an echo for every event")

    assert max(batches[probe.name]) > 2, batches[probe.name]
    for subject, headers, data in await stream_messages(servers.nats_url, probe.stream):
        cause = json.loads(data)["data"].get("cause")
        if subject != f"{probe.name}.echo.made" or cause not in traces:
            continue
        assert headers["traceparent"].split("-")[1] == f"{traces[cause]:032x}", (cause, headers)


async def test_a_stop_finishes_the_batch_in_hand_and_acknowledges_it(servers: Servers) -> None:
    probe = make_probe(unique_name(), batched=True)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    slow = f"{probe.name}-slow"
    async with app.router.lifespan_context(app):
        await app.state.runtime.bus_started.wait()
        await hold_in_hand(servers.nats_url, probe, slow, sleep=1.0)
    # The lifespan has ended: the service stopped while the event was being applied.
    assert await count_rows(servers.database_url, probe.effects) == 1
    info = await consumer_state(servers.nats_url, probe.stream, probe.durable)
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)
