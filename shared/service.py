"""The runtime every service shares: one way to start, serve, be ready and stop.

A service describes itself with a `ServiceSpec` (its schema, the streams it produces into, its
HTTP routers, its subscriptions and its core NATS request/reply responders); `build_app` turns
that into a FastAPI app whose lifespan migrates the schema, connects PostgreSQL, NATS and (where
used) Temporal, declares the service's streams, relays its outbox, starts its consumers and
responders, and stops all of that in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.nats import NatsBroker, NatsUserPassword
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.types import ASGIApp

from shared import audit, events, idempotency, openapi_doc, problems
from shared.auth import Principal
from shared.body_limit import BodyLimit
from shared.bus import consumer, inbox, streams
from shared.bus.envelope import CloudEvent, new_event
from shared.bus.fetch_timeouts import FetchTimeouts
from shared.bus.outbox import OutboxRelay, Outgoing, add_rows, outbox_row
from shared.bus.tables import inbox_table, outbox_table
from shared.client_source import ClientPseudonym
from shared.db import Database, upgrade_async
from shared.errors import install_problem_handlers
from shared.metrics import CONTENT_TYPE, HttpMetrics, Metrics
from shared.pii import Keyring, ensure_dev_keyring
from shared.proxy import load_proxy_secret
from shared.settings import Settings, get_settings, redacted_url
from shared.telemetry import setup_logging, setup_tracing

log = logging.getLogger("minyi.service")

# Longer than the longest stream retention, so a replayed event is still recognised.
INBOX_RETENTION = timedelta(days=400)
# A worker that crashed this recently makes the service not ready. Longer than the restart pause, so
# a worker that crashes on every start (a missing Temporal namespace, a broken registration) keeps
# the service out of rotation, while one crash a while ago does not.
WORKER_RESTART_SECONDS = 5.0
WORKER_FAILURE_WINDOW_SECONDS = 60.0
# Larger than any form or command a person or system sends; routes that take batches say more.
DEFAULT_BODY_LIMIT = 256 * 1024


@dataclass(frozen=True)
class EventSpec:
    """An event a service publishes: documented in AsyncAPI, routed to its stream by prefix."""

    type: str
    description: str


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    metadata: MetaData
    stream: streams.StreamSpec | None
    events: Sequence[EventSpec] = ()
    routers: Sequence[APIRouter] = ()
    subscriptions: Callable[[Runtime], Sequence[consumer.Subscription]] = lambda runtime: ()
    # Core NATS request/reply handlers: registers `runtime.broker.subscriber(...)`s whose return
    # value is the reply. No JetStream, no inbox: a lost request is simply asked again.
    responders: Callable[[Runtime], None] = lambda runtime: None
    extra_streams: Sequence[streams.StreamSpec] = ()
    # Long-running loops of the service (batch feeds, job runners), started once its streams exist.
    workers: Callable[[Runtime], Sequence[Callable[[], Awaitable[None]]]] = lambda runtime: ()
    uses_temporal: bool = False
    # Path segments that are secrets (a receipt code is all it takes to follow and rate a report):
    # regexes whose matches are replaced in the URL attributes of traces.
    secret_paths: Sequence[str] = ()
    # Largest request bodies by path prefix; other paths get `default_body_limit`. Every service has
    # one: without it a body of any size is read and parsed before the token is even looked at.
    body_limits: Mapping[str, int] = field(default_factory=dict)
    default_body_limit: int = DEFAULT_BODY_LIMIT
    # Counts of what is past its deadline and not done, by kind, for `minyi_overdue{kind}`.
    overdue: Callable[[Runtime], Awaitable[Mapping[str, int]]] | None = None
    # Loads the secrets the service cannot work without, before it connects to anything: a missing or
    # unreadable one stops the start with its name, instead of failing the first citizen's request.
    load_secrets: Callable[[Runtime], None] = lambda runtime: None
    # Run once connected, before the service takes its first request or event: what would make the
    # first ones slow (a dictionary loaded on first use, statements compiled), so that a replica
    # enters service warm. A failure is logged, not fatal: it costs the first requests time only.
    warm_up: Callable[[Runtime], Awaitable[None]] | None = None

    @property
    def produced_streams(self) -> list[streams.StreamSpec]:
        own = [self.stream] if self.stream else []
        return [*own, *self.extra_streams, streams.dead_letter_stream(self.name)]


_Kept = TypeVar("_Kept")


@dataclass
class Runtime:
    """Live connections of one service process; reachable from handlers as `request.app.state.runtime`."""

    spec: ServiceSpec
    settings: Settings
    broker: NatsBroker
    outbox: Table
    inbox: Table
    audit: Table
    db: Database | None = None
    relay: OutboxRelay | None = None
    temporal: Any = None
    subscriptions: Sequence[consumer.Subscription] = ()
    batch_consumers: list[consumer.BatchConsumer] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    # Never connected: documents in AsyncAPI what the batch consumers fetch outside FastStream.
    described: NatsBroker = field(default_factory=lambda: NatsBroker(log_level=logging.DEBUG))
    bus_started: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _keyring: Keyring | None = None
    # What a service keeps for the life of its process (signers, caches), by a key of its choosing.
    state: dict[str, Any] = field(default_factory=dict)
    # After a commit whose session.info holds one of these keys, its hook runs (wakes a worker).
    commit_hooks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # Each supervised worker's last crash: (time.monotonic(), what it raised). Read by /readyz.
    worker_failures: dict[str, tuple[float, str]] = field(default_factory=dict)
    # What the web tier shows to name the citizen it calls for (shared/proxy.py); None: no proxy trusted.
    proxy_secret: bytes | None = None

    def kept(self, key: str, make: Callable[[], _Kept]) -> _Kept:
        """The process's one `key` in `state`, made by `make` the first time it is asked for."""
        found = self.state.get(key)
        if found is None:
            found = self.state[key] = make()
        return cast(_Kept, found)
    _secrets_loaded: bool = False

    @property
    def keyring(self) -> Keyring:
        """Keys for personal data: the operator's secret file, or with MINYI_DEV_SECRETS a development one."""
        if self._keyring is None:
            path, dev = self.settings.secret_file("pii_keys_file", self.settings.dev_pii_keys_file)
            self._keyring = ensure_dev_keyring(path) if dev else Keyring.from_file(path)
        return self._keyring

    @property
    def idempotency_table(self) -> Table | None:
        """The service's `Idempotency-Key` table, when its schema has one."""
        schema = self.spec.metadata.schema
        return self.spec.metadata.tables.get(f"{schema}.{idempotency.TABLE_NAME}")

    @property
    def database(self) -> Database:
        if self.db is None:
            raise RuntimeError(f"{self.spec.name}: the database is not connected yet")
        return self.db

    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.database.transaction() as session:
            yield session

    async def emit(self, session: AsyncSession, event_type: str, data: dict[str, Any],
                   subject: str | None = None) -> str:
        """Stage an event in `session`'s transaction; the relay publishes it after the commit."""
        return (await self.emit_many(session, [Outgoing(event_type, data, subject)]))[0]

    async def record_audit(self, session: AsyncSession, who: Principal | str | None, action: str, *,
                           subject_type: str,
                           subject_id: str, region_code: str | None = None,
                           detail: dict[str, Any] | None = None) -> None:
        """An audit entry in `session`'s transaction (see shared/audit.py): no personal data in `detail`."""
        await audit.record(session, self.audit, who, action, subject_type=subject_type, subject_id=subject_id,
                           region_code=region_code, detail=detail)

    async def emit_many(self, session: AsyncSession, events: Sequence[Outgoing]) -> list[str]:
        """Stage many events with one statement; see `emit`."""
        for e in events:
            self.check_event(e.type, e.data)
        made = [(new_event(self.spec.name, e.type, e.data, e.subject), e) for e in events]
        await add_rows(session, self.outbox, [outbox_row(event, stream=self.stream_for(e.type), trace_headers=e.trace)
                                              for event, e in made])
        return [event.id for event, _ in made]

    def check_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Refuse an event of Minyi's catalogue whose data its model does not describe exactly (a bug
        in the producer, found before anything is written rather than by a consumer later)."""
        if event_type in events.MODELS or any(e.type == event_type for e in self.spec.events):
            events.check_outgoing(event_type, data)

    def stream_for(self, subject: str) -> str:
        for spec in self.spec.produced_streams:
            for pattern in spec.subjects:
                if streams.subject_matches(pattern, subject):
                    return spec.name
        raise ValueError(f"{self.spec.name} does not produce into any stream holding {subject!r}")

    async def publish(self, subject: str, body: bytes, headers: dict[str, str], stream: str) -> bool:
        ack = await self.broker.publish(body, subject, headers=headers, stream=stream, timeout=5.0)
        return bool(getattr(ack, "duplicate", False))


def load_secrets(runtime: Runtime) -> None:
    """The service's own secrets (`ServiceSpec.load_secrets`) and the proxy secret, once per process."""
    if runtime._secrets_loaded:
        return
    runtime.spec.load_secrets(runtime)
    # Every service loads it, not only intake: the web tier may call any of them for a citizen.
    runtime.proxy_secret = load_proxy_secret(runtime.settings)
    runtime._secrets_loaded = True


