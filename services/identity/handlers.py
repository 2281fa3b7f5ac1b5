"""Bus side of the identity service: the registry feed (`registry.<source>.records`).

The feed is a batch consumer rather than one handler call per message: provincial systems send
millions of records, and one COPY plus one upsert per fetched batch is what keeps up with them.
It needs no inbox: "later `updated_at` wins" makes a redelivered or replayed record a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.identity import registry
from services.identity.registry_store import store_rows
from shared.bus.consumer import Subscription, dead_letter_raw
from shared.contracts import REGISTRY_STREAM
from shared.service import Runtime

log = logging.getLogger("minyi.identity.registry")

FEED_DURABLE = "identity-registry"
FEED_SUBJECT = "registry.*.records"
FEED_BATCH = 1000


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    return ()


def workers(runtime: Runtime) -> Sequence[Callable[[], Awaitable[None]]]:
    from services.identity.reconciliation_job import run_jobs

    async def registry_feed() -> None:
        await consume_registry(runtime)

    async def reconciliation_jobs() -> None:
        await run_jobs(runtime)

    return (registry_feed, reconciliation_jobs)


async def consume_registry(runtime: Runtime) -> None:
    js = runtime.broker.config.connection_state.stream
    config = ConsumerConfig(
        durable_name=FEED_DURABLE,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        # A database outage must not drop records: they wait, redelivered, until it is back.
        max_deliver=-1,
        ack_wait=120,
        max_ack_pending=20 * FEED_BATCH,
        filter_subject=FEED_SUBJECT,
    )
    sub = await js.pull_subscribe(FEED_SUBJECT, durable=FEED_DURABLE, stream=REGISTRY_STREAM.name, config=config)
    log.info("registry feed consuming %s", FEED_SUBJECT)
    # One batch is written while the next is fetched and validated: PostgreSQL works on its own core.
    writing: asyncio.Task[bool] | None = None
    failures = 0
    try:
        while True:
            try:
                msgs = await sub.fetch(batch=FEED_BATCH, timeout=2.0)
            except (nats.errors.TimeoutError, TimeoutError):
                # nats-py raises either, depending on where in the fetch the time ran out.
                msgs = []
            batch = prepare_feed_batch(runtime, msgs) if msgs else None
            if writing is not None:
                ok = await writing
                writing = None
                failures = 0 if ok else failures + 1
                if not ok:
                    await asyncio.sleep(retry_delay(runtime, failures))
            if batch is not None:
                writing = asyncio.create_task(store_feed_batch(runtime, batch, retry_delay(runtime, failures + 1)))
    finally:
        if writing is not None:
            writing.cancel()
        # A pull subscription left behind makes the connection's drain at shutdown wait for its
        # queue, where a status message that came after the last fetch is never taken: 30 s lost.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def retry_delay(runtime: Runtime, failures: int) -> float:
    return float(min(60.0, runtime.settings.retry_base_seconds * 2 ** max(0, failures - 1)))


@dataclass
class FeedBatch:
    msgs: Sequence[Msg]
    rows: list[tuple[object, ...]]
    valid: int
    bad: list[tuple[Msg, str]]


def prepare_feed_batch(runtime: Runtime, msgs: Sequence[Msg]) -> FeedBatch:
    """Validate and encrypt a fetched batch; bad messages are set aside with their reasons."""
    now = datetime.now(UTC)
    by_source: dict[str, list[tuple[int, object]]] = {}
    bad: list[tuple[Msg, str]] = []
    for i, msg in enumerate(msgs):
        source = msg.subject.split(".")[1] if msg.subject.count(".") == 2 else ""
        if source not in registry.SOURCES:
            bad.append((msg, f"未知的数据来源：{source[:40]}"))
            continue
        try:
            by_source.setdefault(source, []).append((i, registry.record_of_message(msg.data)))
        except registry.RecordError as exc:
            bad.append((msg, exc.reason))
    rows: list[tuple[object, ...]] = []
    valid = 0
    for source, items in by_source.items():
        prepared = registry.prepare_batch(source, items, runtime.keyring, now=now)
        rows.extend(prepared.rows)
        valid += prepared.valid
        bad.extend((msgs[index], reason) for index, reason in prepared.rejected)
    return FeedBatch(msgs, rows, valid, bad)


async def store_feed_batch(runtime: Runtime, batch: FeedBatch, retry_in: float) -> bool:
    """Store, dead-letter the bad, ack all; on a database failure nak all for a later retry."""
    try:
        async with runtime.transaction() as session:
            accepted = await store_rows(session, batch.rows)
    except Exception as exc:
        # When NATS itself is gone the nak fails too and the supervisor restarts the feed.
        log.warning("registry feed: batch of %d failed (%s: %s); retry in %.1fs",
                    len(batch.msgs), type(exc).__name__, exc, retry_in)
        for msg in batch.msgs:
            await msg.nak(delay=retry_in)
        return False
    for msg, reason in batch.bad:
        await dead_letter_raw(runtime.publish, runtime.spec.name, FEED_DURABLE, msg, reason)
    for msg in batch.msgs:
        await msg.ack()
    if batch.bad:
        log.warning("registry feed: %d of %d records dead-lettered", len(batch.bad), len(batch.msgs))
    log.debug("registry feed: %d accepted, %d unchanged", accepted, batch.valid - accepted)
    return True
