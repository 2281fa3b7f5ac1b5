"""Delivery guarantees of the shared bus, proven against a real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from busutil import consumer_state, count_rows, event_body, eventually, publish, stream_messages, unique_name
from conftest import Servers
from probe import CRASH_ENV, attempts, create_schema, make_probe, probe_settings
from sqlalchemy import update

from minyi.servers import Nats
from shared.service import build_app

HERE = Path(__file__).parent


async def test_outbox_event_is_delivered_once_even_when_the_relay_publishes_it_twice(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, outbox_poll_seconds=3600))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        await runtime.relay.stop()  # drive the relay by hand
        async with runtime.transaction() as session:
            event_id = await runtime.emit(session, probe.subject, {"value": "once"})

        assert await runtime.relay.relay_once() == 1
        # A relay that crashed after the PubAck but before marking the row publishes it again.
        async with runtime.transaction() as session:
            await session.execute(update(runtime.outbox).values(published_at=None))
        assert await runtime.relay.relay_once() == 1
        assert runtime.relay.stats.duplicates == 1
        assert await runtime.relay.backlog() == 0

        await eventually(lambda: _effects_are(probe, servers, 1), timeout=10, what="the event's effect")

    messages = await stream_messages(servers.nats_url, probe.stream)
    assert [h["Nats-Msg-Id"] for _, h, _ in messages] == [event_id]
    subject, headers, data = messages[0]
    assert subject == probe.subject
    assert headers["content-type"].startswith("application/cloudevents+json")
    envelope = json.loads(data)
    assert envelope["specversion"] == "1.0" and envelope["id"] == event_id
    assert envelope["data"] == {"value": "once"}
    assert await count_rows(servers.database_url, probe.effects) == 1


async def test_rolled_back_transaction_publishes_nothing(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        with pytest.raises(RuntimeError, match="validation failed"):
            async with runtime.transaction() as session:
                await runtime.emit(session, probe.subject, {"value": "never"})
                raise RuntimeError("validation failed")
        async with runtime.transaction() as session:
            kept = await runtime.emit(session, probe.subject, {"value": "kept"})
        await eventually(lambda: _backlog_is(runtime, 0), timeout=10, what="the outbox to drain")
    ids = [h["Nats-Msg-Id"] for _, h, _ in await stream_messages(servers.nats_url, probe.stream)]
    assert ids == [kept]


async def test_consumer_that_crashes_after_its_effect_but_before_the_ack_does_not_apply_it_twice(
    servers: Servers, server_env: dict[str, str]
) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    crashing = subprocess.Popen(
        [sys.executable, str(HERE / "probe.py"), probe.name],
        env={**server_env, CRASH_ENV: "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        await _wait_for_line(crashing, "probe ready")
        event_id = "crash-" + probe.name
        await publish(servers.nats_url, probe.subject, event_body(event_id, probe.subject, {"value": "x"}), event_id)
        code = await asyncio.to_thread(crashing.wait, 30)
    finally:
        if crashing.poll() is None:
            crashing.kill()
    assert code == 17, "the probe should have died right after committing its effect"
    assert await count_rows(servers.database_url, probe.effects) == 1
    info = await consumer_state(servers.nats_url, probe.stream, probe.durable)
    assert info.num_ack_pending == 1, "the crashed consumer never acknowledged the message"

    # A healthy replica takes over; the message comes back after ack_wait and is skipped.
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    async with app.router.lifespan_context(app):
        await eventually(lambda: _acked(servers, probe), timeout=20, what="the redelivered message to be acked")
    info = await consumer_state(servers.nats_url, probe.stream, probe.durable)
    assert info.delivered.consumer_seq == 2, "delivered once to the crashed consumer, once to the new one"
    assert attempts[event_id] == 0, "the inbox recognised the event before the handler ran again"
    assert await count_rows(servers.database_url, probe.effects) == 1


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered_with_the_reason(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    settings = probe_settings(servers.database_url, servers.nats_url, max_deliver=3)
    app = build_app(probe.spec, settings)
    async with app.router.lifespan_context(app):
        bad_id, good_id = f"bad-{probe.name}", f"good-{probe.name}"
        await publish(servers.nats_url, probe.subject,
                      event_body(bad_id, probe.subject, {"value": "poison", "fail": True}), bad_id)
        await publish(servers.nats_url, probe.subject, event_body(good_id, probe.subject, {"value": "fine"}), good_id)
        dead_stream = f"DEADLETTER_{probe.name.upper()}"

        async def dead_lettered() -> bool:
            return len(await stream_messages(servers.nats_url, dead_stream)) >= 1

        await eventually(dead_lettered, timeout=20, what="the failing event on the dead-letter stream")
        await eventually(lambda: _acked(servers, probe), timeout=10, what="both messages acked")

    assert attempts[bad_id] == 3, "retried up to max_deliver, no more"
    dead = await stream_messages(servers.nats_url, dead_stream)
    assert len(dead) == 1
    subject, _headers, data = dead[0]
    assert subject == f"deadletter.{probe.name}.{probe.subject}"
    letter = json.loads(data)
    assert letter["deliveries"] == 3
    assert letter["consumer"] == probe.durable
    assert "refusing 'poison' on purpose" in letter["error"]
    assert json.loads(letter["original"]["text"])["id"] == bad_id
    assert letter["original_headers"]["Nats-Msg-Id"] == bad_id
    # The failure did not block the stream: the good event was applied, the bad one left no trace.
    assert await count_rows(servers.database_url, probe.effects) == 1


async def test_a_malformed_message_goes_straight_to_dead_letters(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, max_deliver=5))
    async with app.router.lifespan_context(app):
        await publish(servers.nats_url, probe.subject, b"{not json", "garbage-1")
        dead_stream = f"DEADLETTER_{probe.name.upper()}"

        async def dead_lettered() -> bool:
            return len(await stream_messages(servers.nats_url, dead_stream)) == 1

        await eventually(dead_lettered, timeout=15, what="the malformed message on the dead-letter stream")
        await eventually(lambda: _acked(servers, probe), timeout=10, what="the malformed message acked")
    letter = json.loads((await stream_messages(servers.nats_url, dead_stream))[0][2])
    assert letter["deliveries"] == 1, "retrying cannot fix bytes that are not an event"
    assert letter["error"].startswith("malformed: not JSON")
    assert letter["original"]["text"] == "{not json"


@pytest.mark.slow
async def test_nats_restarted_mid_stream_loses_nothing_that_was_committed(servers: Servers, own_nats: Nats) -> None:
    own = own_nats
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, own.url))
    runtime = app.state.runtime
    total = 300
    committed: list[str] = []
    async with app.router.lifespan_context(app):

        async def produce() -> None:
            for i in range(total):
                async with runtime.transaction() as session:
                    committed.append(await runtime.emit(session, probe.subject, {"value": str(i)}))
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        await eventually(lambda: _len_at_least(committed, total // 3), timeout=30, what="a third committed")
        own.child.kill()  # not a clean stop: whatever was acked must already be on disk
        await asyncio.sleep(1.5)
        own.start()
        await producer
        await eventually(lambda: _backlog_is(runtime, 0), timeout=60, what="the outbox to drain after restart")
        await eventually(lambda: _effects_are(probe, servers, total), timeout=60,
                         what=f"all {total} effects applied")

    messages = await stream_messages(own.url, probe.stream)
    ids = [h["Nats-Msg-Id"] for _, h, _ in messages]
    assert len(ids) == len(set(ids)), "no event is in the stream twice"
    assert set(ids) == set(committed)
    assert len(committed) == total
    assert await count_rows(servers.database_url, probe.effects) == total


# ---- helpers ------------------------------------------------------------------------------------


async def _effects_are(probe, servers: Servers, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count_rows(servers.database_url, probe.effects) == n


async def _backlog_is(runtime, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await runtime.relay.backlog() == n


async def _acked(servers: Servers, probe) -> bool:  # type: ignore[no-untyped-def]
    info = await consumer_state(servers.nats_url, probe.stream, probe.durable)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def _len_at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def _wait_for_line(proc: subprocess.Popen[bytes], line: str, timeout: float = 30) -> None:
    def read() -> None:
        assert proc.stdout is not None
        seen = []
        for raw in proc.stdout:
            text = raw.decode(errors="replace")
            seen.append(text)
            if line in text:
                return
        raise AssertionError(f"process exited before printing {line!r}:\n{''.join(seen)[-3000:]}")

    await asyncio.wait_for(asyncio.to_thread(read), timeout)



async def test_shutdown_finishes_the_message_in_hand(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, ack_wait_seconds=30.0))
    slow_id = f"slow-{probe.name}"
    async with app.router.lifespan_context(app):
        await publish(servers.nats_url, probe.subject,
                      event_body(slow_id, probe.subject, {"value": "slow", "sleep": 1.5}), slow_id)

        async def started() -> bool:
            return attempts[slow_id] == 1

        await eventually(started, timeout=10, what="the slow handler to start")
        # Leaving the context is the service's SIGTERM path: it must wait for the handler and ack.
    assert await count_rows(servers.database_url, probe.effects) == 1
    info = await consumer_state(servers.nats_url, probe.stream, probe.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0, "acked before the service stopped"


async def test_readyz_reports_a_lost_nats_and_recovers(servers: Servers, own_nats: Nats) -> None:
    own = own_nats
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, own.url))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://probe"
    ) as client:

        async def ready_is(status: int) -> bool:
            return (await client.get("/readyz")).status_code == status

        await eventually(lambda: ready_is(200), timeout=15, what="ready with NATS up")
        own.child.kill()
        await eventually(lambda: ready_is(503), timeout=15, what="not ready with NATS down")
        body = (await client.get("/readyz")).json()
        assert body["checks"]["nats"].startswith("failing") and body["checks"]["database"] == "ok"
        assert (await client.get("/healthz")).status_code == 200, "alive though not ready"
        own.start()
        await eventually(lambda: ready_is(200), timeout=30, what="ready again after NATS came back")


async def test_the_trace_continues_from_the_writing_transaction_through_the_outbox_to_the_consumer(
    servers: Servers,
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        with trace.get_tracer("tests").start_as_current_span("citizen files a report") as root:
            async with runtime.transaction() as session:
                await runtime.emit(session, probe.subject, {"value": "traced"})
        trace_id = root.get_span_context().trace_id
        await eventually(lambda: _effects_are(probe, servers, 1), timeout=10, what="the traced event applied")

        def consumer_spans() -> list[str]:
            return [s.name for s in exporter.get_finished_spans()
                    if s.context.trace_id == trace_id and s.kind == trace.SpanKind.CONSUMER]

        async def consumed_in_same_trace() -> bool:
            return bool(consumer_spans())

        await eventually(consumed_in_same_trace, timeout=10, what="a consumer span in the report's trace")
    names = {s.name for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}
    assert f"{probe.subject} relay" in names, names
    assert any(probe.subject in n for n in consumer_spans()), names


async def test_readyz_reports_a_crashing_worker_until_it_has_run_a_while(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import service as service_module

    monkeypatch.setattr(service_module, "WORKER_RESTART_SECONDS", 0.2)
    monkeypatch.setattr(service_module, "WORKER_FAILURE_WINDOW_SECONDS", 2.0)
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    starts = 0
    steady = asyncio.Event()

    async def flaky_feed() -> None:
        nonlocal starts
        starts += 1
        if starts <= 3:
            raise ConnectionRefusedError(f"feed refused, start {starts}")
        steady.set()
        await asyncio.Event().wait()

    probe.spec.workers = lambda runtime: (flaky_feed,)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://probe"
    ) as client:
        await asyncio.wait_for(steady.wait(), timeout=15)
        answer = await client.get("/readyz")
        assert answer.status_code == 503, answer.text
        assert answer.json()["checks"]["workers"] == "failing: RuntimeError: flaky_feed crashed: " \
            "ConnectionRefusedError: feed refused, start 3"

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=10, what="ready once the worker has run past the window")
        assert starts == 4, "a running worker is not restarted"
