"""Prometheus metrics of one service, on its own port at `GET /metrics`.

Counted as they happen: HTTP requests by route template and status, with latencies, and messages
consumed by outcome. Read when scraped, each with a short timeout: consumer lag (from JetStream),
the outbox backlog, dead letters waiting on the service's dead-letter stream, and the counts of
what is past its deadline, where the service has deadlines. A probe that fails leaves its last
value and sets `minyi_metrics_probe_ok{probe}` to 0, so one slow dependency never blanks a scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("minyi.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROBE_TIMEOUT_SECONDS = 2.0
# Citizens wait on intake's answers; a report or a page should take well under a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Probe = Callable[[], Awaitable[Mapping[tuple[str, ...], float]]]


class Metrics:
    """The registry of one service process and the instruments on it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("minyi_http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("minyi_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.messages = Counter("minyi_consumer_messages", "Messages consumed, by outcome: applied, skipped "
                                "(applied before), retried, dead_lettered", ["consumer", "outcome"], registry=r)
        self.lag = Gauge("minyi_consumer_lag_messages", "Messages of a durable consumer not yet delivered, plus "
                         "those delivered and not yet acknowledged", ["consumer", "stream"], registry=r)
        self.outbox = Gauge("minyi_outbox_backlog", "Events committed and not yet published", registry=r)
        self.outbox_set_aside = Gauge("minyi_outbox_set_aside", "Events the relay can never publish as they are "
                                      "(over NATS's max_payload), waiting for an operator", registry=r)
        self.outbox_oldest = Gauge("minyi_outbox_oldest_seconds", "Age of the oldest event waiting to be "
                                   "published; grows when the relay is stuck", registry=r)
        self.dead_letters = Gauge("minyi_dead_letters", "Messages on the service's dead-letter stream",
                                  registry=r)
        self.overdue = Gauge("minyi_overdue", "Items past their deadline and not yet done, by kind", ["kind"],
                             registry=r)
        self.probe_ok = Gauge("minyi_metrics_probe_ok", "1 when the probe answered at the last scrape, else 0",
                              ["probe"], registry=r)
        self._probes: dict[str, tuple[Gauge, Probe]] = {}

    def consumed(self, consumer: str, outcome: str) -> None:
        self.messages.labels(consumer, outcome).inc()

    def probe(self, name: str, gauge: Gauge, read: Probe) -> None:
        """Read `gauge`'s values at each scrape: `read` returns them by label values (() when none)."""
        self._probes[name] = (gauge, read)

    async def render(self) -> bytes:
        await asyncio.gather(*(self._refresh(name, gauge, read) for name, (gauge, read) in self._probes.items()))
        return generate_latest(self.registry)

    async def _refresh(self, name: str, gauge: Gauge, read: Probe) -> None:
        try:
            values = await asyncio.wait_for(read(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("metrics probe %s failed: %s: %s", name, type(exc).__name__, exc)
            self.probe_ok.labels(name).set(0)
            return
        for labels, value in values.items():
            (gauge.labels(*labels) if labels else gauge).set(value)
        self.probe_ok.labels(name).set(1)


class HttpMetrics:
    """ASGI middleware counting each request under its route template (`/v1/reports/{report_id}`),
    never its raw path: ids and receipt codes would make a series per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route_of(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
