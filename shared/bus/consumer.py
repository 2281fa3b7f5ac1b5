"""Reliable JetStream consumers: durable pull, inbox dedupe, bounded retries, dead letters.

A handler runs inside one database transaction together with the inbox row for its event, so
a redelivered event (a crash after the commit but before the ack) is acknowledged and skipped.
A subscription with a batch handler is fetched by a pull loop of its own (`BatchConsumer`) and
applies what one fetch brings in one transaction: the first message of a quiet stream comes alone
at once, and under load the messages that arrive while a batch is being written form the next
one. A batch that fails is taken apart and each of its events applied alone, so one bad event
never holds back the others and every message keeps its own retries and dead letter.
A failing handler is retried with growing delays; on its last allowed delivery the message goes
to `deadletter.<service>.<subject>` with the error and is acknowledged. A message that is not an
event at all goes there at once: retrying cannot fix it. A database that is away is waited for,
the messages held: only a failure of the event itself uses up its deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import inbox
from shared.bus.envelope import CloudEvent, MalformedEvent, parse_event
from shared.bus.outbox import Publish, current_trace
from shared.bus.streams import dead_letter_stream, dead_letter_subject
from shared.db import unreachable
from shared.events import PayloadError, RegistryRecord, model_for

log = logging.getLogger("minyi.consumer")
tracer = trace.get_tracer("minyi.consumer")

Handler = Callable[[CloudEvent, AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class Delivered:
    """An event with the trace context of the message that brought it, so what it causes (the
    events it stages) continues that trace even when it is written in a batch with others."""

    event: CloudEvent
    trace: dict[str, str] = field(default_factory=dict)


BatchHandler = Callable[[Sequence[Delivered], AsyncSession], Awaitable[None]]


def one_by_one(batch: BatchHandler) -> Handler:
    """The handler of a single event, for a batch handler (retries, replays)."""

    async def handle(event: CloudEvent, session: AsyncSession) -> None:
        await batch([Delivered(event, current_trace())], session)

    return handle


def each(handler: Handler) -> BatchHandler:
    """A batch handler applying `handler` to each event in turn, in the batch's one transaction,
    with the event's own trace context current, so what it stages continues that event's trace.

    For consumers whose work per event is small: a fetch of them then costs one transaction, one
    inbox statement and no per-message machinery of FastStream, whose share was larger than the
    handlers' own (intake's consumers, bench/README.md)."""

    async def handle(batch: Sequence[Delivered], session: AsyncSession) -> None:
        for delivered in batch:
            with continuing(delivered.trace):
                await handler(delivered.event, session)

    return handle


@contextmanager
def continuing(trace_headers: dict[str, str]) -> Iterator[None]:
    """What is staged inside continues the trace of the event that caused it, not the batch's."""
    token = otel_context.attach(propagate.extract(trace_headers))
    try:
        yield
    finally:
        otel_context.detach(token)


class BadEvent(ValueError):
    """An event that lacks what the handler needs: retrying cannot help, so it goes to dead letters."""


# What retrying cannot fix: the event itself is wrong.
POISON = (BadEvent, PayloadError)


def read_event(raw: bytes, subject: str, headers: dict[str, str]) -> CloudEvent:
    """Parse an envelope and read its data through its type's model (shared/events.py), so a malformed
    event is refused here, naming the field, before any handler sees it. Registry records are read
    one by one by identity, which refuses a bad record alone."""
    event = parse_event(raw, subject=subject, headers=headers)
    model = model_for(event.type, subject)
    if model is not None and model is not RegistryRecord:
        try:
            event.payload(model)
        except PayloadError as exc:
            raise MalformedEvent(str(exc)) from None
    return event


@dataclass(frozen=True)
class Subscription:
    subject: str
    stream: str
    durable: str
    handler: Handler
    description: str = ""
    # Above 1 only where messages are independent of each other (each about its own report, with
    # its own row locks): they are then handled up to this many at once instead of in stream order.
    # For a batch subscription: the most messages one fetch brings, and so one transaction writes.
    concurrency: int = 1
    # Applies many events in one transaction: the subscription is then fetched by a `BatchConsumer`.
    batch: BatchHandler | None = None


@dataclass(frozen=True)
class ConsumerContext:
    service: str
    # Resolved per message: the service connects its database after registering consumers.
    session_factory: Callable[[], async_sessionmaker[AsyncSession]]
    inbox: Table
    publish: Publish
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    # (consumer, outcome) for each message: applied, skipped, retried, dead_lettered
    count: Callable[[str, str], None] = lambda consumer, outcome: None


