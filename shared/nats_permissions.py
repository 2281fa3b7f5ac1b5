"""NATS users and their permissions, derived from the services' own wiring.

Each service connects as a user of its own name. What it may publish and subscribe to is read
from its `ServiceSpec`: the streams it declares (its events, its dead letters, and the exchange
streams it owns), the consumers its subscriptions create on other services' streams, and its
core NATS responders. Nothing else grants a permission, so a service can never publish another
service's events, and a subscription added in code shows up here (and in the generated
configurations) by itself.

What runs outside the services has users of its own, one per outside system, each allowed only
its own subjects, so one system's password cannot speak for another:

- `grid-<platform_id>`: a grid platform on the nats transport. It publishes its statuses on
  `grid.<platform_id>.events`, reads its tickets on `grid.<platform_id>.tickets` live or through
  the one durable consumer on `GRID` named after it (`<platform_id>`), and nothing of any other
  platform. Routing believes a status only of the platform its subject names.
- `registry-<source>`: a provincial registry. It publishes `registry.<source>.records` only.
- `ops`: operators' tools (`minyi rebuild`, reading dead letters). They may read every stream
  through consumers of their own; they publish no event and change no stream.

Which platforms and sources get a user is the operator's list (`--grid-platform`, `--registry-source`
or `MINYI_NATS_GRID_PLATFORMS`, `MINYI_NATS_REGISTRY_SOURCES`). Every user, outside ones too, must
take its replies on its own inbox prefix (`_INBOX_<user>`): a pull consumer delivers its messages
as replies, so a shared prefix would let one system read another's tickets.

JetStream is driven by publishing to `$JS.API.…` subjects, so those subjects are permissions
too: a consumer is named in its API subjects and in the reply subject of every message it
delivers (`$JS.ACK.<stream>.<consumer>.…`), which is what lets a service run and acknowledge its
own durable consumers and nobody else's. Replies come back on a per-user inbox prefix
(`_INBOX_<user>`), so no user can listen to another's replies.

Passwords never appear here: the generated configuration reads each from the server's
environment (`$MINYI_NATS_PW_<USER>`).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields

from faststream.nats import NatsBroker
from sqlalchemy import MetaData, Table

from shared.bus.streams import StreamSpec, dead_letter_stream
from shared.contracts import GRID_STREAM, REGISTRY_STREAM
from shared.service import Runtime, ServiceSpec
from shared.settings import (
    NATS_OPS_USER,
    SERVICES,
    Settings,
    nats_inbox_prefix,
    nats_password_variable,
)

OPS = NATS_OPS_USER
GRID_USER_PREFIX = "grid-"
REGISTRY_USER_PREFIX = "registry-"
# A platform id or registry source is one subject token and part of a user name.
OUTSIDE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Subjects of the exchange streams that outside systems publish and a service consumes; the other
# subjects of those streams are what the owning service sends out (grid tickets).
INBOUND: tuple[str, ...] = (*REGISTRY_STREAM.subjects, "grid.*.events")
EXCHANGE_STREAMS: tuple[StreamSpec, ...] = (REGISTRY_STREAM, GRID_STREAM)

API = "$JS.API"


@dataclass(frozen=True)
class Consumer:
    stream: str
    name: str  # the durable name, or `*` for any
    filter_subject: str


@dataclass(frozen=True)
class Wiring:
    """What one service does on NATS, as its spec says."""

    name: str
    produced: tuple[StreamSpec, ...]
    consumers: tuple[Consumer, ...]
    responders: tuple[str, ...]

    @property
    def inbound_consumers(self) -> tuple[Consumer, ...]:
        """Consumers, under any name, of the inbound subjects of its own exchange streams that no
        subscription of it reads (the registry feed is a worker with a pull consumer of its own)."""
        subscribed = {(c.stream, c.filter_subject) for c in self.consumers}
        return tuple(Consumer(stream.name, "*", subject) for stream in self.produced
                     for subject in stream.subjects if subject in INBOUND and (stream.name, subject) not in subscribed)


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    # Core request/reply responders answer on the requester's inbox, whatever it is, once per request.
    allow_responses: bool = False


def _probe(spec: ServiceSpec) -> Runtime:
    """A runtime that is never connected, for a spec's factories to register on: no tracing set up,
    and tables of its own for the table fields (the factories only keep the runtime for later)."""
    metadata = MetaData()
    tables = {f.name: Table(f"probe_{f.name}", metadata) for f in fields(Runtime)
              if f.type in ("Table", Table) and f.default is MISSING and f.default_factory is MISSING}
    return Runtime(spec=spec, settings=Settings.model_construct(), broker=NatsBroker(log_level=logging.DEBUG),
                   **tables)


def wiring(spec: ServiceSpec) -> Wiring:
    """Read a spec's subscriptions and responders the way the service registers them."""
    probe = _probe(spec)
    consumers = tuple(Consumer(sub.stream, sub.durable, sub.subject) for sub in spec.subscriptions(probe))
    spec.responders(probe)
    responders: list[str] = []
    for subscriber in probe.broker.subscribers:
        if getattr(subscriber, "stream", None) is not None:
            raise ValueError(f"{spec.name}: a responder must be core NATS, not JetStream")
        responders.append(subscriber.subject.broker_address)
    return Wiring(spec.name, tuple(spec.produced_streams), consumers, tuple(responders))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _outbound(stream: StreamSpec) -> list[str]:
    return [s for s in stream.subjects if s not in INBOUND]


