"""Read a stream from its first message, for rebuilding a projection that was lost.

An ephemeral consumer with no acks reads what the stream held when the replay began; events
published meanwhile reach the running service's own consumers as usual. Progress is reported
every few seconds, and messages that are not events are counted and skipped, not fatal.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus.envelope import CloudEvent, MalformedEvent, parse_event

log = logging.getLogger("minyi.bus.replay")

Progress = Callable[[str], None]


@dataclass
class Replayed:
    events: int = 0
    malformed: int = 0
    seconds: float = 0.0


async def replay(
    js: JetStreamContext,
    stream: str,
    filter_subject: str,
    apply: Callable[[list[CloudEvent]], Awaitable[None]],
    *,
    batch: int = 500,
    progress: Progress | None = None,
    every_seconds: float = 5.0,
) -> Replayed:
    """Hand the stream's events on `filter_subject`, oldest first, to `apply` a batch at a time."""
    say = progress or log.info
    info = await js.stream_info(stream)
    last = info.state.last_seq
    started = time.monotonic()
    done = Replayed()
    if info.state.messages == 0:
        say(f"{stream} is empty; nothing to replay")
        return done
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                            filter_subject=filter_subject, inactive_threshold=120.0,
                            max_ack_pending=-1)
    sub = await js.pull_subscribe(filter_subject, stream=stream, config=config)
    say(f"replaying {stream} ({filter_subject}) up to message {last:,} …")
    next_note = started + every_seconds
    try:
        while True:
            try:
                msgs = await sub.fetch(batch=batch, timeout=2.0)
            except (nats.errors.TimeoutError, TimeoutError):
                break  # nothing more on the filter
            events: list[CloudEvent] = []
            position = 0
            pending = 0
            for msg in msgs:
                position, pending = msg.metadata.sequence.stream, msg.metadata.num_pending
                if position > last:
                    break
                try:
                    events.append(parse_event(msg.data, subject=msg.subject, headers=msg.headers))
                except MalformedEvent as exc:
                    done.malformed += 1
                    log.warning("%s message %d skipped: %s", stream, position, exc)
            if events:
                await apply(events)
                done.events += len(events)
            if time.monotonic() >= next_note:
                say(f"  … {done.events:,} events replayed, at message {position:,} of {last:,}")
                next_note += every_seconds
            if position >= last or pending == 0:
                break
    finally:
        # A pull subscription left behind would hold the connection's drain at shutdown.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    done.seconds = time.monotonic() - started
    return done
