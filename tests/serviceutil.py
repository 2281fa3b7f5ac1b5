"""A service of Minyi served over real HTTP on a free port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI
from identityutil import KEY

from shared.auth import TokenVerifier, public_pem
from shared.service import Runtime, ServiceSpec, build_app
from shared.settings import Settings


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
        await asyncio.wait_for(task, timeout=60)