def run_consumer(c: Consumer) -> list[str]:
    """Create (with its filter, as nats-py does for a named consumer), look up, pull from and
    acknowledge one consumer."""
    return [f"{API}.CONSUMER.CREATE.{c.stream}.{c.name}.{c.filter_subject}",
            f"{API}.CONSUMER.INFO.{c.stream}.{c.name}",
            f"{API}.CONSUMER.MSG.NEXT.{c.stream}.{c.name}",
            f"$JS.ACK.{c.stream}.{c.name}.>"]


def _hands_off(consumers: Iterable[Consumer], streams: set[str] | None = None) -> list[str]:
    """What would let another user re-create, drain or acknowledge these services' consumers."""
    return [subject for c in consumers if streams is None or c.stream in streams
            for subject in (f"{API}.CONSUMER.CREATE.{c.stream}.{c.name}",
                            f"{API}.CONSUMER.CREATE.{c.stream}.{c.name}.>",
                            f"{API}.CONSUMER.MSG.NEXT.{c.stream}.{c.name}",
                            f"$JS.ACK.{c.stream}.{c.name}.>")]


def service_permissions(own: Wiring, everyone: Sequence[Wiring]) -> Permissions:
    publish: list[str] = []
    for stream in own.produced:
        publish += _outbound(stream)
    # Requests to the other services' responders: queries, not events.
    publish += [subject for w in everyone if w.name != own.name for subject in w.responders]
    publish.append(f"{API}.INFO")
    for stream in own.produced:
        publish += [f"{API}.STREAM.{op}.{stream.name}" for op in ("INFO", "CREATE", "UPDATE")]
    # Waiting for an upstream producer to declare its stream.
    publish += [f"{API}.STREAM.INFO.{c.stream}" for c in own.consumers]
    for c in (*own.consumers, *own.inbound_consumers):
        publish += run_consumer(c)
    subscribe = [f"{nats_inbox_prefix(own.name)}.>", *own.responders]
    return Permissions(_unique(publish), _unique(subscribe), allow_responses=bool(own.responders))


def grid_platform_user(platform_id: str) -> str:
    return GRID_USER_PREFIX + platform_id


def registry_source_user(source: str) -> str:
    return REGISTRY_USER_PREFIX + source


def grid_platform_consumer(platform_id: str) -> Consumer:
    """The one durable consumer a platform may run on `GRID`: named after it, its tickets only."""
    return Consumer(GRID_STREAM.name, platform_id, f"grid.{platform_id}.tickets")


def grid_platform_permissions(platform_id: str) -> Permissions:
    """A grid platform: its statuses out, its tickets in (live or through its own consumer)."""
    own = grid_platform_consumer(platform_id)
    publish = [f"grid.{platform_id}.events", f"{API}.INFO", f"{API}.STREAM.INFO.{GRID_STREAM.name}",
               *run_consumer(own)]
    subscribe = [f"{nats_inbox_prefix(grid_platform_user(platform_id))}.>", own.filter_subject]
    return Permissions(_unique(publish), _unique(subscribe))


def registry_source_permissions(source: str) -> Permissions:
    """A provincial registry: its own records, nothing to read."""
    publish = [f"registry.{source}.records", f"{API}.INFO", f"{API}.STREAM.INFO.{REGISTRY_STREAM.name}"]
    return Permissions(_unique(publish), (f"{nats_inbox_prefix(registry_source_user(source))}.>",))


