"""Small helpers for tests that look at JetStream and PostgreSQL directly."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js.errors import NotFoundError
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared import events


def unique_name(prefix: str = "probe") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def stream_messages(nats_url: str, stream: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in the stream as (subject, headers, data), in order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        out: list[tuple[str, dict[str, str], bytes]] = []
        if info.state.messages == 0:
            return out
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            out.append((msg.subject, dict(msg.headers or {}), msg.data or b""))
        return out
    finally:
        await nc.close()


async def publish(nats_url: str, subject: str, body: bytes, msg_id: str | None = None) -> None:
    nc = await nats.connect(nats_url)
    try:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await nc.jetstream().publish(subject, body, headers=headers, timeout=5)
    finally:
        await nc.close()


async def publish_all(nats_url: str, messages: list[tuple[str, bytes, dict[str, str]]]) -> None:
    """Publish at once (pipelined on one connection), so they are in the stream together."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await asyncio.gather(*(js.publish(subject, body, headers=headers, timeout=10)
                               for subject, body, headers in messages))
    finally:
        await nc.close()


async def consumer_state(nats_url: str, stream: str, durable: str) -> Any:
    nc = await nats.connect(nats_url)
    try:
        return await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()


async def count_rows(database_url: str, table: Table) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        await engine.dispose()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Wait for a condition the system reaches on its own; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}")
        await asyncio.sleep(interval)


def conforming(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the fields its model requires and the test leaves out taken from the model's example
    (shared/events.py): consumers refuse an event of the catalogue that lacks one. Optional fields
    stay as the test has them, absent included."""
    model = events.MODELS.get(event_type)
    if model is None:
        return data
    example = events.example(model)
    required = {name: example[name] for name, field in model.model_fields.items()
                if field.is_required() and name not in data}
    return {**required, **data}


def event_body(event_id: str, event_type: str, data: dict[str, Any], *, complete: bool = True) -> bytes:
    """A CloudEvent as a producer would publish it; `complete=False` sends `data` exactly as given."""
    return json.dumps(
        {"specversion": "1.0", "id": event_id, "source": "/tests", "type": event_type,
         "data": conforming(event_type, data) if complete else data}
    ).encode()


async def fresh_database(database_url: str, name: str) -> str:
    """A new, empty database `name` on the same PostgreSQL (dropped first if a run left it); its URL.

    For tests whose data must not meet the rest of the session's (a whole-database sweep, a queue
    of another module's tickets)."""
    url = make_url(database_url)
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def declare_all_streams(nats_url: str) -> None:
    """Every producer's stream, declared up front: services wait for the streams they consume, so
    with all of them there they start in any order."""
    from shared.bus.streams import declare
    from shared.contracts import STREAMS

    nc = await nats.connect(nats_url)
    try:
        for spec in STREAMS.values():
            await declare(nc.jetstream(), spec, replicas=1)
    finally:
        await nc.close()
