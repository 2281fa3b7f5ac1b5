"""Bus side of the identity service: the registry feed (`registry.<source>.records`).

The feed is a batch consumer rather than one handler call per message: provincial systems send
millions of records, and one COPY plus one upsert per fetched batch is what keeps up with them.
It needs no inbox: "later `updated_at` wins" makes a redelivered or replayed record a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.identity import registry
from services.identity.registry_prep import PreparedFeed, preparer, source_of
from services.identity.registry_store import store_rows_apart
from shared.bus.consumer import Subscription, dead_letter_body
from shared.bus.streams import dead_letter_stream, dead_letter_subject
from shared.contracts import REGISTRY_STREAM
from shared.service import Runtime

log = logging.getLogger("minyi.identity.registry")

FEED_DURABLE = "identity-registry"
FEED_SUBJECT = "registry.*.records"
# Records per fetch and per write. Each batch pays a pull request, a transaction and six statements
# whatever its size; at 1,000 those fixed costs held the feed to about 9,000 records/s, at 10,000 it
# ran at about 14,000 (bench/registry_ingest.py). A failed batch is retried whole, so not more.
FEED_BATCH = 10_000


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
    # Messages are fetched by count while a write is sized in records: how many records a message
    # carried lately (one, or a batch of up to MAX_RECORDS_PER_MESSAGE) sets the next fetch. The
    # first fetch assumes full batches, so that it cannot bring a whole stream of them at once.
    per_message = float(registry.MAX_RECORDS_PER_MESSAGE)
    try:
        while True:
            try:
                msgs = await sub.fetch(batch=max(1, min(FEED_BATCH, int(FEED_BATCH / per_message))), timeout=2.0)
            except (nats.errors.TimeoutError, TimeoutError):
                # nats-py raises either, depending on where in the fetch the time ran out.
                msgs = []
            # Validated and encrypted (in worker processes when configured, registry_prep.py) while the
            # last batch is written.
            batch = FeedBatch(msgs, await preparer(runtime.state, runtime.settings.registry_load_workers).prepare_feed(
                [(m.subject, m.data) for m in msgs], runtime.keyring, datetime.now(UTC))) if msgs else None
            if batch is not None:
                per_message = max(1.0, batch.prepared.records / len(msgs))
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
    prepared: PreparedFeed


async def store_feed_batch(runtime: Runtime, batch: FeedBatch, retry_in: float) -> bool:
    """Store, dead-letter the bad, ack all; on a database failure nak all for a later retry.

    A record the database itself refuses is dead-lettered alone: the rest of its batch is stored,
    so one unstorable record never holds the feed up.
    """
    try:
        async with runtime.transaction() as session:
            stored = await store_rows_apart(session, batch.prepared.rows)
    except Exception as exc:
        # When NATS itself is gone the nak fails too and the supervisor restarts the feed.
        log.warning("registry feed: batch of %d failed (%s: %s); retry in %.1fs",
                    len(batch.msgs), type(exc).__name__, exc, retry_in)
        for msg in batch.msgs:
            await msg.nak(delay=retry_in)
        return False
    bad = list(batch.prepared.bad)
    for row, state in stored.refused:
        # Rare: the message is read again here for the reference of the ID number it names.
        bad.extend(((i, position), f"数据库无法保存该记录（{state}）",
                    registry.person_reference(runtime.keyring, registry.record_at(batch.msgs[i].data, position)))
                   for i, position in batch.prepared.row_origins[row])
    for (index, position), reason, reference in bad:
        await dead_letter_record(runtime, batch.msgs[index], position, reference, reason)
    for msg in batch.msgs:
        await msg.ack()
    if bad:
        log.warning("registry feed: %d of %d records dead-lettered", len(bad), batch.prepared.records)
    refused = sum(len(batch.prepared.row_origins[p]) for p, _ in stored.refused)
    log.debug("registry feed: %d accepted, %d unchanged", stored.changed,
              batch.prepared.valid - refused - stored.changed)
    return True


async def dead_letter_record(runtime: Runtime, msg: Msg, position: int | None, person_ref: str | None,
                             reason: str) -> None:
    """Park a refused record by reference, never by content.

    The dead letter keeps the reason, where the record was (source, stream position, its place in
    the message when the message carried a batch, time received) and the keyed reference of its ID
    number: enough to ask the source system for that record again or to find the person's other
    records, nothing that names the person. It is kept far longer than the stream keeps the record
    itself.
    """
    meta = msg.metadata
    seq = meta.sequence.stream if meta and meta.sequence else None
    received = meta.timestamp.isoformat() if meta and meta.timestamp else None
    reference = {"source": source_of(msg.subject)[:40], "stream_seq": seq, "received_at": received,
                 "person_ref": person_ref}
    if position is not None:
        reference["item"] = position
    body = dead_letter_body(consumer=FEED_DURABLE, subject=msg.subject, stream=meta.stream if meta else None,
                            stream_seq=seq, deliveries=(meta.num_delivered if meta else 1) or 1, error=reason,
                            raw=json.dumps(reference).encode(), headers={})
    headers = {
        "Nats-Msg-Id": f"dlq.{FEED_DURABLE}.{seq}" + ("" if position is None else f".{position}"),
        "content-type": "application/json",
        "Minyi-Error": quote(reason[:300], safe=" :;,./-_()[]'=<>@"),
    }
    await runtime.publish(dead_letter_subject(runtime.spec.name, msg.subject), body, headers,
                          dead_letter_stream(runtime.spec.name).name)
    log.error("dead-lettered registry record %s #%s: %s", msg.subject, seq, reason)
