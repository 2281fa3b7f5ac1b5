"""Routing on the real servers, served over real HTTP (grid platforms call it back), and the grid
platform simulator as a separate process; with what tests need to feed and watch them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from busutil import event_body, publish, stream_messages
from conftest import Servers
from identityutil import KEY
from serviceutil import served

from minyi.servers import free_port
from services.routing.service import SPEC
from shared.auth import sign_token
from shared.bus.streams import declare
from shared.contracts import STREAMS
from shared.ids import new_id
from shared.service import Runtime
from shared.settings import Settings

SIMULATOR = Path(__file__).resolve().parent.parent / "deploy" / "gridsim" / "grid_platform_simulator.py"


def bearer(role: str, region: str = "", *, deputy_id: str | None = None) -> dict[str, str]:
    tok = sign_token(KEY, issuer="minyi", audience="minyi", sub=f"t-{role}-{region}", roles=[role], region=region,
                     deputy_id=deputy_id)
    return {"Authorization": f"Bearer {tok}"}


ADMIN = bearer("admin")
# Congress staff see a region of their own: the tests' reports are in Anhui (34…).
STAFF = bearer("npc_staff", "34")


@dataclass
class Routing:
    client: httpx.AsyncClient
    runtime: Runtime
    base_url: str

    async def platform(self, platform_id: str, prefixes: list[str], url: str | None, secret: str,
                       **extra: Any) -> dict[str, Any]:
        body = {"name": f"{platform_id}平台", "region_prefixes": prefixes,
                "transport": "http" if url else "nats", "url": url, "secret": secret, **extra}
        resp = await self.client.put(f"/v1/grid-platforms/{platform_id}", json=body, headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
        return dict(resp.json())


async def declare_intake_stream(nats_url: str) -> None:
    """Routing consumes intake's reports and suggestions' steps; where those services do not run,
    declare their streams."""
    nc = await nats.connect(nats_url)
    try:
        for stream in (STREAMS["intake"], STREAMS["suggestions"]):
            await declare(nc.jetstream(), stream, replicas=1)
    finally:
        await nc.close()


@asynccontextmanager
async def routing_service(servers: Servers, home: Path, **overrides: Any) -> AsyncIterator[Routing]:
    await declare_intake_stream(servers.nats_url)
    port = free_port()
    values: dict[str, Any] = {"outbox_poll_seconds": 0.1, "retry_base_seconds": 0.2, "grid_retry_base_seconds": 0.2,
                              "grid_retry_max_seconds": 1.0, "grid_dispatch_poll_seconds": 0.2, **overrides}
    settings = Settings(**{"database_url": servers.database_url, "nats_url": servers.nats_url, "home": home,
                           "routing_port": port, **values})
    async with served(SPEC, settings, port) as service:
        yield Routing(service.client, service.runtime, service.base_url)


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]
    client: httpx.AsyncClient

    async def configure(self, **config: Any) -> None:
        resp = await self.client.post("/_sim/config", json=config)
        assert resp.status_code == 200, resp.text

    async def tickets(self) -> list[dict[str, Any]]:
        resp = await self.client.get("/_sim/tickets")
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    async def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        resp = await self.client.get(f"/_sim/tickets/{ticket_id}")
        return dict(resp.json()) if resp.status_code == 200 else None

    async def stats(self) -> dict[str, Any]:
        resp = await self.client.get("/_sim/stats")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


def _log_sink(log_file: Path | None) -> Any:
    """Where the simulator's log goes: a pipe nobody reads would fill up and block it."""
    return log_file.open("ab") if log_file else subprocess.DEVNULL


@asynccontextmanager
async def grid_simulator(secret: str, *flags: str, log_file: Path | None = None) -> AsyncIterator[Simulator]:
    """The simulator as its own process on a free port; it prints its URL first thing."""
    stderr = _log_sink(log_file)
    proc = subprocess.Popen([sys.executable, str(SIMULATOR), "--port", "0", "--secret", secret, *flags],
                            stdout=subprocess.PIPE, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
        text = line.decode().strip()
        if "http://" not in text:
            raise AssertionError(f"grid simulator did not start: {text!r} (exit {proc.poll()})")
        url = text[text.index("http://"):]
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Simulator(url, proc, client)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not isinstance(stderr, int):
            stderr.close()


def submitted_event(region_code: str, content: str, *, category: str | None = None,
                    received_at: datetime | None = None, report_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """An `intake.report.submitted` as intake publishes it (the fields routing reads)."""
    rid = report_id or new_id()
    received = received_at or datetime.now(UTC)
    return rid, {"report_id": rid, "status": "submitted", "round": 1, "region_code": region_code,
                 "target": {"kind": "region", "id": None}, "deputy_id": None, "station_id": None,
                 "channel": "h5", "content": content, "category": category, "anonymous": True, "attachments": [],
                 "location": None, "received_at": received.isoformat(), "ack_due": received.isoformat(),
                 "reply_due": received.isoformat()}


async def submit(nats_url: str, region_code: str, content: str, **kwargs: Any) -> str:
    report_id, data = submitted_event(region_code, content, **kwargs)
    event_id = new_id()
    await publish(nats_url, "intake.report.submitted", event_body(event_id, "intake.report.submitted", data),
                  msg_id=event_id)
    return report_id


def signed_status(secret: str, body: dict[str, Any], *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A platform's status for the nats transport: its bytes and the NATS headers that sign them,
    `sha256=HMAC-SHA256(secret, timestamp + "." + bytes)` as on HTTP callbacks."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return raw, {"X-Minyi-Timestamp": ts, "X-Minyi-Signature": f"sha256={mac}"}


async def publish_status(nats_url: str, platform_id: str, body: dict[str, Any], secret: str | None, *,
                         msg_id: str) -> None:
    """Publish a status on `grid.<platform_id>.events`, signed with `secret` (None: unsigned)."""
    if secret is None:
        raw, headers = json.dumps(body, ensure_ascii=False).encode(), {}
    else:
        raw, headers = signed_status(secret, body)
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(f"grid.{platform_id}.events", raw, headers={**headers, "Nats-Msg-Id": msg_id},
                                     timeout=5)
    finally:
        await nc.close()


async def routing_events(nats_url: str, report_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`routing.*` events, of one report when given, as (type, data), in order."""
    out = []
    for subject, _headers, data in await stream_messages(nats_url, STREAMS["routing"].name):
        event = json.loads(data)
        if report_id is None or event.get("data", {}).get("report_id") == report_id:
            out.append((subject, event["data"]))
    return out