def load_keyring(runtime: Runtime) -> None:
    """`ServiceSpec.load_secrets` of a service that keeps personal data."""
    runtime.keyring  # noqa: B018 (loading is the point)


def make_runtime(spec: ServiceSpec, settings: Settings) -> Runtime:
    provider = setup_tracing(spec.name)
    bus_log = logging.getLogger(f"minyi.{spec.name}.bus")
    if not any(isinstance(f, FetchTimeouts) for f in bus_log.filters):
        bus_log.addFilter(FetchTimeouts())
    password = settings.nats_password.get_secret_value() if settings.nats_password else ""
    broker = NatsBroker(
        settings.nats_url or "nats://127.0.0.1:4222",
        name=f"minyi-{spec.name}",
        # The service's own NATS user, when the server has users; its replies then arrive under that
        # user's own inbox prefix, the only one its permissions let it subscribe to.
        security=NatsUserPassword(settings.nats_user, password) if settings.nats_user else None,
        inbox_prefix=settings.nats_inbox_prefix,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        graceful_timeout=20.0,
        middlewares=[NatsTelemetryMiddleware(tracer_provider=provider)],
        logger=bus_log,
        # "Received"/"Processed" for every message: two lines per event at INFO was most of the log
        # and a real share of a consumer's CPU. Failures are still logged at ERROR.
        log_level=logging.DEBUG,
    )
    runtime = Runtime(
        spec=spec,
        settings=settings,
        broker=broker,
        outbox=_table(spec.metadata, "outbox", outbox_table),
        inbox=_table(spec.metadata, "inbox", inbox_table),
        audit=_table(spec.metadata, audit.TABLE, audit.audit_table),
    )
    ctx = consumer.ConsumerContext(
        service=spec.name,
        session_factory=runtime.sessions,
        inbox=runtime.inbox,
        publish=runtime.publish,
        max_deliver=settings.max_deliver,
        ack_wait_seconds=settings.ack_wait_seconds,
        retry_base_seconds=settings.retry_base_seconds,
        count=runtime.metrics.consumed,
    )
    runtime.subscriptions = tuple(spec.subscriptions(runtime))
    for sub in runtime.subscriptions:
        if sub.batch is None:
            consumer.register(broker, ctx, sub)
        else:
            runtime.batch_consumers.append(consumer.BatchConsumer(ctx, sub))
            consumer.describe(runtime.described, ctx, sub)
    spec.responders(runtime)
    # FastStream's pull subscribers fetch into inboxes of their own option (default `_INBOX.`), not the
    # connection's: give them the user's prefix too, or the server refuses their subscriptions.
    for subscriber in broker.subscribers:
        if "inbox_prefix" in subscriber.extra_options:
            subscriber.extra_options["inbox_prefix"] = f"{settings.nats_inbox_prefix}.".encode()
    for ev in spec.events:
        broker.publisher(ev.type, title=ev.type, description=ev.description, schema=CloudEvent)
    return runtime


