"""A small service built on the real shared runtime, used to prove delivery guarantees.

In-process it runs through `build_app`'s lifespan; as a script (`python tests/probe.py NAME`) it
is a real process that can crash at a chosen moment. Its one effect: a row per applied event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Column, DateTime, MetaData, String, Table, event, func, insert, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from shared.bus.consumer import BadEvent, Delivered, Subscription, one_by_one
from shared.bus.envelope import CloudEvent
from shared.bus.outbox import Outgoing
from shared.bus.streams import StreamSpec
from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata
from shared.service import Runtime, ServiceSpec, build_app
from shared.settings import Settings

CRASH_ENV = "MINYI_PROBE_CRASH_AFTER_COMMIT"

# Attempts per event id, in this process (the effect table only shows successes).
attempts: Counter[str] = Counter()
# Sizes of the batches a batched probe was handed, by probe name.
batches: dict[str, list[int]] = {}


@dataclass
class Probe:
    name: str
    spec: ServiceSpec
    effects: Table

    @property
    def stream(self) -> str:
        return self.name.upper()

    @property
    def subject(self) -> str:
        return f"{self.name}.thing.happened"

    @property
    def durable(self) -> str:
        return f"{self.name}-effects"


def make_probe(name: str, *, batched: bool = False) -> Probe:
    """A probe service; `batched`, its consumer writes the events in hand at once together, and
    for each applied event stages an `<name>.echo.made` event naming it."""
    metadata: MetaData = service_metadata(name)
    effects = Table(
        "effects",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("value", String(200), nullable=False),
        Column("applied_at", DateTime(timezone=True), server_default=func.now()),
    )
    outbox_table(metadata)
    inbox_table(metadata)

    async def apply(ev: CloudEvent, session: AsyncSession) -> None:
        attempts[ev.id] += 1
        if ev.data.get("sleep"):
            await asyncio.sleep(float(ev.data["sleep"]))
        if ev.data.get("fail"):
            raise RuntimeError(f"refusing {ev.data.get('value')!r} on purpose")
        # The effect is not idempotent by itself: a second insert of the same id would fail.
        await session.execute(insert(effects).values(event_id=ev.id, value=str(ev.data.get("value"))))
        if os.environ.get(CRASH_ENV):
            event.listen(session.sync_session, "after_commit", lambda s: os._exit(17), once=True)

    def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
        if not batched:
            return (Subscription(f"{name}.thing.>", name.upper(), f"{name}-effects", apply),)

        async def apply_batch(batch: Sequence[Delivered], session: AsyncSession) -> None:
            batches.setdefault(name, []).append(len(batch))
            for d in batch:
                attempts[d.event.id] += 1
                if d.event.data.get("sleep"):
                    await asyncio.sleep(float(d.event.data["sleep"]))
                if d.event.data.get("fail"):
                    raise RuntimeError(f"refusing {d.event.data.get('value')!r} on purpose")
                if d.event.data.get("bad"):
                    raise BadEvent(f"{d.event.id} is bad on purpose")
            await session.execute(insert(effects).values([
                {"event_id": d.event.id, "value": str(d.event.data.get("value"))} for d in batch]))
            await runtime.emit_many(session, [Outgoing(f"{name}.echo.made", {"cause": d.event.id}, trace=d.trace)
                                              for d in batch])

        return (Subscription(f"{name}.thing.>", name.upper(), f"{name}-effects", one_by_one(apply_batch),
                             concurrency=64, batch=apply_batch),)

    spec = ServiceSpec(
        name=name,
        title=f"probe {name}",
        description="test probe",
        metadata=metadata,
        stream=StreamSpec(name.upper(), (f"{name}.>",), description="probe events"),
        subscriptions=subscriptions,
    )
    return Probe(name, spec, effects)


async def create_schema(probe: Probe, database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{probe.name}"'))
        await conn.run_sync(probe.spec.metadata.create_all)
    await engine.dispose()


def probe_settings(database_url: str, nats_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "migrate_on_start": False,
        "max_deliver": 3,
        "retry_base_seconds": 0.05,
        "ack_wait_seconds": 2.0,
        "outbox_poll_seconds": 0.1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def _main(name: str) -> None:
    probe = make_probe(name)
    settings = probe_settings(os.environ["MINYI_DATABASE_URL"], os.environ["MINYI_NATS_URL"])
    app = build_app(probe.spec, settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app.router.lifespan_context(app):
        print("probe ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))


async def hold_in_hand(nats_url: str, probe: Probe, event_id: str, *, sleep: float) -> None:
    """Publish one event whose handler sleeps `sleep` seconds, and return once the probe holds it."""
    from busutil import event_body, eventually, publish_all

    await publish_all(nats_url, [(probe.subject, event_body(event_id, probe.subject,
                                                            {"value": event_id, "sleep": sleep}),
                                  {"Nats-Msg-Id": event_id})])

    async def in_hand() -> bool:
        return attempts[event_id] == 1

    await eventually(in_hand, timeout=10, what=f"event {event_id} in hand")
