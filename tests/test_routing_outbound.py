"""Routing's outbound tickets against platforms that misbehave, and the destination policy, over real
HTTP, PostgreSQL and NATS.

Routing runs as in production here (no MINYI_DEV_SECRETS: loopback is not allowed), with 127.0.0.2
allowed by `MINYI_GRID_ALLOWED_DESTINATIONS`. The platforms are a small Starlette app of this module
on 127.0.0.2, and a second one on 127.0.0.1 stands for an internal service nobody may reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from busutil import eventually, fresh_database
from conftest import Servers
from routingutil import ADMIN, Routing, bearer, routing_service, submit
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.pii import Keyring

SECRET = "outbound-secret-0123456789abcdef"
REGION = "350102"
STAFF = bearer("npc_staff", "35")


@dataclass
class Platforms:
    """Platforms by name under one server: POST /<name>/tickets answers as `behaviour[name]` says."""

    url: str
    received: dict[str, int] = field(default_factory=dict)
    behaviour: dict[str, str] = field(default_factory=dict)
    endless_bytes_sent: int = 0

    async def tickets(self, request: Request) -> Response:
        name = request.path_params["name"]
        await request.body()
        self.received[name] = self.received.get(name, 0) + 1
        kind = self.behaviour.get(name, "ok")
        if kind == "retry-after":
            return JSONResponse({"detail": "维护中"}, status_code=503, headers={"Retry-After": "1000000000000"})
        if kind == "endless":
            async def forever() -> AsyncIterator[bytes]:
                chunk = b'{"detail": "' + b"x" * 65536
                while True:
                    self.endless_bytes_sent += len(chunk)
                    yield chunk
                    await asyncio.sleep(0)

            return StreamingResponse(forever(), status_code=422, media_type="application/json")
        return JSONResponse({"status": "received"})


@contextlib.asynccontextmanager
async def platforms_on(host: str) -> AsyncIterator[Platforms]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    platforms = Platforms(f"http://{host}:{sock.getsockname()[1]}")
    app = Starlette(routes=[Route("/{name}/tickets", platforms.tickets, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the platforms did not start"
        await asyncio.sleep(0.01)
    try:
        yield platforms
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture(scope="module")
async def allowed() -> AsyncIterator[Platforms]:
    async with platforms_on("127.0.0.2") as platforms:
        yield platforms


@pytest.fixture(scope="module")
async def internal() -> AsyncIterator[Platforms]:
    async with platforms_on("127.0.0.1") as platforms:
        yield platforms


@pytest.fixture(scope="module")
async def routing(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Routing]:
    home = tmp_path_factory.mktemp("routing-outbound")
    keys = home / "pii-keys.json"
    keys.write_text(Keyring.generate().to_json())
    # Its own database: other modules' queued tickets are not this one's to send.
    database_url = await fresh_database(servers.database_url, "minyi_routing_outbound")
    async with routing_service(servers, home, database_url=database_url, dev_secrets=False, pii_keys_file=keys,
                               grid_allowed_destinations="127.0.0.2/32") as service:
        yield service


async def platform(routing: Routing, platform_id: str) -> dict[str, Any]:
    resp = await routing.client.get(f"/v1/grid-platforms/{platform_id}", headers=STAFF)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_a_huge_retry_after_backs_the_platform_off_for_an_hour_at_most(
        servers: Servers, routing: Routing, allowed: Platforms) -> None:
    allowed.behaviour["later"] = "retry-after"
    await routing.platform("gp-later", [REGION], f"{allowed.url}/later", SECRET)
    await submit(servers.nats_url, f"{REGION}001", "路口的红绿灯坏了，车辆乱成一团")

    async def backed_off() -> bool:
        return (await platform(routing, "gp-later"))["failures"] >= 1

    await eventually(backed_off, timeout=20, what="the platform backed off after its 503")
    seen = await platform(routing, "gp-later")
    retry_at = datetime.fromisoformat(seen["retry_at"])
    now = datetime.now(UTC)
    # The platform asked for 10**12 seconds: it gets the hour, not forever and not a crash.
    assert now + timedelta(minutes=55) < retry_at <= now + timedelta(hours=1, seconds=5), seen
    assert "503" in seen["last_error"] and "维护中" in seen["last_error"]
    assert allowed.received["later"] == 1, "backed off: not tried again within the hour"


async def test_an_endless_answer_is_read_only_in_part(servers: Servers, routing: Routing,
                                                     allowed: Platforms) -> None:
    allowed.behaviour["endless"] = "endless"
    await routing.platform("gp-endless", [REGION + "1"], f"{allowed.url}/endless", SECRET)
    report_id = await submit(servers.nats_url, f"{REGION}101", "小区门口的井盖丢了，晚上很危险")

    async def failed() -> list[dict[str, Any]]:
        resp = await routing.client.get(f"/v1/tickets?report_id={report_id}", headers=STAFF)
        return [t for t in resp.json() if t["status"] == "failed"]

    async def refused() -> bool:
        return bool(await failed())

    await eventually(refused, timeout=30, what="the ticket refused with the platform's 422")
    (ticket,) = await failed()
    assert ticket["last_error"].startswith("基层治理平台答复 HTTP 422：") and len(ticket["last_error"]) < 600
    # What was read before routing hung up: a bounded amount, not the endless body.
    assert allowed.endless_bytes_sent < 64 * 1024 * 1024, allowed.endless_bytes_sent


async def test_internal_addresses_are_refused_at_registration(routing: Routing) -> None:
    base = {"name": "内网平台", "region_prefixes": [REGION], "transport": "http", "secret": SECRET}
    for url in ("http://127.0.0.1:8080/", "http://localhost:8080/", "http://169.254.169.254/latest/",
                "http://10.0.0.7/", "http://[::1]:80/", "http://100.100.100.200/", "http://0.0.0.0:80/"):
        resp = await routing.client.put("/v1/grid-platforms/gp-internal", json={**base, "url": url}, headers=ADMIN)
        assert resp.status_code == 422, (url, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in resp.json()["errors"]] == ["url"], resp.text
        assert "平台地址不允许" in resp.json()["detail"]
    missing = await routing.client.get("/v1/grid-platforms/gp-internal", headers=STAFF)
    assert missing.status_code == 404
    ok = await routing.client.put("/v1/grid-platforms/gp-internal", headers=ADMIN,
                                  json={**base, "url": "http://127.0.0.2:9/"})
    assert ok.status_code == 201, ok.text


async def test_a_platform_pointed_inside_is_not_sent_to(servers: Servers, routing: Routing, allowed: Platforms,
                                                        internal: Platforms) -> None:
    """A platform registered before the policy (or behind a name that now resolves inside) keeps its
    tickets queued with the reason, and the internal address gets nothing."""
    await routing.platform("gp-moved", [REGION + "2"], f"{allowed.url}/moved", SECRET)
    async with routing.runtime.transaction() as session:
        await session.execute(text("UPDATE routing.grid_platforms SET url = :url WHERE id = 'gp-moved'"),
                              {"url": f"{internal.url}/moved"})
    report_id = await submit(servers.nats_url, f"{REGION}201", "公交站台的顶棚被风刮坏了")

    async def refused() -> bool:
        seen = await platform(routing, "gp-moved")
        return seen["failures"] >= 1 and "目的地址不允许" in (seen["last_error"] or "")

    await eventually(refused, timeout=20, what="the send refused by the destination policy")
    # The refusal above is the dispatcher's pass over this platform: had it posted, it would have by now.
    assert internal.received.get("moved", 0) == 0 and allowed.received.get("moved", 0) == 0
    resp = await routing.client.get(f"/v1/tickets?report_id={report_id}", headers=STAFF)
    (ticket,) = resp.json()
    assert ticket["status"] == "queued" and "127.0.0.1" in ticket["last_error"]