def _table(metadata: MetaData, name: str, factory: Callable[[MetaData], Table]) -> Table:
    key = f"{metadata.schema}.{name}" if metadata.schema else name
    return metadata.tables[key] if key in metadata.tables else factory(metadata)


async def _start(runtime: Runtime) -> None:
    spec, settings = runtime.spec, runtime.settings
    load_secrets(runtime)
    database_url = settings.require("database_url")
    nats_url = settings.require("nats_url")
    if settings.nats_user:
        settings.require("nats_password")
    if settings.migrate_on_start:
        log.info("migrating schema %s", spec.name)
        await upgrade_async(spec.name, database_url)

    def after_commit(session: Session) -> None:
        if session.info.pop("outbox_pending", 0) and runtime.relay is not None:
            runtime.relay.wake()
        for key, hook in runtime.commit_hooks.items():
            if session.info.pop(key, None):
                hook()

    runtime.db = Database.connect(database_url, application_name=f"minyi-{spec.name}",
                                  pool_size=runtime.settings.db_pool_size, on_commit=after_commit)
    await runtime.database.ping(timeout=10)

    log.info("connecting to NATS at %s%s", redacted_url(nats_url),
             f" as {settings.nats_user}" if settings.nats_user else " without a user")
    await runtime.broker.connect()
    js = runtime.broker.config.connection_state.stream
    for stream in spec.produced_streams:
        await streams.declare(js, stream, settings.stream_replicas)

    runtime.relay = OutboxRelay(
        runtime.database.sessions,
        runtime.outbox,
        runtime.publish,
        poll_seconds=settings.outbox_poll_seconds,
        name=spec.name,
        max_payload=lambda: _max_payload(runtime),
    )
    runtime.relay.start()

    if spec.uses_temporal and runtime.temporal is None:  # a test may hand in its own client
        from temporalio.client import Client

        from shared.temporal_data import DATA_CONVERTER
        from shared.temporal_tracing import TraceInterceptor

        # pydantic: workflow inputs and state carry datetimes and dataclasses, checked on the way in.
        # The interceptor reaches the worker made from this client too: a request and the events its
        # workflow step's activity emits share one trace.
        runtime.temporal = await Client.connect(
            settings.require("temporal_address"), namespace=settings.temporal_namespace,
            data_converter=DATA_CONVERTER, interceptors=[TraceInterceptor()],
        )

    if spec.warm_up is not None:
        started = time.monotonic()
        try:
            await spec.warm_up(runtime)
            log.info("%s: warmed up in %.0f ms", spec.name, (time.monotonic() - started) * 1000)
        except Exception as exc:
            log.warning("%s: warming up failed (%s: %s); the first requests will be slower", spec.name,
                        type(exc).__name__, exc)
    _probe_metrics(runtime)
    consumed = sorted({sub.stream for sub in runtime.subscriptions})
    runtime._tasks.append(asyncio.create_task(_start_consumers(runtime, consumed), name="start-consumers"))
    runtime._tasks.append(asyncio.create_task(_housekeeping(runtime), name="housekeeping"))


