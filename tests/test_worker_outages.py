"""A worker that stops while the service's NATS is away is restarted without being held against the
service's readiness (the NATS check already says what is wrong, for as long as it lasts); one that
stops while everything is up is a crash /readyz reports (tests/test_bus_delivery.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from busutil import eventually, unique_name
from conftest import Servers
from probe import create_schema, make_probe, probe_settings

from minyi.servers import Nats
from shared.service import build_app


async def test_a_worker_stopped_by_a_nats_outage_is_not_a_crash(
        servers: Servers, own_nats: Nats, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import service as service_module

    monkeypatch.setattr(service_module, "WORKER_RESTART_SECONDS", 0.2)
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    starts = 0
    started = asyncio.Event()
    fail_now = asyncio.Event()

    async def feed() -> None:
        nonlocal starts
        starts += 1
        started.set()
        await fail_now.wait()
        raise ConnectionResetError("the feed's connection went with the server")

    probe.spec.workers = lambda runtime: (feed,)
    app = build_app(probe.spec, probe_settings(servers.database_url, own_nats.url))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://probe"
    ) as client:
        await asyncio.wait_for(started.wait(), timeout=15)
        own_nats.stop()
        try:
            connection = runtime.broker.config.connection_state.connection

            async def disconnected() -> bool:
                return not connection.is_connected

            await eventually(disconnected, timeout=10, what="the service to notice NATS is gone")
            fail_now.set()

            async def restarted() -> bool:
                return starts >= 2

            await eventually(restarted, timeout=10, what="the worker to be started again")
            assert runtime.worker_failures == {}, runtime.worker_failures
            checks = (await client.get("/readyz")).json()["checks"]
            assert checks["workers"] == "ok" and checks["nats"].startswith("failing"), checks
        finally:
            fail_now.clear()
            own_nats.start()

        async def reconnected() -> bool:
            return bool(connection.is_connected)

        await eventually(reconnected, timeout=15, what="the service back on NATS")
