"""Reliable JetStream consumers: durable pull, inbox dedupe, bounded retries, dead letters.

A handler runs inside one database transaction together with the inbox row for its event, so
a redelivered event (a crash after the commit but before the ack) is acknowledged and skipped.
A failing handler is retried with growing delays; on its last allowed delivery the message goes
to `deadletter.<service>.<subject>` with the error and is acknowledged. A message that is not an
event at all goes there at once: retrying cannot fix it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import inbox
from shared.bus.envelope import CloudEvent, MalformedEvent, parse_event
from shared.bus.outbox import Publish
from shared.bus.streams import dead_letter_stream, dead_letter_subject

log = logging.getLogger("minyi.consumer")

Handler = Callable[[CloudEvent, AsyncSession], Awaitable[None]]


class BadEvent(ValueError):
    """An event that lacks what the handler needs: retrying cannot help, so it goes to dead letters."""


@dataclass(frozen=True)
class Subscription:
    subject: str
    stream: str
    durable: str
    handler: Handler
    description: str = ""
    # Above 1 only where messages are independent of each other (each about its own report, with
    # its own row locks): they are then handled up to this many at once instead of in stream order.
    concurrency: int = 1


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


def retry_delay(ctx: ConsumerContext, delivery: int) -> float:
    return float(min(ctx.retry_max_seconds, ctx.retry_base_seconds * 2 ** max(0, delivery - 1)))


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


async def send_to_dead_letter(ctx: ConsumerContext, sub: Subscription, msg: NatsMessage, error: str) -> None:
    await dead_letter_raw(ctx.publish, ctx.service, sub.durable, msg.raw_message, error)


def register(broker: NatsBroker, ctx: ConsumerContext, sub: Subscription) -> None:
    config = ConsumerConfig(
        durable_name=sub.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=JsAckPolicy.EXPLICIT,
        max_deliver=ctx.max_deliver,
        ack_wait=ctx.ack_wait_seconds,
        filter_subject=sub.subject,
    )

    @broker.subscriber(
        sub.subject,
        stream=JStream(sub.stream, declare=False),
        durable=sub.durable,
        config=config,
        pull_sub=PullSub(batch_size=32, timeout=2.0),
        max_workers=sub.concurrency,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{sub.durable}:{sub.subject}",
        description=sub.description or None,
    )
    async def consume(msg: NatsMessage) -> None:
        raw = msg.raw_message
        delivery = raw.metadata.num_delivered if raw.metadata else 1
        try:
            event = parse_event(raw.data, subject=raw.subject, headers=dict(raw.headers or {}))
        except MalformedEvent as exc:
            await send_to_dead_letter(ctx, sub, msg, f"malformed: {exc}")
            return
        try:
            applied = await process(ctx, sub, event)
        except BadEvent as exc:
            await send_to_dead_letter(ctx, sub, msg, f"BadEvent: {exc}")
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if delivery >= ctx.max_deliver:
                await send_to_dead_letter(ctx, sub, msg, error)
                return
            delay = retry_delay(ctx, delivery)
            log.warning("%s failed on %s (delivery %d of %d), retry in %.1fs: %s",
                        sub.durable, raw.subject, delivery, ctx.max_deliver, delay, error)
            raise NackMessage(delay=delay) from exc
        if not applied:
            log.info("%s skipped %s %s: already applied", sub.durable, raw.subject, event.id)
