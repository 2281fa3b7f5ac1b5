"""All five services in one process on the real servers, the demo county loaded through their APIs,
and what the mission test watches: every finished span, every log line, every error body."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from busutil import declare_all_streams
from conftest import Servers
from identityutil import KEY
from nats.js.errors import NotFoundError
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from routingutil import Simulator, grid_simulator
from serviceutil import Served, all_served

from minyi import demo, demo_county
from shared.auth import sign_token
from shared.settings import Settings
from shared.telemetry import setup_tracing

GRID_SECRET = "mission-grid-secret-000000000001"
REGISTRY_SOURCES = ("population", "social_security", "migrant")


def token(roles: Sequence[str], region: str = "", *, deputy_id: str | None = None, unit_id: str | None = None,
          sub: str | None = None) -> str:
    return sign_token(KEY, issuer="minyi", audience="minyi", sub=sub or deputy_id or unit_id or f"m-{roles[0]}",
                      roles=list(roles), region=region, deputy_id=deputy_id, unit_id=unit_id,
                      sources=REGISTRY_SOURCES if "integration" in roles else ())


def bearer(roles: Sequence[str] | str, region: str = "", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token([roles] if isinstance(roles, str) else roles, region, **claims)}"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Mission:
    county: demo_county.County
    loaded: demo.Loaded
    services: dict[str, Served]
    sim: Simulator
    client: httpx.AsyncClient
    spans: InMemorySpanExporter
    log: _Lines
    nats_url: str
    # Stream → the last sequence before the mission began: the scan reads only what came after.
    stream_start: dict[str, int] = field(default_factory=dict)
    error_bodies: list[str] = field(default_factory=list)

    def url(self, service: str, path: str) -> str:
        return f"{self.services[service].base_url}{path}"

    def trace_spans(self, trace_id: int) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


async def _stream_positions(nats_url: str) -> dict[str, int]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        return {info.config.name: info.state.last_seq for info in await js.streams_info() if info.config.name}
    finally:
        await nc.close()


async def messages_since(nats_url: str, start: dict[str, int], skip: Sequence[str] = ()
                         ) -> list[tuple[str, str, bytes]]:
    """(stream, subject, headers and data as bytes) of every message stored after the mission began."""
    nc = await nats.connect(nats_url)
    out: list[tuple[str, str, bytes]] = []
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name
            if not name or name in skip:
                continue
            for seq in range(max(start.get(name, 0) + 1, info.state.first_seq), info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except NotFoundError:
                    continue
                headers = "".join(f"{k}:{v}\n" for k, v in (msg.headers or {}).items()).encode()
                out.append((name, msg.subject or "", headers + (msg.data or b"")))
    finally:
        await nc.close()
    return out


def _settings(name: str, servers: Servers, home: Path, port: int) -> Settings:
    values: dict[str, Any] = {
        "database_url": servers.database_url, "nats_url": servers.nats_url, "home": home / name,
        "outbox_poll_seconds": 0.1, "retry_base_seconds": 0.2, f"{name}_port": port,
    }
    if name == "suggestions":
        values["temporal_address"] = servers.temporal_address
    if name == "routing":
        values.update(grid_retry_base_seconds=0.2, grid_retry_max_seconds=1.0, grid_dispatch_poll_seconds=0.2)
    if name == "intake":
        values["flood_limit"] = "1000/minute"
    return Settings(**values)


@asynccontextmanager
async def mission_stack(servers: Servers, home: Path, county_code: str) -> AsyncIterator[Mission]:
    setup_tracing("tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), f"tests need the SDK tracer provider, not {provider!r}"
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    log = _Lines()
    root = logging.getLogger()
    # What production writes (services log at INFO), whatever level the test run set.
    level, root.level = root.level, logging.INFO
    root.addHandler(log)
    await declare_all_streams(servers.nats_url)
    start = await _stream_positions(servers.nats_url)
    error_bodies: list[str] = []

    async def keep_errors(response: httpx.Response) -> None:
        if response.status_code >= 400:
            await response.aread()
            error_bodies.append(response.text)

    try:
        async with AsyncExitStack() as stack:
            sim = await stack.enter_async_context(
                grid_simulator(GRID_SECRET, "--callback-delay-ms", "200", log_file=home / "gridsim.log"))
            services = await stack.enter_async_context(
                all_served(servers.nats_url, lambda spec, port: _settings(spec.name, servers, home, port)))
            county = demo_county.county(county_code)
            endpoints = demo.Endpoints(**{name: s.base_url for name, s in services.items()})
            loaded = await demo.load(county, endpoints, lambda roles, region: token(roles, region),
                                     grid=demo.GridPlatform(sim.url, GRID_SECRET), say=lambda line: None)
            client = await stack.enter_async_context(
                httpx.AsyncClient(timeout=60, event_hooks={"response": [keep_errors]}))
            yield Mission(county, loaded, services, sim, client, spans, log, servers.nats_url, start, error_bodies)
    finally:
        root.removeHandler(log)
        root.setLevel(level)
        spans.shutdown()
