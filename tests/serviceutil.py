"""A service of Minyi served over real HTTP on a free port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from busutil import declare_all_streams
from fastapi import FastAPI
from identityutil import KEY
from temporalio.testing import WorkflowEnvironment

from minyi.servers import Nats, binary, free_port
from services.identity.service import SPEC as IDENTITY
from services.intake.service import SPEC as INTAKE
from services.routing.service import SPEC as ROUTING
from services.scoring.service import SPEC as SCORING
from services.suggestions.service import SPEC as SUGGESTIONS
from shared.auth import TokenVerifier, public_pem
from shared.service import Runtime, ServiceSpec, build_app
from shared.settings import Settings
from shared.temporal_data import DATA_CONVERTER


@dataclass
class Served:
    client: httpx.AsyncClient
    runtime: Runtime
    base_url: str


@asynccontextmanager
async def served(spec: ServiceSpec, settings: Settings, port: int,
                 prepare: Callable[[Runtime], None] | None = None) -> AsyncIterator[Served]:
    """Starts the app with its lifespan (migrations, bus, workers) and waits until it consumes."""
    app: FastAPI = build_app(spec, settings)
    app.state.token_verifier = TokenVerifier(issuer="minyi", audience="minyi", public_key_pem=public_pem(KEY))
    runtime: Runtime = app.state.runtime
    if prepare is not None:
        prepare(runtime)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 60
        while not (server.started and runtime.bus_started.is_set()):
            if task.done():
                task.result()
                raise AssertionError(f"{spec.name} stopped while starting")
            if time.monotonic() > deadline:
                raise AssertionError(f"{spec.name} did not start within 60 s")
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            yield Served(client, runtime, base_url)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=60)
        except TimeoutError:
            raise AssertionError(f"{spec.name} did not stop within 60 s") from None


@asynccontextmanager
async def all_served(nats_url: str, settings_of: Callable[[ServiceSpec, int], Settings],
                     prepare: Callable[[ServiceSpec, Runtime], None] | None = None
                     ) -> AsyncIterator[dict[str, Served]]:
    """The five services in this process, each over real HTTP on a free port with the settings
    `settings_of(spec, port)` gives it; every stream is declared first."""
    await declare_all_streams(nats_url)
    async with AsyncExitStack() as stack:
        running: dict[str, Served] = {}
        for spec in (IDENTITY, INTAKE, ROUTING, SUGGESTIONS, SCORING):
            port = free_port()
            hook = (lambda runtime, spec=spec: prepare(spec, runtime)) if prepare is not None else None
            running[spec.name] = await stack.enter_async_context(served(spec, settings_of(spec, port), port, hook))
        yield running


@asynccontextmanager
async def own_stack(database_url: str, root: Path) -> AsyncIterator[dict[str, str]]:
    """The five services over real HTTP on `database_url` (a database of the caller's own), a NATS and
    a time-skipping Temporal test server started here; their base URLs by name."""
    bus = Nats(root / "nats" / "js", free_port(), free_port(), root / "logs" / "nats.log", root / "nats" / "nats.conf")
    await asyncio.to_thread(bus.start)
    try:
        async with await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=binary("temporal-test-server"), data_converter=DATA_CONVERTER
        ) as temporal:

            def settings_of(spec: ServiceSpec, port: int) -> Settings:
                return Settings(database_url=database_url, nats_url=bus.url, home=root / spec.name,
                                db_pool_size=5, outbox_poll_seconds=0.2, retry_base_seconds=0.2,
                                **{f"{spec.name}_port": port})

            def use_temporal(spec: ServiceSpec, runtime: Runtime) -> None:
                if spec.uses_temporal:
                    runtime.temporal = temporal.client

            async with all_served(bus.url, settings_of, use_temporal) as running:
                yield {name: service.base_url for name, service in running.items()}
    finally:
        await asyncio.to_thread(bus.stop)
