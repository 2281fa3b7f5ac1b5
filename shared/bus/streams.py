"""JetStream streams. Each is declared by the one service that produces into it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("minyi.bus")

DUPLICATE_WINDOW_SECONDS = 10 * 60
DAY = 24 * 3600


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_days: int | None = 365  # None: kept until deleted
    description: str = ""

    def config(self, replicas: int) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description or None,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            discard=DiscardPolicy.OLD,
            max_age=float(self.max_age_days * DAY) if self.max_age_days is not None else 0.0,
            # Longer than the relay's worst retry gap, so a republished outbox row is dropped.
            duplicate_window=float(DUPLICATE_WINDOW_SECONDS),
        )


def dead_letter_stream(service: str) -> StreamSpec:
    return StreamSpec(
        name=f"DEADLETTER_{service.upper()}",
        subjects=(f"deadletter.{service}.>",),
        description=f"messages {service} could not handle, with the reason",
    )


def dead_letter_subject(service: str, original_subject: str) -> str:
    return f"deadletter.{service}.{original_subject}"


async def declare(js: JetStreamContext, spec: StreamSpec, replicas: int) -> None:
    """Create the stream or bring an existing one to the declared configuration."""
    config = spec.config(replicas)
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config=config)
        log.info("created stream %s for %s", spec.name, ", ".join(spec.subjects))
        return
    await js.update_stream(config=config)


async def wait_for_streams(js: JetStreamContext, names: list[str], *, poll_seconds: float = 1.0) -> None:
    """Consumers start only once their producers have declared the streams they read."""
    pending = list(names)
    waited = 0.0
    while pending:
        still: list[str] = []
        for name in pending:
            try:
                await js.stream_info(name)
            except NotFoundError:
                still.append(name)
        pending = still
        if pending:
            if waited % 10 < poll_seconds:
                log.info("waiting for stream(s) %s to be declared by their producers", ", ".join(pending))
            await asyncio.sleep(poll_seconds)
            waited += poll_seconds


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more at the end."""
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(p_tokens):
        if token == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (token != "*" and token != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)