def retry_delay(ctx: ConsumerContext, delivery: int) -> float:
    return float(min(ctx.retry_max_seconds, ctx.retry_base_seconds * 2 ** max(0, delivery - 1)))


# How long a held message waits at most before the database is tried again.
HOLD_MAX_SECONDS = 5.0
T = TypeVar("T")


async def patiently(ctx: ConsumerContext, sub: Subscription, msgs: Sequence[Msg], work: Callable[[], Awaitable[T]],
                    stopping: Callable[[], bool] = lambda: False) -> T:
    """Run `work`; while the database is away, keep the messages in hand and try again.

    Counted as failed deliveries, an outage would use up the retries meant for poison and send good
    events to dead letters whenever PostgreSQL takes longer to come back than those retries last.
    So the messages are held (their ack deadline pushed back) until the database answers; only a
    failure of the event itself counts. A stopping consumer lets go: the messages come again."""
    attempt = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if isinstance(exc, POISON) or not unreachable(exc) or stopping():
                raise
            attempt += 1
            delay = min(retry_delay(ctx, attempt), ctx.ack_wait_seconds / 2, HOLD_MAX_SECONDS)
            if attempt == 1 or attempt % 12 == 0:
                log.warning("%s: the database is unreachable (%s: %s); holding %d message(s), next try in %.1fs",
                            sub.durable, type(exc).__name__, str(exc)[:200], len(msgs), delay)
            for raw in msgs:
                with contextlib.suppress(Exception):  # NATS may be away too: the message then comes again
                    await raw.in_progress()
            await asyncio.sleep(delay)


async def process(ctx: ConsumerContext, sub: Subscription, event: CloudEvent) -> bool:
    """Apply the handler once per event id; False when the event had been applied already."""
    async with ctx.session_factory()() as session, session.begin():
        fresh = await inbox.claim(
            session, ctx.inbox, consumer=sub.durable, event_id=event.id, subject=event.type
        )
        if not fresh:
            return False
        await sub.handler(event, session)
        return True


async def process_batch(ctx: ConsumerContext, sub: Subscription, batch: Sequence[Delivered]) -> list[bool]:
    """Apply the batch handler to the events not applied before, in one transaction; for each
    event of the batch, whether it was applied now (a repeated id counts once)."""
    assert sub.batch is not None
    async with ctx.session_factory()() as session, session.begin():
        fresh_ids = await inbox.claim_many(session, ctx.inbox, consumer=sub.durable,
                                           events=[(d.event.id, d.event.type) for d in batch])
        applied: list[bool] = []
        fresh: list[Delivered] = []
        for d in batch:
            new = d.event.id in fresh_ids
            applied.append(new)
            if new:
                fresh.append(d)
                fresh_ids.discard(d.event.id)
        if fresh:
            await sub.batch(fresh, session)
        return applied


async def on_failure(ctx: ConsumerContext, sub: Subscription, raw: Msg, exc: Exception) -> float | None:
    """Dead-letter what retrying cannot fix, or what has used its last delivery (None); otherwise
    the delay before the message is delivered again."""
    if isinstance(exc, POISON):
        await dead_letter(ctx, sub, raw, f"{type(exc).__name__}: {exc}")
        return None
    delivery = raw.metadata.num_delivered if raw.metadata else 1
    error = f"{type(exc).__name__}: {exc}"
    if delivery >= ctx.max_deliver:
        await dead_letter(ctx, sub, raw, error)
        return None
    ctx.count(sub.durable, "retried")
    delay = retry_delay(ctx, delivery)
    log.warning("%s failed on %s (delivery %d of %d), retry in %.1fs: %s",
                sub.durable, raw.subject, delivery, ctx.max_deliver, delay, error)
    return delay


def consumer_config(ctx: ConsumerContext, sub: Subscription) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=sub.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=JsAckPolicy.EXPLICIT,
        max_deliver=ctx.max_deliver,
        ack_wait=ctx.ack_wait_seconds,
        filter_subject=sub.subject,
    )


