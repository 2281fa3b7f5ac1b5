"""`minyi dead-letters`: see, replay and discard what a service's consumers set aside.

A consumer that cannot apply an event (after its last retry, or at once when retrying cannot help)
parks it on `deadletter.<service>.<subject>` in the stream `DEADLETTER_<SERVICE>`, with the consumer's
durable name, the error, the delivery count and the original message (see `shared/bus/consumer.py`).
A dead letter's id is its sequence number in that stream.

Replaying applies the original event again through the failing consumer's own code and inbox, in
this process, with the service's settings: the consumer's inbox row and its effect commit in one
transaction, so an event that was applied meanwhile (or by a replay that was cut short) is skipped,
never applied twice. Only then is the dead letter removed, so it is not replayed again.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.bus.envelope import CloudEvent, MalformedEvent, parse_event
from shared.bus.streams import dead_letter_stream
from shared.settings import SERVICES, Settings, redacted_url

if TYPE_CHECKING:
    # Imported where replaying needs them: listing and showing start faster without them.
    from shared.bus import consumer
    from shared.db import Database

Say = Callable[[str], None]

# The identity service's registry feed dead-letters records that fail validation; it has no handler
# to replay them through, and the same record fails the same way again.
REGISTRY_FEED = "identity-registry"


class Refused(Exception):
    """What was asked cannot be done; the message says why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class DeadLetter:
    service: str
    id: int
    consumer: str
    subject: str
    stream: str | None
    stream_seq: int | None
    deliveries: int
    error: str
    failed_at: str | None
    original: bytes
    original_headers: dict[str, str]

    @property
    def event(self) -> CloudEvent:
        """The original event, as the consumer read it; MalformedEvent when it never was one."""
        return parse_event(self.original, subject=self.subject, headers=self.original_headers)

    @property
    def event_id(self) -> str | None:
        try:
            return self.event.id
        except MalformedEvent:
            return None

    def as_json(self) -> dict[str, Any]:
        try:
            payload: Any = json.loads(self.original)
        except (UnicodeDecodeError, json.JSONDecodeError):
            try:
                payload = self.original.decode()
            except UnicodeDecodeError:
                payload = {"base64": base64.b64encode(self.original).decode()}
        return {"id": self.id, "service": self.service, "consumer": self.consumer, "subject": self.subject,
                "event_id": self.event_id, "stream": self.stream, "stream_seq": self.stream_seq,
                "deliveries": self.deliveries, "error": self.error, "failed_at": self.failed_at,
                "original": payload, "original_headers": self.original_headers}


def parse_letter(service: str, seq: int, data: bytes) -> DeadLetter:
    try:
        doc = json.loads(data)
        original = doc["original"]
        raw = base64.b64decode(original["base64"]) if "base64" in original else str(original["text"]).encode()
        return DeadLetter(
            service=service, id=seq, consumer=str(doc["consumer"]), subject=str(doc["subject"]),
            stream=doc.get("stream"), stream_seq=doc.get("stream_seq"), deliveries=int(doc.get("deliveries") or 1),
            error=str(doc.get("error") or ""), failed_at=doc.get("failed_at"), original=raw,
            original_headers={str(k): str(v) for k, v in (doc.get("original_headers") or {}).items()},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"{dead_letter_stream(service).name} message {seq} is not a dead letter "
                      f"({type(exc).__name__}: {exc})") from None


def check_service(service: str) -> str:
    if service not in SERVICES:
        raise Refused(f"unknown service {service!r}; choose from {', '.join(SERVICES)}", exit_code=2)
    return service


# ---- reading and removing ------------------------------------------------------------------------


def nats_url(settings: Settings) -> str:
    # Without a URL: the embedded NATS of `minyi up`.
    return settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"


