"""Transactional outbox: the event row commits with the state change; a relay publishes it.

The relay publishes each row with `Nats-Msg-Id` = event id and marks it only after JetStream's
PubAck, so a crash between the two republishes the row and the stream's duplicate window drops
the copy. Several replicas may relay at once: rows are claimed with FOR UPDATE SKIP LOCKED.

Rows are published in order, and a row that fails stops the batch so nothing overtakes it, except
a row that can never be published as it is (larger than the server's `max_payload`): that one is
set aside (`set_aside_at`, with the reason in `last_error`), logged as an error and counted, and
the events behind it go on. `minyi outbox` lists and releases set-aside rows once the cause is
fixed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nats.errors import MaxPayloadError
from opentelemetry import propagate, trace
from sqlalchemy import Table, Text, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.envelope import CONTENT_TYPE, CloudEvent

log = logging.getLogger("minyi.outbox")
tracer = trace.get_tracer("minyi.outbox")

# (subject, body, headers, stream) → PubAck duplicate flag
Publish = Callable[[str, bytes, dict[str, str], str], Awaitable[bool]]
# The largest message the connected server takes (its INFO `max_payload`), None while unknown.
MaxPayload = Callable[[], int | None]


def current_trace() -> dict[str, str]:
    """The current W3C trace context as headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def outbox_row(event: CloudEvent, *, stream: str, trace_headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The outbox row of an event, with the given trace context or else the current one, for callers
    that write it themselves."""
    carrier = dict(trace_headers) if trace_headers else current_trace()
    return {"event_id": event.id, "subject": event.type, "stream": stream,
            "payload": event.model_dump(mode="json", exclude_none=True), "trace_headers": carrier}


def staged(session: AsyncSession, count: int = 1) -> None:
    """Tell the relay, through the session, that the commit brings events to publish."""
    session.info["outbox_pending"] = session.info.get("outbox_pending", 0) + count


def raw_row(message_id: str, subject: str, body: dict[str, Any], *, stream: str) -> dict[str, Any]:
    """The outbox row of a message for an outside system that expects its own JSON, not a CloudEvent."""
    return {"event_id": message_id, "subject": subject, "stream": stream, "payload": body,
            "trace_headers": current_trace()}


async def add_event(session: AsyncSession, outbox: Table, event: CloudEvent, *, stream: str) -> None:
    """Stage an event in the caller's transaction; it is published only if that commits."""
    await session.execute(insert(outbox).values(**outbox_row(event, stream=stream)))
    staged(session)


@dataclass(frozen=True)
class Outgoing:
    """An event to stage: its type, data, CloudEvents subject, and the trace it continues (None: the current)."""

    type: str
    data: dict[str, Any]
    subject: str | None = None
    trace: dict[str, str] | None = None


async def add_rows(session: AsyncSession, outbox: Table, rows: list[dict[str, Any]]) -> None:
    """Stage many outbox rows with one statement."""
    if rows:
        await session.execute(insert(outbox), rows)  # executemany: one INSERT, compiled once
        staged(session, len(rows))


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0
    failures: int = 0
    set_aside: int = 0


@dataclass(frozen=True)
class OutboxHealth:
    waiting: int
    set_aside: int
    oldest_waiting_seconds: float


class Unpublishable(Exception):
    """A row the server will refuse however often it is sent."""


def message_size(subject: str, body: bytes, headers: dict[str, str]) -> int:
    """What NATS counts against `max_payload`: the body and the encoded header block."""
    header_block = len(b"NATS/1.0\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2
    return len(body) + (header_block if headers else 0)


class OutboxRelay:
    """Publishes committed outbox rows in order, marking each after its PubAck."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        publish: Publish,
        *,
        poll_seconds: float = 0.5,
        batch_size: int = 200,
        retention: timedelta = timedelta(days=7),
        name: str = "outbox",
        coalesce_seconds: float = 0.01,
        max_payload: MaxPayload = lambda: None,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.publish = publish
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.retention = retention
        self.name = name
        self.coalesce_seconds = coalesce_seconds
        self.max_payload = max_payload
        self._wake_pending = False
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Called after a commit that staged events, so they go out without waiting for the poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-relay")

    async def stop(self) -> None:
        """Finish the batch in hand, publish what is left while the connection is still there, then stop."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        try:
            while await self.relay_once() == self.batch_size:
                pass
        except Exception as exc:
            # Still in the table: the next start publishes it.
            log.warning("%s relay: could not publish the last events before stopping (%s)", self.name, exc)

    async def _run(self) -> None:
        failures = 0
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                sent = await self.relay_once()
                failures = 0
                if loop.time() - last_purge > 3600:
                    await self.purge()
                    last_purge = loop.time()
                if sent == self.batch_size:
                    continue
            except Exception as exc:
                failures += 1
                self.stats.failures += 1
                delay = min(30.0, 0.2 * 2**failures) * random.uniform(0.5, 1.0)
                log.warning("%s relay: publish failed (%s); retrying in %.1fs", self.name, exc, delay)
                await self._sleep(delay)
                continue
            await self._sleep(self.poll_seconds)
            if self._wake_pending and not self._stopping.is_set():
                # Woken by a commit: let the commits of the next few milliseconds join this batch,
                # so a burst costs one pass over the table instead of one per event.
                await asyncio.sleep(self.coalesce_seconds)

    async def _sleep(self, seconds: float) -> None:
        self._wake_pending = False
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
            self._wake_pending = True
        except TimeoutError:
            pass
        self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published and marked, or set aside."""
        async with self.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(self.outbox.c.seq, self.outbox.c.event_id, self.outbox.c.subject,
                           self.outbox.c.stream, self.outbox.c.payload, self.outbox.c.trace_headers)
                    .where(self.outbox.c.published_at.is_(None), self.outbox.c.set_aside_at.is_(None))
                    .order_by(self.outbox.c.seq)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            done: list[int] = []
            handled = 0
            try:
                for row in rows:
                    try:
                        duplicate = await self._publish_row(row.event_id, row.subject, row.stream, row.payload,
                                                            row.trace_headers)
                    except Unpublishable as exc:
                        await self._set_aside(session, row.seq, row.event_id, row.subject, str(exc))
                        handled += 1
                        continue
                    done.append(row.seq)
                    handled += 1
                    self.stats.published += 1
                    self.stats.duplicates += int(duplicate)
            except Exception as exc:
                # Keep what was acknowledged; the rest stays for the next round.
                if handled < len(rows):
                    await session.execute(
                        update(self.outbox)
                        .where(self.outbox.c.seq == rows[handled].seq)
                        .values(attempts=self.outbox.c.attempts + 1, last_error=str(exc)[:2000])
                    )
                if done:
                    await self._mark(session, done)
                raise
            if done:
                await self._mark(session, done)
            return handled

    async def _mark(self, session: AsyncSession, seqs: list[int]) -> None:
        await session.execute(
            update(self.outbox).where(self.outbox.c.seq.in_(seqs)).values(published_at=func.now())
        )

    async def _set_aside(self, session: AsyncSession, seq: int, event_id: str, subject: str, reason: str) -> None:
        await session.execute(
            update(self.outbox).where(self.outbox.c.seq == seq)
            .values(set_aside_at=func.now(), attempts=self.outbox.c.attempts + 1, last_error=reason[:2000])
        )
        self.stats.set_aside += 1
        log.error("%s relay: set aside event %s (%s): %s; the events after it go on. "
                  "See `minyi outbox list %s`.", self.name, event_id, subject, reason, self.name)

    async def _publish_row(
        self, event_id: str, subject: str, stream: str, payload: dict[str, Any], trace_headers: dict[str, str]
    ) -> bool:
        parent = propagate.extract(trace_headers or {})
        with tracer.start_as_current_span(f"{subject} relay", context=parent, kind=trace.SpanKind.PRODUCER):
            if "specversion" in payload:
                headers: dict[str, str] = {"Nats-Msg-Id": event_id, "content-type": CONTENT_TYPE}
                body = CloudEvent.model_validate(payload).to_bytes()
            else:
                headers = {"Nats-Msg-Id": event_id, "content-type": "application/json"}
                body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            propagate.inject(headers)
            limit = self.max_payload()
            size = message_size(subject, body, headers)
            if limit is not None and size > limit:
                raise Unpublishable(f"message of {size} bytes is over the server's max_payload of {limit} bytes")
            try:
                return await self.publish(subject, body, headers, stream)
            except MaxPayloadError as exc:
                raise Unpublishable(f"message of {size} bytes refused by the server as too large: {exc}") from exc

    async def purge(self) -> int:
        """Drop rows published longer ago than the retention; they only served for audits."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                delete(self.outbox).where(
                    self.outbox.c.published_at.is_not(None),
                    self.outbox.c.published_at < func.now() - self.retention,
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def backlog(self) -> int:
        """Rows waiting to go out (not those set aside)."""
        return (await self.health()).waiting

    async def health(self) -> OutboxHealth:
        """Rows waiting to go out, rows set aside, and the age in seconds of the oldest waiting row."""
        waiting = self.outbox.c.published_at.is_(None)
        async with self.sessions() as session:
            row = (await session.execute(
                select(func.count().filter(self.outbox.c.set_aside_at.is_(None)),
                       func.count().filter(self.outbox.c.set_aside_at.is_not(None)),
                       func.coalesce(func.extract("epoch", func.now() - func.min(self.outbox.c.created_at).filter(
                           self.outbox.c.set_aside_at.is_(None))), 0))
                .select_from(self.outbox).where(waiting)
            )).one()
            return OutboxHealth(int(row[0] or 0), int(row[1] or 0), float(row[2] or 0.0))


async def set_aside_rows(session: AsyncSession, outbox: Table) -> list[dict[str, Any]]:
    """The rows the relay set aside, oldest first, with why."""
    rows = (await session.execute(
        select(outbox.c.seq, outbox.c.event_id, outbox.c.subject, outbox.c.created_at, outbox.c.set_aside_at,
               outbox.c.last_error, func.octet_length(func.cast(outbox.c.payload, Text)).label("payload_bytes"))
        .where(outbox.c.set_aside_at.is_not(None), outbox.c.published_at.is_(None))
        .order_by(outbox.c.seq)
    )).mappings().all()
    return [dict(r) for r in rows]


async def release(session: AsyncSession, outbox: Table, event_ids: list[str] | None = None) -> int:
    """Put set-aside rows back in line (after raising `max_payload`, say); all of them when no ids are given."""
    query = update(outbox).where(outbox.c.set_aside_at.is_not(None), outbox.c.published_at.is_(None))
    if event_ids is not None:
        query = query.where(outbox.c.event_id.in_(event_ids))
    result = await session.execute(query.values(set_aside_at=None))
    return int(getattr(result, "rowcount", 0) or 0)
