"""Bus side of the identity service: the registry feed (`registry.<source>.records`).

The feed is a batch consumer rather than one handler call per message: provincial systems send
millions of records, and one COPY plus one upsert per fetched batch is what keeps up with them.
It needs no inbox: "later `updated_at` wins" makes a redelivered or replayed record a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
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
    failures = 0
    while True:
        try:
            msgs = await sub.fetch(batch=FEED_BATCH, timeout=2.0)
        except nats.errors.TimeoutError:
            continue
        try:
            await apply_feed_batch(runtime, msgs)
            failures = 0
        except Exception as exc:
            # When NATS itself is gone the nak fails too and the supervisor restarts the feed.
            failures += 1
            delay = min(60.0, runtime.settings.retry_base_seconds * 2 ** (failures - 1))
            log.warning("registry feed: batch of %d failed (%s: %s); retry in %.1fs",
                        len(msgs), type(exc).__name__, exc, delay)
            for msg in msgs:
                await msg.nak(delay=delay)
            await asyncio.sleep(delay)


async def apply_feed_batch(runtime: Runtime, msgs: Sequence[Msg]) -> tuple[int, int, int]:
    """Store a fetched batch; returns (accepted, unchanged, dead-lettered). Raises if it cannot store."""
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
    async with runtime.transaction() as session:
        accepted = await store_rows(session, rows)
    for msg, reason in bad:
        await dead_letter_raw(runtime.publish, runtime.spec.name, FEED_DURABLE, msg, reason)
    for msg in msgs:
        await msg.ack()
    if bad:
        log.warning("registry feed: %d of %d records dead-lettered", len(bad), len(msgs))
    return accepted, valid - accepted, len(bad)