async def connect_nats(settings: Settings) -> NatsClient:
    """As the `ops` user where NATS has users (see `operator_nats_options`): it may read every dead
    letter and remove them, and nothing more."""
    from minyi.servers import operator_nats_options

    url = nats_url(settings)
    seen: list[str] = []

    async def errors(exc: Exception) -> None:
        # The client would print a traceback for every failed attempt; the one line below says it
        # all. A refused request gets no answer at all, so say why before its wait runs out.
        seen.append(str(exc))
        if "permissions violation" in str(exc).lower():
            print(f"error: NATS refused this user: {exc} (dead letters need the ops user)", file=sys.stderr)

    try:
        return await nats.connect(url, name="minyi-dead-letters", connect_timeout=5, max_reconnect_attempts=1,
                                  error_cb=errors, **operator_nats_options(settings))
    except Exception as exc:
        refused = next((e for e in seen if "authorization violation" in e.lower()), None)
        if refused is not None:
            raise Refused(f"NATS at {redacted_url(url)} refused the credentials ({refused}); set MINYI_NATS_USER=ops "
                          "and MINYI_NATS_PASSWORD") from None
        raise Refused(f"cannot reach NATS at {redacted_url(url)}: {type(exc).__name__}: {exc}") from None


async def read_all(js: JetStreamContext, service: str, *, consumer_name: str | None = None) -> list[DeadLetter]:
    """The service's dead letters, oldest first; none when the service has never declared its stream."""
    spec = dead_letter_stream(service)
    out: list[DeadLetter] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(spec.name, seq=seq, subject=spec.subjects[0], next=True)
        except NotFoundError:
            return out  # past the last message, or no such stream
        assert msg.seq is not None
        letter = parse_letter(service, msg.seq, msg.data or b"")
        if consumer_name is None or letter.consumer == consumer_name:
            out.append(letter)
        seq = msg.seq + 1


async def read_one(js: JetStreamContext, service: str, seq: int) -> DeadLetter:
    name = dead_letter_stream(service).name
    try:
        msg = await js.get_msg(name, seq=seq)
    except NotFoundError:
        raise Refused(f"{service} has no dead letter {seq} (see `minyi dead-letters list {service}`)") from None
    return parse_letter(service, seq, msg.data or b"")


async def remove(js: JetStreamContext, letter: DeadLetter) -> None:
    with contextlib.suppress(NotFoundError):  # removed by a replay running beside this one
        await js.delete_msg(dead_letter_stream(letter.service).name, letter.id)


# ---- replaying -----------------------------------------------------------------------------------


async def _never_publish(subject: str, body: bytes, headers: dict[str, str], stream: str) -> bool:
    # A replay that fails keeps its dead letter where it is rather than making another one.
    raise RuntimeError("a replay does not dead-letter again")


def database_url(settings: Settings) -> str:
    # Without a URL: the embedded PostgreSQL of `minyi up`.
    return settings.database_url or f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/minyi"


@dataclass
class Outcome:
    letter: DeadLetter
    # applied | already applied | failed | would apply | would skip, or "<applied…>, not removed"
    result: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.result == "failed" or self.result.endswith("not removed")


class Consumers:
    """A service's consumers with their own handlers and inbox, on a database connection of ours."""

    def __init__(self, service: str, settings: Settings, db: Database) -> None:
        from shared.bus import consumer
        from shared.service import make_runtime

        spec = importlib.import_module(f"services.{service}.service").SPEC
        runtime = make_runtime(spec, settings)
        runtime.db = db
        self.inbox = runtime.inbox
        self.subscriptions = {sub.durable: sub for sub in runtime.subscriptions}
        self.ctx = consumer.ConsumerContext(service=service, session_factory=runtime.sessions, inbox=runtime.inbox,
                                            publish=_never_publish, max_deliver=1)
        self.db = db

    def subscription(self, letter: DeadLetter) -> consumer.Subscription:
        if letter.consumer == REGISTRY_FEED:
            raise Refused("a registry record the feed refused as invalid; correct it at its source and send it "
                          "again (then discard this one)")
        sub = self.subscriptions.get(letter.consumer)
        if sub is None:
            known = ", ".join(sorted(self.subscriptions)) or "none"
            raise Refused(f"{letter.service} has no consumer {letter.consumer!r} any more (it has: {known})")
        return sub

    async def applied_before(self, consumer_name: str, event_id: str) -> bool:
        from sqlalchemy import select

        async with self.db.sessions() as session:
            found = await session.scalar(select(self.inbox.c.event_id).where(
                self.inbox.c.consumer == consumer_name, self.inbox.c.event_id == event_id))
        return found is not None

    async def apply(self, sub: consumer.Subscription, event: CloudEvent) -> bool:
        """What the live consumer does with one event: a batch consumer's batch of one, as after a
        failed batch; True when applied now, False when its inbox had it already."""
        from shared.bus import consumer

        if sub.batch is not None:
            return (await consumer.process_batch(self.ctx, sub, [consumer.Delivered(event)]))[0]
        return await consumer.process(self.ctx, sub, event)