class BatchConsumer:
    """A durable pull consumer that applies what each fetch brings in one transaction.

    Each message gets its own consumer span, a child of the trace its producer sent, so the
    events a batch stages continue each message's own trace."""

    FETCH_WAIT_SECONDS = 5.0

    def __init__(self, ctx: ConsumerContext, sub: Subscription) -> None:
        assert sub.batch is not None
        self.ctx, self.sub, self.size = ctx, sub, max(1, sub.concurrency)
        self._psub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._in_hand: asyncio.Task[None] | None = None

    async def start(self, js: JetStreamContext) -> None:
        self._psub = await js.pull_subscribe(self.sub.subject, durable=self.sub.durable, stream=self.sub.stream,
                                             config=consumer_config(self.ctx, self.sub))
        self._task = asyncio.create_task(self._run(), name=f"{self.sub.durable}-batches")

    async def stop(self) -> None:
        """Finish the batch in hand, then stop fetching and leave no subscription behind."""
        self._stopping = True
        try:
            if self._in_hand is not None:
                await asyncio.gather(asyncio.shield(self._in_hand), return_exceptions=True)
        finally:
            # The stop's time ran out with the batch still in hand: cut off, its transaction rolls
            # back and its messages, unacknowledged, are delivered again.
            if self._in_hand is not None and not self._in_hand.done():
                self._in_hand.cancel()
                if self._task is not None:
                    self._task.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()

    async def _run(self) -> None:
        assert self._psub is not None
        while not self._stopping:
            try:
                msgs = await self._psub.fetch(self.size, timeout=self.FETCH_WAIT_SECONDS)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: the client reconnects; unacked messages come again
                log.warning("%s: fetch failed (%s: %s); trying again in 1 s", self.sub.durable,
                            type(exc).__name__, exc)
                await asyncio.sleep(1)
                continue
            # Shielded: a stop waits for the batch in hand instead of cutting it off mid-write.
            self._in_hand = asyncio.create_task(self.handle(msgs))
            await asyncio.shield(self._in_hand)
            self._in_hand = None

    async def handle(self, msgs: Sequence[Msg]) -> None:
        batch: list[tuple[Msg, Delivered, trace.Span]] = []
        for raw in msgs:
            headers = dict(raw.headers or {})
            span = tracer.start_span(f"{raw.subject} process", context=propagate.extract(headers),
                                     kind=trace.SpanKind.CONSUMER,
                                     attributes={"messaging.system": "nats", "messaging.destination.name": raw.subject,
                                                 "messaging.consumer.group.name": self.sub.durable})
            try:
                event = read_event(raw.data, raw.subject, headers)
            except MalformedEvent as exc:
                await self._settle(raw, span, f"malformed: {exc}")
                continue
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            batch.append((raw, Delivered(event, carrier), span))
        if not batch:
            return

        def stopping() -> bool:
            return self._stopping

        try:
            outcomes: list[bool | Exception] = list(await patiently(
                self.ctx, self.sub, [raw for raw, _, _ in batch],
                lambda: process_batch(self.ctx, self.sub, [d for _, d, _ in batch]), stopping))
        except Exception as exc:
            if len(batch) == 1:
                outcomes = [exc]
            else:
                log.info("%s: a batch of %d failed (%s: %s); applying its events one by one",
                         self.sub.durable, len(batch), type(exc).__name__, exc)
                outcomes = []
                for raw, d, _ in batch:
                    try:
                        outcomes.append((await patiently(self.ctx, self.sub, [raw],
                                                         partial(process_batch, self.ctx, self.sub, [d]),
                                                         stopping))[0])
                    except Exception as alone:
                        outcomes.append(alone)
        for (raw, d, span), outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                self.ctx.count(self.sub.durable, "applied" if outcome else "skipped")
            if outcome is False:
                log.info("%s skipped %s %s: already applied", self.sub.durable, raw.subject, d.event.id)
            await self._settle(raw, span, outcome if isinstance(outcome, Exception) else None)

    async def _settle(self, raw: Msg, span: trace.Span, failure: Exception | str | None) -> None:
        """Ack, dead-letter or schedule the retry of one message, and end its span."""
        try:
            if failure is None:
                await raw.ack()
            elif isinstance(failure, str):  # not an event at all: retrying cannot help
                await dead_letter(self.ctx, self.sub, raw, failure)
                await raw.ack()
            else:
                span.record_exception(failure)
                span.set_status(trace.StatusCode.ERROR, str(failure)[:200])
                delay = await on_failure(self.ctx, self.sub, raw, failure)
                await (raw.ack() if delay is None else raw.nak(delay=delay))
        except Exception as exc:  # the ack is lost with the connection: the message comes again, the inbox knows it
            log.warning("%s: could not settle %s (%s: %s)", self.sub.durable, raw.subject, type(exc).__name__, exc)
        finally:
            span.end()


