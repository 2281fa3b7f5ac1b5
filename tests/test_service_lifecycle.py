"""A service's start and stop against a real nats-server and PostgreSQL. Starting, its warm-up runs
before it takes anything, and a warm-up that fails is logged without stopping the start. Stopping,
it keeps to its time budget: an event that never finishes is cut off with its consumer named in the
log, nothing of it is written, and the service's NATS connection is closed, so it no longer answers
or consumes on the bus."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import httpx
import pytest
from busutil import count_rows, unique_name
from conftest import Servers
from probe import create_schema, hold_in_hand, make_probe, probe_settings
from sqlalchemy import text

from shared.service import Runtime, build_app

STOP_SECONDS = 3.0


async def _connections_named(servers: Servers, name: str) -> int:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"http://127.0.0.1:{servers.nats.monitor_port}/connz", params={"limit": 1024})
    return sum(1 for c in resp.json()["connections"] if c.get("name") == name)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "one-by-one"])
async def test_an_event_that_never_finishes_does_not_hold_the_stop(
        servers: Servers, batched: bool, caplog: pytest.LogCaptureFixture) -> None:
    probe = make_probe(unique_name(), batched=batched)
    await create_schema(probe, servers.database_url)
    app = build_app(probe.spec, probe_settings(servers.database_url, servers.nats_url,
                                               stop_seconds=STOP_SECONDS, ack_wait_seconds=30.0))
    stuck = f"{probe.name}-stuck"
    lifespan = app.router.lifespan_context(app)
    with caplog.at_level(logging.ERROR, logger="minyi.service"):
        await lifespan.__aenter__()
        await app.state.runtime.bus_started.wait()
        assert await _connections_named(servers, f"minyi-{probe.name}") == 1
        await hold_in_hand(servers.nats_url, probe, stuck, sleep=600)
        started = time.monotonic()
        try:
            await asyncio.wait_for(lifespan.__aexit__(None, None, None), STOP_SECONDS + 20)
        except TimeoutError:
            pytest.fail(f"the service had not stopped {STOP_SECONDS + 20:.0f} s after being asked to")
        took = time.monotonic() - started
    # The budget, then at most the two closing steps' own allowance each.
    assert took < STOP_SECONDS + 5, f"stopping took {took:.1f} s"
    cut_off = [r.getMessage() for r in caplog.records if "did not finish within" in r.getMessage()]
    assert cut_off and all(probe.name in m for m in cut_off), caplog.text
    assert await count_rows(servers.database_url, probe.effects) == 0
    assert await _connections_named(servers, f"minyi-{probe.name}") == 0


@pytest.mark.parametrize("fails", [False, True], ids=["warms", "fails"])
async def test_the_warm_up_runs_before_the_bus_and_a_failing_one_does_not_stop_the_start(
        servers: Servers, fails: bool, caplog: pytest.LogCaptureFixture) -> None:
    probe = make_probe(unique_name())
    await create_schema(probe, servers.database_url)
    seen: list[bool] = []

    async def warm_up(runtime: Runtime) -> None:
        seen.append(runtime.bus_started.is_set())
        async with runtime.sessions()() as session:  # connected by then
            await session.execute(text("SELECT 1"))
        if fails:
            raise RuntimeError("no dictionary here")

    spec = dataclasses.replace(probe.spec, warm_up=warm_up)
    app = build_app(spec, probe_settings(servers.database_url, servers.nats_url))
    with caplog.at_level(logging.INFO, logger="minyi.service"):
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app.state.runtime.bus_started.wait(), 30)
    assert seen == [False]
    logged = [r.getMessage() for r in caplog.records if probe.name in r.getMessage() and "warm" in r.getMessage()]
    expected = "warming up failed (RuntimeError: no dictionary here)" if fails else "warmed up in"
    assert any(expected in m for m in logged), logged