async def replay_one(js: JetStreamContext, consumers: Consumers, letter: DeadLetter, *, dry_run: bool) -> Outcome:
    try:
        sub = consumers.subscription(letter)
        try:
            event = letter.event
        except MalformedEvent as exc:
            raise Refused(f"not an event ({exc}); nothing can apply it: discard it") from None
    except Refused as exc:
        return Outcome(letter, "failed", str(exc))
    if dry_run:
        seen = await consumers.applied_before(sub.durable, event.id)
        return Outcome(letter, "would skip" if seen else "would apply")
    try:
        applied = await consumers.apply(sub, event)
    except Exception as exc:
        return Outcome(letter, "failed", summary(f"{type(exc).__name__}: {exc}", 300))
    result = "applied" if applied else "already applied"
    try:
        await remove(js, letter)
    except Exception as exc:
        # Applied, and the inbox knows it: another replay of this letter only removes it.
        return Outcome(letter, f"{result}, not removed", summary(f"{type(exc).__name__}: {exc}", 300))
    return Outcome(letter, result)


# ---- the commands ----------------------------------------------------------------------------------


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp[:19]


def summary(error: str, width: int) -> str:
    """An error's first line, without the driver's wrapper class, on one line of at most `width`."""
    lines = error.strip().splitlines()
    first = _WRAPPER.sub("", lines[0] if lines else "")
    flat = " ".join(first.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# "(sqlalchemy.dialects.postgresql.asyncpg.Error) " in front of what PostgreSQL said.
_WRAPPER = re.compile(r"\((?:\w+\.)+\w+\) ")


async def run_list(settings: Settings, services: Sequence[str], *, consumer_name: str | None, as_json: bool,
                   say: Say) -> int:
    for service in services:
        check_service(service)
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()
        letters = [letter for service in services
                   for letter in await read_all(js, service, consumer_name=consumer_name)]
    finally:
        await nc.close()
    if as_json:
        say(json.dumps([letter.as_json() for letter in letters], ensure_ascii=False, indent=2))
        return 0
    if letters:
        say(f"{'SERVICE':<12} {'ID':>6}  {'FAILED AT (UTC)':<19}  {'CONSUMER':<22} {'SUBJECT':<28} {'TRIES':>5}  ERROR")
    for letter in letters:
        say(f"{letter.service:<12} {letter.id:>6}  {_when(letter.failed_at):<19}  {letter.consumer:<22} "
            f"{letter.subject:<28} {letter.deliveries:>5}  {summary(letter.error, 80)}")
    where = ", ".join(services) + (f", consumer {consumer_name}" if consumer_name else "")
    say(f"{len(letters)} dead letter{'' if len(letters) == 1 else 's'} ({where})")
    return 0


async def run_show(settings: Settings, service: str, seq: int, *, as_json: bool, say: Say) -> int:
    check_service(service)
    nc = await connect_nats(settings)
    try:
        letter = await read_one(nc.jetstream(), service, seq)
    finally:
        await nc.close()
    doc = letter.as_json()
    if as_json:
        say(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    rows = [("id", f"{letter.id} in {dead_letter_stream(service).name}"), ("consumer", letter.consumer),
            ("subject", letter.subject), ("event id", letter.event_id or "- (not an event)"),
            ("from", f"{letter.stream} message {letter.stream_seq}"), ("deliveries", str(letter.deliveries)),
            ("failed at", letter.failed_at or "-"), ("error", letter.error)]
    for name, value in rows:
        say(f"{name + ':':<12} {value}")
    say("headers:")
    for name, value in sorted(letter.original_headers.items()):
        say(f"  {name}: {value}")
    say("original:")
    original = doc["original"]
    say(json.dumps(original, ensure_ascii=False, indent=2) if not isinstance(original, str) else original)
    return 0


async def _chosen(js: JetStreamContext, service: str, ids: Sequence[int], *, every: bool,
                  consumer_name: str | None) -> list[DeadLetter]:
    if every:
        return await read_all(js, service, consumer_name=consumer_name)
    letters = [await read_one(js, service, seq) for seq in dict.fromkeys(ids)]
    return [letter for letter in letters if consumer_name is None or letter.consumer == consumer_name]


def _check_choice(ids: Sequence[int], every: bool) -> None:
    if every == bool(ids):
        raise Refused("name the dead letters by id, or pass --all (not both)", exit_code=2)


async def run_replay(settings: Settings, service: str, ids: Sequence[int], *, every: bool,
                     consumer_name: str | None, dry_run: bool, say: Say) -> int:
    from sqlalchemy.engine import make_url

    from shared.db import Database

    check_service(service)
    _check_choice(ids, every)
    nc = await connect_nats(settings)
    db: Database | None = None
    try:
        js = nc.jetstream()
        letters = await _chosen(js, service, ids, every=every, consumer_name=consumer_name)
        if not letters:
            say(f"{service}: no dead letters to replay")
            return 0
        url = database_url(settings)
        db = Database.connect(url, application_name=f"minyi-dead-letters-{service}", pool_size=2)
        try:
            await db.ping(timeout=10)
        except Exception as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise Refused(f"cannot reach PostgreSQL at {shown}: {type(exc).__name__}: {exc}") from None
        # The handlers read the service's settings (callback URL, thresholds): the same as the service's.
        # Against the embedded stack they use its keys, as its services do.
        embedded = not settings.database_url
        consumers = Consumers(service, settings.model_copy(update={
            "database_url": url, "nats_url": nats_url(settings), "dev_secrets": settings.dev_secrets or embedded,
        }), db)
        outcomes: list[Outcome] = []
        for letter in letters:
            outcome = await replay_one(js, consumers, letter, dry_run=dry_run)
            outcomes.append(outcome)
            say(_describe(outcome))
    finally:
        await nc.close()
        if db is not None:
            await db.dispose()
    counts = {r: sum(1 for o in outcomes if o.result == r) for r in dict.fromkeys(o.result for o in outcomes)}
    say(("dry run: " if dry_run else "") + ", ".join(f"{n} {r}" for r, n in counts.items()))
    return 1 if any(o.failed for o in outcomes) else 0


def _describe(outcome: Outcome) -> str:
    letter = outcome.letter
    head = f"{letter.service} {letter.id}: {letter.subject} {letter.event_id or '-'} → {letter.consumer}: "
    result = {
        "applied": "applied; dead letter removed",
        "already applied": "applied before, skipped; dead letter removed",
        "would apply": "would be applied",
        "would skip": "applied before, would be skipped and removed",
        "failed": f"failed, kept: {outcome.detail}",
        "applied, not removed": f"applied; the dead letter could not be removed ({outcome.detail}): "
                                "replaying it again only removes it",
        "already applied, not removed": f"applied before; the dead letter could not be removed ({outcome.detail})",
    }[outcome.result]
    return head + result


async def run_discard(settings: Settings, service: str, ids: Sequence[int], *, every: bool,
                      consumer_name: str | None, dry_run: bool, say: Say) -> int:
    check_service(service)
    _check_choice(ids, every)
    nc = await connect_nats(settings)
    try:
        js = nc.jetstream()
        letters = await _chosen(js, service, ids, every=every, consumer_name=consumer_name)
        for letter in letters:
            if not dry_run:
                await remove(js, letter)
            say(f"{service} {letter.id}: {letter.subject} {letter.event_id or '-'} ({letter.consumer}) "
                + ("would be discarded" if dry_run else "discarded"))
    finally:
        await nc.close()
    say(("dry run: " if dry_run else "") + f"{len(letters)} dead letter{'' if len(letters) == 1 else 's'} "
        + ("would be discarded" if dry_run else "discarded"))
    return 0
