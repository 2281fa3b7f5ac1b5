"""Intake in-process on the real servers, with identity beside it to resolve QR codes, and what
tests need to drive both: tokens, a directory with codes, a movable clock and event readers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from conftest import Servers
from fastapi import FastAPI
from identityutil import KEY, identity_service

from services.intake.service import SPEC
from shared.auth import TokenVerifier, public_pem, sign_token
from shared.bus.streams import declare
from shared.contracts import STREAMS
from shared.service import Runtime, build_app
from shared.settings import Settings


def bearer(role: str, region: str = "", *, deputy_id: str | None = None, sub: str | None = None
           ) -> dict[str, str]:
    tok = sign_token(KEY, issuer="minyi", audience="minyi", sub=sub or f"t-{role}-{deputy_id or region}",
                     roles=[role], region=region, deputy_id=deputy_id)
    return {"Authorization": f"Bearer {tok}"}


@dataclass
class Clock:
    """The intake service's now, movable by tests; None means the real time."""

    at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


@dataclass
class Intake:
    client: httpx.AsyncClient
    runtime: Runtime
    identity: httpx.AsyncClient
    clock: Clock
    codes: dict[str, str] = field(default_factory=dict)

    async def fire_timers(self) -> int:
        from services.intake.timers import fire_due

        total = 0
        while fired := await fire_due(self.runtime):
            total += fired
        return total


async def declare_upstream_streams(nats_url: str) -> None:
    """Intake consumes identity's and routing's events; where those services do not run, declare their streams."""
    nc = await nats.connect(nats_url)
    try:
        for producer in ("identity", "routing"):
            await declare(nc.jetstream(), STREAMS[producer], replicas=1)
    finally:
        await nc.close()


@asynccontextmanager
async def intake_app(servers: Servers, home: Path, clock: Clock, *, client_address: str = "203.0.113.7",
                     **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, FastAPI]]:
    values: dict[str, Any] = {"outbox_poll_seconds": 0.1, "retry_base_seconds": 0.2, "clock_poll_seconds": 3600,
                              **overrides}
    settings = Settings(database_url=servers.database_url, nats_url=servers.nats_url, home=home, **values)
    app: FastAPI = build_app(SPEC, settings)
    app.state.token_verifier = TokenVerifier(issuer="minyi", audience="minyi", public_key_pem=public_pem(KEY))
    runtime: Runtime = app.state.runtime
    runtime.state["intake.now"] = clock
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(client_address, 40000)), base_url="http://intake",
        timeout=60,
    ) as client:
        await asyncio.wait_for(runtime.bus_started.wait(), timeout=30)
        yield client, runtime, app


@asynccontextmanager
async def intake_stack(servers: Servers, home: Path, **overrides: Any) -> AsyncIterator[Intake]:
    """Identity and intake; timers fire when a test says so (`fire_timers`), not on their own."""
    await declare_upstream_streams(servers.nats_url)
    clock = Clock()
    async with identity_service(servers, home / "identity") as (identity, _), \
            intake_app(servers, home / "intake", clock, **overrides) as (client, runtime, _):
        yield Intake(client, runtime, identity, clock)


ADMIN = bearer("admin")


async def directory(intake: Intake, region: str, parent: str | None, deputies: dict[str, list[str]],
                    stations: list[str]) -> None:
    """A region with stations and deputies (deputy → their stations), each with a QR code in `intake.codes`."""
    idc = intake.identity
    for code, name, up in ((region[:2] + "0000", "省", None), (region[:4] + "00", "市", region[:2] + "0000"),
                           (region, "区县", parent or region[:4] + "00")):
        resp = await idc.put(f"/v1/regions/{code}", json={"name": name, "parent_code": up}, headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
    for station in stations:
        resp = await idc.put(f"/v1/stations/{station}", json={"name": f"{station}联络站", "kind": "station",
                                                              "region_code": region}, headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
        resp = await idc.post(f"/v1/stations/{station}/code", headers=ADMIN)
        assert resp.status_code == 201, resp.text
        intake.codes[station] = resp.json()["code"]
    for deputy, its_stations in deputies.items():
        resp = await idc.put(f"/v1/deputies/{deputy}", json={"name": f"代表{deputy}", "level": "county",
                                                             "region_code": region, "station_ids": its_stations},
                             headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
        resp = await idc.post(f"/v1/deputies/{deputy}/code", headers=ADMIN)
        assert resp.status_code == 201, resp.text
        intake.codes[deputy] = resp.json()["code"]


async def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def intake_events(nats_url: str, report_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every `intake.report.*` event of one report in the INTAKE stream, as (type, data), in order."""
    from busutil import stream_messages

    out = []
    for subject, _headers, data in await stream_messages(nats_url, STREAMS["intake"].name):
        event = json.loads(data)
        if event.get("data", {}).get("report_id") == report_id:
            out.append((subject, event["data"]))
    return out