def _max_payload(runtime: Runtime) -> int | None:
    connection = runtime.broker.config.connection_state.connection
    size = getattr(connection, "max_payload", None) if connection is not None else None
    return int(size) if size else None


def _probe_metrics(runtime: Runtime) -> None:
    """What `/metrics` reads from JetStream and PostgreSQL at each scrape."""
    m, js = runtime.metrics, runtime.broker.config.connection_state.stream

    async def lag() -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for sub in runtime.subscriptions:
            info = await js.consumer_info(sub.stream, sub.durable)
            out[(sub.durable, sub.stream)] = float((info.num_pending or 0) + (info.num_ack_pending or 0))
        return out

    async def outbox() -> dict[tuple[str, ...], float]:
        if runtime.relay is None:
            return {}
        health = await runtime.relay.health()
        m.outbox_set_aside.set(health.set_aside)
        m.outbox_oldest.set(health.oldest_waiting_seconds)
        return {(): float(health.waiting)}

    async def dead_letters() -> dict[tuple[str, ...], float]:
        info = await js.stream_info(streams.dead_letter_stream(runtime.spec.name).name)
        return {(): float(info.state.messages)}

    m.probe("consumer_lag", m.lag, lag)
    m.probe("outbox", m.outbox, outbox)
    m.probe("dead_letters", m.dead_letters, dead_letters)
    overdue = runtime.spec.overdue
    if overdue is not None:
        async def late() -> dict[tuple[str, ...], float]:
            return {(kind,): float(n) for kind, n in (await overdue(runtime)).items()}

        m.probe("overdue", m.overdue, late)


async def _start_consumers(runtime: Runtime, consumed: list[str]) -> None:
    """In the background, so /healthz answers while we wait for producers to declare their streams."""
    js = runtime.broker.config.connection_state.stream
    await streams.wait_for_streams(js, consumed)
    await runtime.broker.start()
    for batches in runtime.batch_consumers:
        await batches.start(js)
    for worker in runtime.spec.workers(runtime):
        runtime._tasks.append(asyncio.create_task(_supervised(runtime, worker), name=f"worker-{worker.__name__}"))
    runtime.bus_started.set()
    log.info("%s consuming from %s", runtime.spec.name, ", ".join(consumed) or "no stream")