def ops_permissions(everyone: Sequence[Wiring], grid_platforms: Sequence[str] = ()) -> Permissions:
    """Reading every stream through consumers of its own, and removing handled dead letters; no event,
    no other change to a stream, and hands off the services' and the platforms' own consumers."""
    publish = [f"{API}.INFO", f"{API}.STREAM.NAMES", f"{API}.STREAM.LIST", f"{API}.STREAM.INFO.*",
               f"{API}.STREAM.MSG.GET.*", f"{API}.CONSUMER.NAMES.*", f"{API}.CONSUMER.LIST.*",
               f"{API}.CONSUMER.INFO.*.*", f"{API}.CONSUMER.CREATE.*.*", f"{API}.CONSUMER.CREATE.*.*.>",
               f"{API}.CONSUMER.MSG.NEXT.*.*",
               *(f"{API}.STREAM.MSG.DELETE.{dead_letter_stream(w.name).name}" for w in everyone)]
    deny = _hands_off([*(c for w in everyone for c in w.consumers),
                       *(grid_platform_consumer(p) for p in grid_platforms)])
    return Permissions(_unique(publish), (f"{nats_inbox_prefix(OPS)}.>",), _unique(deny))


def users(specs: Sequence[ServiceSpec], *, grid_platforms: Sequence[str] = (),
          registry_sources: Sequence[str] = ()) -> dict[str, Permissions]:
    """Every NATS user of Minyi and its permissions: the services, one per grid platform and per
    registry source, then `ops`."""
    everyone = [wiring(spec) for spec in specs]
    for kind, ids in (("grid platform", grid_platforms), ("registry source", registry_sources)):
        bad = [i for i in ids if not OUTSIDE_ID.fullmatch(i)]
        if bad:
            raise ValueError(f"{kind} id {bad[0]!r}: letters, digits, '-' and '_' only, at most 64")
    out = {w.name: service_permissions(w, everyone) for w in everyone}
    outside = {**{grid_platform_user(p): grid_platform_permissions(p) for p in dict.fromkeys(grid_platforms)},
               **{registry_source_user(s): registry_source_permissions(s) for s in dict.fromkeys(registry_sources)}}
    out.update(outside)
    out[OPS] = ops_permissions(everyone, list(dict.fromkeys(grid_platforms)))
    # Every user distinct, down to the variable its password comes from (`a-b` and `a_b`, `P1` and `p1`).
    variables: dict[str, str] = {}
    for user in [*(w.name for w in everyone), *outside, OPS]:
        variable = nats_password_variable(user)
        if variable in variables:
            raise ValueError(f"NATS users {variables[variable]!r} and {user!r} collide; give them distinct names")
        variables[variable] = user
    return out


def outside_ids(listed: Sequence[str] | None, configured: str) -> list[str]:
    """Platform ids or sources given on the command line, else the comma-separated setting."""
    if listed:
        return list(dict.fromkeys(listed))
    return list(dict.fromkeys(part.strip() for part in configured.split(",") if part.strip()))


def service_specs(names: Sequence[str] = SERVICES) -> list[ServiceSpec]:
    """The services' specs (imports every service, which takes a moment)."""
    return [importlib.import_module(f"services.{name}.service").SPEC for name in names]


def _list(key: str, subjects: Sequence[str], indent: str) -> list[str]:
    # JSON strings are valid NATS configuration strings, and quoted `$…` is not a variable.
    return [f"{indent}{key}: [", *(f"{indent}  {json.dumps(s)}" for s in subjects), f"{indent}]"]


def render(permissions: Mapping[str, Permissions], passwords: Mapping[str, str] | None = None) -> str:
    """The `authorization` block of a nats-server configuration, passwords read from the environment;
    or, given `passwords`, written in (nats-server does not let one included file read variables that
    another defines, so a file-only setup such as docker-compose's needs them in place)."""
    source = ("# Each password comes from the server's environment: $MINYI_NATS_PW_<USER>." if passwords is None
              else "# The passwords are in this file: keep it 0600, readable by nats-server only.")
    lines = [
        "# Generated from the services' wiring by `minyi nats-auth` (shared/nats_permissions.py); do not edit.",
        source,
        "authorization {",
        "  users = [",
    ]
    for user, p in permissions.items():
        password = f"${nats_password_variable(user)}" if passwords is None else json.dumps(passwords[user])
        lines += ["    {", f"      user: {json.dumps(user)}", f"      password: {password}",
                  "      permissions: {", "        publish: {", *_list("allow", p.publish, "          ")]
        if p.publish_deny:
            lines += _list("deny", p.publish_deny, "          ")
        lines += ["        }", "        subscribe: {", *_list("allow", p.subscribe, "          "), "        }"]
        if p.allow_responses:
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