def dead_letter_body(
    *,
    consumer: str,
    subject: str,
    stream: str | None,
    stream_seq: int | None,
    deliveries: int,
    error: str,
    raw: bytes,
    headers: dict[str, str],
) -> bytes:
    try:
        original: dict[str, Any] = {"text": raw.decode()}
    except UnicodeDecodeError:
        original = {"base64": base64.b64encode(raw).decode()}
    return json.dumps(
        {
            "consumer": consumer,
            "subject": subject,
            "stream": stream,
            "stream_seq": stream_seq,
            "deliveries": deliveries,
            "error": error,
            "failed_at": datetime.now(UTC).isoformat(),
            "original": original,
            "original_headers": headers,
        },
        ensure_ascii=False,
    ).encode()


async def dead_letter_raw(publish: Publish, service: str, consumer: str, raw_msg: Msg, error: str) -> None:
    """Park a JetStream message on `deadletter.<service>.<subject>` with its headers and the error."""
    meta = raw_msg.metadata
    stream_seq = meta.sequence.stream if meta and meta.sequence else None
    deliveries = meta.num_delivered if meta else 1
    headers = dict(raw_msg.headers or {})
    body = dead_letter_body(
        consumer=consumer,
        subject=raw_msg.subject,
        stream=meta.stream if meta else None,
        stream_seq=stream_seq,
        deliveries=deliveries or 1,
        error=error,
        raw=raw_msg.data,
        headers=headers,
    )
    dlq_headers = {
        "Nats-Msg-Id": f"dlq.{consumer}.{stream_seq if stream_seq is not None else headers.get('Nats-Msg-Id')}",
        "content-type": "application/json",
        # Header values travel as ASCII; the body keeps the error as written.
        "Minyi-Error": quote(error[:300], safe=" :;,./-_()[]'=<>@"),
    }
    await publish(dead_letter_subject(service, raw_msg.subject), body, dlq_headers,
                  dead_letter_stream(service).name)
    log.error("dead-lettered %s (consumer %s, delivery %s): %s", raw_msg.subject, consumer, deliveries, error)


async def dead_letter(ctx: ConsumerContext, sub: Subscription, raw: Msg, error: str) -> None:
    await dead_letter_raw(ctx.publish, ctx.service, sub.durable, raw, error)
    ctx.count(sub.durable, "dead_lettered")


def describe(broker: NatsBroker, ctx: ConsumerContext, sub: Subscription) -> None:
    """Document a batch subscription in AsyncAPI on a broker that is never started: a
    `BatchConsumer` fetches it, not FastStream."""

    @broker.subscriber(sub.subject, stream=JStream(sub.stream, declare=False), durable=sub.durable,
                       config=consumer_config(ctx, sub), pull_sub=PullSub(batch_size=sub.concurrency),
                       title=f"{sub.durable}:{sub.subject}", description=sub.description or None)
    async def documented(body: CloudEvent) -> None:  # one event a message, however they are fetched
        raise RuntimeError(f"{sub.durable} is consumed by a BatchConsumer, not through this broker")


def register(broker: NatsBroker, ctx: ConsumerContext, sub: Subscription) -> None:
    config = consumer_config(ctx, sub)

    @broker.subscriber(
        sub.subject,
        stream=JStream(sub.stream, declare=False),
        durable=sub.durable,
        config=config,
        # FastStream hands every message of a fetch to a task of its own: a subscription meant to go
        # in stream order (concurrency 1) must fetch them one at a time.
        pull_sub=PullSub(batch_size=32 if sub.concurrency > 1 else 1, timeout=2.0),
        max_workers=sub.concurrency,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{sub.durable}:{sub.subject}",
        description=sub.description or None,
    )
    # No parameters: FastStream resolves an annotated message argument (`NatsMessage`) through a
    # worker thread for every message, which cost more than the handling itself. The message is
    # in the broker's context for the handler's duration.
    async def consume() -> None:
        msg: NatsMessage = broker.context.get_local("message")
        raw = msg.raw_message
        try:
            event = read_event(raw.data, raw.subject, dict(raw.headers or {}))
        except MalformedEvent as exc:
            await dead_letter(ctx, sub, raw, f"malformed: {exc}")
            return
        try:
            applied = await patiently(ctx, sub, [raw], lambda: process(ctx, sub, event))
        except Exception as exc:
            delay = await on_failure(ctx, sub, raw, exc)
            if delay is None:
                return
            raise NackMessage(delay=delay) from exc
        ctx.count(sub.durable, "applied" if applied else "skipped")
        if not applied:
            log.info("%s skipped %s %s: already applied", sub.durable, raw.subject, event.id)