async def _supervised(runtime: Runtime, worker: Callable[[], Awaitable[None]]) -> None:
    """Keep a worker running: a crash is logged, remembered for /readyz, and the worker starts again
    after a pause."""
    name = worker.__name__
    while True:
        try:
            await worker()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if await _infrastructure_down(runtime):
                # PostgreSQL or NATS is away: /readyz says so through its own checks for exactly as long
                # as it lasts, and the worker picks up when it is back. Counting it as a crash too would
                # keep every replica out of rotation for a minute after any blip.
                log.warning("%s: worker %s stopped while PostgreSQL or NATS is away (%s: %s); restarting in %.0f s",
                            runtime.spec.name, name, type(exc).__name__, exc, WORKER_RESTART_SECONDS)
            else:
                runtime.worker_failures[name] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
                log.exception("%s: worker %s failed; restarting in %.0f s", runtime.spec.name, name,
                              WORKER_RESTART_SECONDS)
            await asyncio.sleep(WORKER_RESTART_SECONDS)


async def _infrastructure_down(runtime: Runtime) -> bool:
    """Whether the service's own PostgreSQL or NATS is unreachable right now (asked when a worker stops)."""
    connection = runtime.broker.config.connection_state.connection
    if connection is None or not connection.is_connected:
        return True
    if runtime.db is None:
        return False
    try:
        await runtime.database.ping(timeout=2)
    except Exception:
        return True
    return False


async def _housekeeping(runtime: Runtime) -> None:
    """Forget inbox ids older than any redelivery or stream replay can bring back, and old idempotency keys."""
    while True:
        try:
            async with runtime.transaction() as session:
                removed = await inbox.purge(session, runtime.inbox, INBOX_RETENTION)
                keys = runtime.idempotency_table
                expired = await idempotency.purge(session, keys) if keys is not None else 0
            if removed or expired:
                log.info("%s: forgot %d old inbox entries and %d idempotency keys", runtime.spec.name,
                         removed, expired)
        except Exception as exc:
            log.warning("%s: inbox housekeeping failed: %s", runtime.spec.name, exc)
        await asyncio.sleep(6 * 3600)


# Once the stop's budget is spent, closing the NATS connection and the pool each still get this long.
_LAST_STEPS_SECONDS = 2.0


