"""An event NATS will never take is set aside, not retried forever in front of every later one."""

from __future__ import annotations

import httpx
from busutil import stream_messages, unique_name
from conftest import Servers
from probe import create_schema, make_probe, probe_settings

from shared.bus.outbox import message_size, release, set_aside_rows
from shared.service import build_app

BIG = "很" * 3_000_000  # 9 MB of UTF-8: over the max_payload of the embedded server (8 MB) and the default (1 MB)


async def test_an_event_over_max_payload_is_set_aside_and_the_next_ones_go_out(servers: Servers) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url, outbox_poll_seconds=3600))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        await runtime.relay.stop()  # drive the relay by hand
        async with runtime.transaction() as session:
            before = await runtime.emit(session, probe.subject, {"value": "before"})
            big = await runtime.emit(session, probe.subject, {"value": BIG})
            after = await runtime.emit(session, probe.subject, {"value": "after"})

        assert await runtime.relay.relay_once() == 3
        assert runtime.relay.stats.set_aside == 1 and runtime.relay.stats.published == 2
        health = await runtime.relay.health()
        assert (health.waiting, health.set_aside) == (0, 1)

        async with runtime.transaction() as session:
            aside = await set_aside_rows(session, runtime.outbox)
        assert [row["event_id"] for row in aside] == [big]
        assert "max_payload" in aside[0]["last_error"] and aside[0]["payload_bytes"] > 8_000_000

        # The metric an alert watches.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            metrics = (await client.get("/metrics")).text
        assert "minyi_outbox_set_aside 1.0" in metrics
        assert "minyi_outbox_backlog 0.0" in metrics

        # Released while still too big: checked again and set aside again, nothing else held up.
        async with runtime.transaction() as session:
            assert await release(session, runtime.outbox, [big]) == 1
        assert (await runtime.relay.health()).set_aside == 0
        assert await runtime.relay.relay_once() == 1
        assert (await runtime.relay.health()).set_aside == 1

    ids = [h["Nats-Msg-Id"] for _, h, _ in await stream_messages(servers.nats_url, probe.stream)]
    assert ids == [before, after]


def test_the_size_counted_is_the_body_and_the_headers() -> None:
    # "NATS/1.0\r\n" (10) + "Nats-Msg-Id: abc\r\n" (11 + 3 + 4) + final "\r\n" (2) = 30, plus the body.
    assert message_size("s", b"x" * 100, {"Nats-Msg-Id": "abc"}) == 130
    assert message_size("s", b"x" * 100, {}) == 100
