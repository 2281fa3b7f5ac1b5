"""Outbox relay throughput against bare JetStream publishing, measured in the same run.

    .venv/bin/python bench/outbox_relay.py [--events 5000]

Starts its own PostgreSQL and NATS (sync_interval: always, as in production), stages N events
through the transactional outbox and times the relay until every row is published and marked.
The baseline publishes the same N envelopes straight to JetStream, one PubAck at a time, which
is the floor any relay that waits for acks pays. Prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import nats
from identity_stack import stack
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.bus.envelope import CONTENT_TYPE, new_event
from shared.bus.outbox import OutboxRelay, add_event
from shared.bus.streams import StreamSpec, declare
from shared.bus.tables import outbox_table
from shared.db import Database, service_metadata


async def baseline(nats_url: str, n: int) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await declare(js, StreamSpec("BASE", ("base.>",)), replicas=1)
    bodies = [new_event("bench", "base.thing", {"i": i}) for i in range(n)]
    t0 = time.perf_counter()
    for ev in bodies:
        await js.publish("base.thing", ev.to_bytes(), headers={"Nats-Msg-Id": ev.id, "content-type": CONTENT_TYPE})
    elapsed = time.perf_counter() - t0
    await nc.close()
    return elapsed


async def relay(database_url: str, nats_url: str, n: int) -> float:
    metadata: MetaData = service_metadata("bench")
    outbox = outbox_table(metadata)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA bench"))
        await conn.run_sync(metadata.create_all)
    await engine.dispose()

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await declare(js, StreamSpec("BENCH", ("bench.>",)), replicas=1)

    async def publish(subject: str, body: bytes, headers: dict[str, str], stream: str) -> bool:
        ack = await js.publish(subject, body, headers=headers, stream=stream, timeout=5)
        return bool(ack.duplicate)

    db = Database.connect(database_url, application_name="bench")
    for start in range(0, n, 100):
        async with db.transaction() as session:
            for i in range(start, min(n, start + 100)):
                await add_event(session, outbox, new_event("bench", "bench.thing", {"i": i}), stream="BENCH")
    worker = OutboxRelay(db.sessions, outbox, publish, poll_seconds=0.01)
    t0 = time.perf_counter()
    done = 0
    last_report = t0
    while done < n:
        done += await worker.relay_once()
        if time.perf_counter() - last_report > 2:
            print(f"  … relayed {done}/{n}", flush=True)
            last_report = time.perf_counter()
    elapsed = time.perf_counter() - t0
    assert await worker.backlog() == 0
    await db.dispose()
    await nc.close()
    return elapsed


async def main(n: int) -> None:
    with stack() as s:
        print(f"baseline: {n} bare JetStream publishes with PubAck …", flush=True)
        base = await baseline(s.nats.url, n)
        print(f"relay: {n} outbox rows published and marked …", flush=True)
        ours = await relay(s.postgres.url, s.nats.url, n)
    print(f"baseline  {n / base:9.0f} events/s")
    print(f"relay     {n / ours:9.0f} events/s")
    print(f"ratio relay/baseline = {base / ours:.2f} (1.00 = as fast as bare publishing)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(main(parser.parse_args().events))