async def _stop(runtime: Runtime) -> None:
    """Stops the workers, the consumers, the relay and the bus, then lets go of the database, all
    within `stop_seconds`: a part that hangs is cut off with its name logged, and what comes after it
    still runs, so a stopped service never keeps answering on the bus."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.settings.stop_seconds

    async def within(what: str, step: Awaitable[object]) -> bool:
        # Closing the connection and the pool must happen even when the budget is spent.
        left = max(deadline - loop.time(), _LAST_STEPS_SECONDS)
        try:
            await asyncio.wait_for(step, left)
            return True
        except TimeoutError:
            log.error("%s: %s did not finish within %.0f s of stopping; stopping without it",
                      runtime.spec.name, what, runtime.settings.stop_seconds)
            return False

    for task in runtime._tasks:
        task.cancel()
    # Workers may be inside a transaction; let them roll back before the pool closes.
    await within("its workers", asyncio.gather(*runtime._tasks, return_exceptions=True))
    await within("the batches in hand",
                 asyncio.gather(*(batches.stop() for batches in runtime.batch_consumers), return_exceptions=True))
    # The relay drains while NATS is still connected; what consumers write after that stays in the
    # outbox, durable, for the next start to publish.
    if runtime.relay is not None:
        await within("the outbox relay", runtime.relay.stop())
    connection = None
    with contextlib.suppress(Exception):  # never connected: nothing to close
        connection = runtime.broker.config.connection_state.connection
    try:
        drained = await within("draining the NATS connection", runtime.broker.stop())
    except Exception as exc:
        # Stopping while NATS is away (draining needs a connection): nothing is lost, unacknowledged
        # messages are delivered again; the database must still be let go of.
        log.warning("%s: NATS connection not drained on stopping: %s: %s", runtime.spec.name,
                    type(exc).__name__, exc)
        drained = False
    if not drained and connection is not None and not connection.is_closed:
        # Undrained, the connection would keep this service's responders and subscriptions alive.
        with contextlib.suppress(Exception):
            await within("closing the NATS connection", connection.close())
    if runtime.db is not None:
        await within("closing the database pool", runtime.db.dispose())


async def readiness(runtime: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}

    async def check(name: str, probe: Callable[[], Any]) -> None:
        try:
            async with asyncio.timeout(2.0):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failing: {type(exc).__name__}: {exc}"[:300]

    async def database() -> None:
        await runtime.database.ping()

    async def nats() -> None:
        conn = runtime.broker.config.connection_state.connection
        if not conn.is_connected:
            raise ConnectionError("not connected")
        await runtime.broker.config.connection_state.stream.account_info()

    async def bus() -> None:
        if not runtime.bus_started.is_set():
            raise RuntimeError("consumers not started (waiting for streams)")

    async def workers() -> None:
        now = time.monotonic()
        recent = sorted((name, what) for name, (at, what) in runtime.worker_failures.items()
                        if now - at < WORKER_FAILURE_WINDOW_SECONDS)
        if recent:
            raise RuntimeError("; ".join(f"{name} crashed: {what}" for name, what in recent))

    async def temporal() -> None:
        if runtime.temporal is None:
            raise ConnectionError("not connected")
        if not await runtime.temporal.service_client.check_health():
            raise ConnectionError("unhealthy")

    probes: list[tuple[str, Callable[[], Any]]] = [("database", database), ("nats", nats), ("consumers", bus),
                                                   ("workers", workers)]
    if runtime.spec.uses_temporal:
        probes.append(("temporal", temporal))
    await asyncio.gather(*(check(n, p) for n, p in probes))
    return checks


def build_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = make_runtime(spec, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _start(runtime)
        # What was made to start (modules, the app, its routes: some 170,000 objects) lives as long
        # as the process. Frozen, the full collections no longer walk it each time: they took 65 ms
        # each in routing, and set its p99 (bench/hotspot_place.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await _stop(runtime)

    app = FastAPI(title=spec.title, description=spec.description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = runtime
    install_problem_handlers(app)
    problems.declare_component(app)
    openapi_doc.install(app, spec)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Database, NATS and (where used) Temporal are reachable",
             responses={503: {"description": "a dependency is not reachable"}})
    async def readyz() -> JSONResponse:
        checks = await readiness(runtime)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await runtime.metrics.render(), media_type=CONTENT_TYPE)

    for router in spec.routers:
        app.include_router(router)
    app.include_router(audit.audit_router())
    # One span per request: the per-chunk receive/send spans cost more than they tell.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz", exclude_spans=["receive", "send"],
                                       server_request_hook=span_redactor(spec.secret_paths))
    outermost(app, lambda inner: ClientPseudonym(inner, trust_forwarded_for=settings.trust_forwarded_for,
                                                  proxy_secret=lambda: runtime.proxy_secret))
    app.add_middleware(BodyLimit, limits=spec.body_limits, default=spec.default_body_limit)
    app.add_middleware(HttpMetrics, metrics=runtime.metrics)
    return app


_URL_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.full", "url.query")


def span_redactor(patterns: Sequence[str]) -> Callable[[Any, dict[str, Any]], None] | None:
    """A tracing hook that rewrites secret path segments in the server span's URL attributes."""
    if not patterns:
        return None
    compiled = [re.compile(p) for p in patterns]

    def redact(span: Any, scope: dict[str, Any]) -> None:
        if span is None or not span.is_recording():
            return
        attributes = getattr(span, "attributes", None) or {}
        for name in _URL_ATTRIBUTES:
            value = attributes.get(name)
            if isinstance(value, str):
                for pattern in compiled:
                    value = pattern.sub("{redacted}", value)
                span.set_attribute(name, value)
        name = getattr(span, "name", "")
        for pattern in compiled:
            name = pattern.sub("{redacted}", name)
        span.update_name(name)

    return redact


def outermost(app: FastAPI, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap the whole middleware stack, tracing included (which itself sits outside Starlette's own)."""
    build = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        return wrap(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def serve(spec: ServiceSpec) -> None:
    """Run one service until SIGTERM/SIGINT; uvicorn finishes in-flight requests first."""
    settings = get_settings()
    setup_logging(spec.name, settings.log_level)
    app = build_app(spec, settings)
    try:
        load_secrets(app.state.runtime)
    except (RuntimeError, OSError, ValueError) as exc:
        # A configuration error, not a crash: one line that names it, no traceback, and a status
        # that tells an orchestrator not to expect a different outcome from a restart alone.
        log.error("%s cannot start: %s", spec.name, exc)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.port_of(spec.name),
        log_config=None,
        timeout_graceful_shutdown=25,
        lifespan="on",
    )
    uvicorn.Server(config).run()
