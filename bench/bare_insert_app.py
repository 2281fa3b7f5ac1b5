"""Baseline for bench/intake_submit.py: the least a `POST /v1/reports` endpoint can do.

    .venv/bin/python bench/bare_insert_app.py --port 8199 --dsn postgresql://postgres@127.0.0.1:15432/minyi

A bare FastAPI app under uvicorn with the settings `shared.service.serve` uses (uvloop and
httptools from uvicorn[standard], the same logging, so no access lines): it parses the JSON body
and does one asyncpg INSERT of (id, content, created_at) into `public.bare_reports` through a pool
of 10 connections. No validation beyond "content is a string", no auth, no events, no encryption.
`GET /readyz` answers 200 once the pool reaches PostgreSQL, like the services' own.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.telemetry import setup_logging

POOL_SIZE = 10
DDL = """
CREATE TABLE IF NOT EXISTS public.bare_reports (
    id uuid PRIMARY KEY,
    content text NOT NULL,
    created_at timestamptz NOT NULL
)
"""
INSERT = "INSERT INTO public.bare_reports (id, content, created_at) VALUES ($1, $2, $3)"


def build_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        try:
            await pool.execute(DDL)
            app.state.pool = pool
            yield
        finally:
            await pool.close()

    app = FastAPI(title="bare insert", lifespan=lifespan)

    @app.post("/v1/reports", status_code=201)
    async def submit(request: Request) -> JSONResponse:
        body = await request.json()
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            return JSONResponse({"detail": "content must be a string"}, status_code=422)
        report_id = uuid.uuid4()
        await request.app.state.pool.execute(INSERT, report_id, content, datetime.now(UTC))
        return JSONResponse({"id": str(report_id)}, status_code=201)

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        await request.app.state.pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ready"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="postgresql://… (asyncpg form, no +asyncpg)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    setup_logging("bare", args.log_level)
    # The same uvicorn.Config as shared.service.serve, so only the app differs.
    config = uvicorn.Config(
        build_app(args.dsn),
        host=args.host,
        port=args.port,
        log_config=None,
        timeout_graceful_shutdown=25,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
