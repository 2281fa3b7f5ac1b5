"""One NATS user per service, with its own subjects only, against a real nats-server.

Each test starts its own nats-server on free ports with the authorization block the code generates
(shared/nats_permissions.py), as `minyi up` and the Kubernetes overlays do, and connects as the
users. The services themselves run in-process against it with their own credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import psutil
import pytest
from busutil import eventually, fresh_database
from conftest import Servers
from identityutil import id_number
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from routingutil import signed_status, submitted_event
from serviceutil import served
from suggestionsutil import bearer

from minyi import cli
from minyi.servers import (
    Nats,
    ensure_nats_passwords,
    free_port,
    operator_nats_options,
    read_nats_passwords,
    referenced_variables,
)
from shared import nats_permissions
from shared.bus.replay import replay
from shared.bus.streams import dead_letter_stream, declare
from shared.contracts import EVENTS, GRID_STREAM, REGISTRY_STREAM, STREAMS
from shared.nats_permissions import OPS, Consumer, Permissions, Wiring, grid_platform_user, registry_source_user
from shared.service import ServiceSpec
from shared.settings import SERVICES, Settings, nats_inbox_prefix, nats_password_variable, new_nats_password

SPECS: dict[str, ServiceSpec] = {spec.name: spec for spec in nats_permissions.service_specs()}
WIRING: dict[str, Wiring] = {name: nats_permissions.wiring(spec) for name, spec in SPECS.items()}
USERS: dict[str, Permissions] = nats_permissions.users(list(SPECS.values()))
# The outside systems of these tests: grid platforms and registries, a NATS user each.
PLATFORMS = ("p1", "p2", "np-grid")
SOURCES = ("population", "migrant")
EVERYONE: dict[str, Permissions] = nats_permissions.users(list(SPECS.values()), grid_platforms=PLATFORMS,
                                                          registry_sources=SOURCES)
# The registry feed's durable: a worker's pull consumer, not a subscription of the spec.
FEED = Consumer(REGISTRY_STREAM.name, "identity-registry", "registry.*.records")


# ---- a nats-server with the generated users --------------------------------------------------------


@dataclass
class Connected:
    nc: NatsClient
    refusals: list[str] = field(default_factory=list)

    @property
    def js(self) -> Any:
        return self.nc.jetstream(timeout=2.0)

    async def refused(self, subject: str) -> None:
        """Wait for the server to report a permissions violation on `subject`."""
        await self.nc.flush()
        wanted = f'"{subject}"'.lower()

        async def reported() -> bool:
            return any("permissions violation" in r and wanted in r for r in self.refusals)

        await eventually(reported, timeout=5, what=f"a permissions violation for {subject}", interval=0.02)


@dataclass
class Secured:
    server: Nats
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @asynccontextmanager
    async def connect(self, user: str, password: str | None = None) -> AsyncIterator[Connected]:
        refusals: list[str] = []

        async def on_error(exc: Exception) -> None:
            refusals.append(str(exc).lower())

        nc = await nats.connect(self.url, user=user, password=password or self.passwords[user],
                                inbox_prefix=nats_inbox_prefix(user), error_cb=on_error, allow_reconnect=False,
                                connect_timeout=3)
        try:
            yield Connected(nc, refusals)
        finally:
            await nc.close()

    def violations(self) -> list[str]:
        """What the server logged as refused (publish, subscription or authentication)."""
        lines = self.server.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if "Violation" in line or "authentication error" in line]

    async def declare_all(self) -> None:
        """Every stream, declared by its owner the way the service does at start (and again: an update)."""
        for name, wiring in WIRING.items():
            async with self.connect(name) as me:
                for stream in wiring.produced:
                    await declare(me.js, stream, 1)
                    await declare(me.js, stream, 1)

    async def messages(self, stream: str) -> int:
        async with self.connect(OPS) as ops:
            return int((await ops.js.stream_info(stream)).state.messages)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    passwords = {user: new_nats_password() for user in EVERYONE}
    server = Nats(tmp_path / "js", free_port(), free_port(), tmp_path / "nats.log", tmp_path / "nats.conf",
                  authorization=nats_permissions.render(EVERYONE),
                  environment={nats_password_variable(u): p for u, p in passwords.items()})
    server.start()
    try:
        yield Secured(server, passwords)
    finally:
        server.stop()


def _example(subject: str) -> str:
    """A concrete subject matching a pattern (a registry's of a source that has a user)."""
    return subject.replace("registry.*", f"registry.{SOURCES[0]}").replace(">", "x.y").replace("*", "p1")


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or token not in ("*", s[i]):
            return False
    return len(p) == len(s)


def _allowed(perms: Permissions, subject: str) -> bool:
    return (any(_matches(p, subject) for p in perms.publish)
            and not any(_matches(p, subject) for p in perms.publish_deny))


def _pull_config(c: Consumer) -> ConsumerConfig:
    """What shared/bus/consumer.py asks JetStream for."""
    return ConsumerConfig(durable_name=c.name, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                          max_deliver=5, ack_wait=30, filter_subject=c.filter_subject)


def _events_of(service: str) -> list[str]:
    return [e.type for e in EVENTS[service]]


# ---- the generated configuration ----------------------------------------------------------------


def test_the_committed_kubernetes_users_are_what_the_code_generates() -> None:
    assert cli.NATS_AUTH_FILE.read_text() == nats_permissions.render(USERS), \
        "deploy/k8s/components/nats-auth/nats-auth.conf drifted; run `minyi nats-auth`"
    args = cli.build_parser().parse_args(["nats-auth", "--check"])
    assert args.func(args) == 0


def test_the_permissions_follow_each_services_wiring() -> None:
    """Offline, over every event type: what each user may publish, by the same matching NATS uses."""
    assert list(USERS) == [*SERVICES, OPS]
    assert list(EVERYONE) == [*SERVICES, *(f"grid-{p}" for p in PLATFORMS), *(f"registry-{s}" for s in SOURCES), OPS]
    # What outsiders publish lies in streams Minyi declares, and a service reads only those subjects of them.
    exchange = {s.name: s for w in WIRING.values() for s in w.produced if s in nats_permissions.EXCHANGE_STREAMS}
    assert set(nats_permissions.INBOUND) <= {subject for s in exchange.values() for subject in s.subjects}
    for c in (c for w in WIRING.values() for c in w.consumers if c.stream in exchange):
        assert c.filter_subject in nats_permissions.INBOUND, c
    for owner in SERVICES:
        for user, perms in EVERYONE.items():
            for event in _events_of(owner):
                assert _allowed(perms, event) == (user == owner), f"{user} publishing {event}"
            assert _allowed(perms, f"deadletter.{owner}.x") == (user == owner), f"{user} dead-lettering as {owner}"
    # Each outside system publishes its own inbound subject and no other's; nobody else publishes them.
    for inbound, publisher in (("registry.population.records", "registry-population"),
                               ("registry.migrant.records", "registry-migrant"),
                               ("registry.social_security.records", None),
                               ("grid.p1.events", "grid-p1"), ("grid.p2.events", "grid-p2"), ("grid.p3.events", None)):
        assert [u for u, p in EVERYONE.items() if _allowed(p, inbound)] == ([publisher] if publisher else [])
    assert [u for u, p in EVERYONE.items() if _allowed(p, "grid.p1.tickets")] == ["routing"]
    assert [u for u, p in EVERYONE.items() if "grid.p1.tickets" in p.subscribe] == ["grid-p1"]
    # Requests to identity's responder are open to the other services, not to outsiders.
    assert [u for u, p in EVERYONE.items() if _allowed(p, "identity.codes.resolve")] == [
        s for s in SERVICES if s != "identity"]
    assert [u for u, p in EVERYONE.items() if p.allow_responses] == ["identity"]
    for user, perms in EVERYONE.items():
        assert perms.subscribe[0] == f"_INBOX_{user}.>", "replies on the user's own inbox prefix"
        # Nobody may read the default prefix: a pull consumer's messages are replies.
        assert "_INBOX.>" not in perms.subscribe
        for stream in [*STREAMS.values(), REGISTRY_STREAM, GRID_STREAM]:
            for op in ("DELETE", "PURGE"):
                assert not _allowed(perms, f"$JS.API.STREAM.{op}.{stream.name}"), f"{user} may {op} {stream.name}"
    # Every subscription's durable is the owner's to run, and nobody else's.
    for owner, wiring in WIRING.items():
        for c in wiring.consumers:
            for user, perms in EVERYONE.items():
                drain = f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.name}"
                assert _allowed(perms, drain) == (user == owner), f"{user} pulling {c.name}"
                assert _allowed(perms, f"$JS.ACK.{c.stream}.{c.name}.1.2.3.4.0") == (user == owner)


# ---- each service on its own -------------------------------------------------------------------------


async def _feed(secured: Secured, c: Consumer) -> str:
    """Publish one message its consumer selects, as the one allowed to publish it."""
    subject = _example(c.filter_subject)
    publisher = next(u for u, p in EVERYONE.items() if _allowed(p, subject))
    async with secured.connect(publisher) as who:
        ack = await who.js.publish(subject, b'{"probe": true}')
    assert ack.stream == c.stream
    return subject


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_publishes_its_events_and_runs_its_consumers(secured: Secured, service: str) -> None:
    await secured.declare_all()
    wiring = WIRING[service]
    assert all(_matches(c.filter_subject, _example(FEED.filter_subject)) for c in wiring.inbound_consumers)
    consumers = [*wiring.consumers, *([FEED] if wiring.inbound_consumers else [])]
    fed = [await _feed(secured, c) for c in consumers]
    async with secured.connect(service) as me:
        own = STREAMS[service].name
        for event in _events_of(service):
            assert (await me.js.publish(event, b"{}")).stream == own
        letter = await me.js.publish(f"deadletter.{service}.{_events_of(service)[0]}", b"{}")
        assert letter.stream == dead_letter_stream(service).name
        if service == "routing":
            assert (await me.js.publish("grid.p1.tickets", b"{}")).stream == GRID_STREAM.name
        for c, subject in zip(consumers, fed, strict=True):
            sub = await me.js.pull_subscribe(c.filter_subject, durable=c.name, stream=c.stream, config=_pull_config(c))
            (msg,) = await sub.fetch(1, timeout=3)
            assert msg.subject == subject
            await msg.ack_sync(timeout=2)  # answered only when the ack was allowed
            info = await me.js.consumer_info(c.stream, c.name)
            assert (info.num_ack_pending, info.num_pending) == (0, 0)
            assert info.ack_floor.stream_seq == msg.metadata.sequence.stream
            await sub.unsubscribe()
        assert (await me.js.account_info()).streams >= 1  # readiness asks this
        assert me.refusals == []


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_publish_another_services_events(secured: Secured, service: str) -> None:
    await secured.declare_all()
    others = [s for s in SERVICES if s != service]
    forbidden = [_events_of(other)[0] for other in others] + [f"deadletter.{other}.x" for other in others]
    forbidden += ["registry.population.records", "grid.p1.events"]
    forbidden += [] if service == "routing" else ["grid.p1.tickets"]
    async with secured.connect(service) as me:
        with pytest.raises(nats.errors.TimeoutError):  # no PubAck: the server dropped it
            await me.js.publish(forbidden[0], b"{}", timeout=0.5)
        for subject in forbidden:
            await me.nc.publish(subject, b"{}")
            await me.refused(subject)
        # Nor run, drain or acknowledge another service's consumer.
        theirs = next(c for other in others for c in WIRING[other].consumers)
        hijack = f"$JS.API.CONSUMER.MSG.NEXT.{theirs.stream}.{theirs.name}"
        await me.nc.publish(hijack, b'{"batch": 1}', reply=me.nc.new_inbox())
        await me.refused(hijack)
        # Nor listen to another user's replies, or to events outside a consumer of its own.
        for subject in ("_INBOX.>", f"_INBOX_{others[0]}.>", _events_of(others[0])[0]):
            await me.nc.subscribe(subject)
            await me.refused(subject)
    for stream in [*(STREAMS[o].name for o in others), *(dead_letter_stream(o).name for o in others),
                   REGISTRY_STREAM.name, GRID_STREAM.name]:
        assert await secured.messages(stream) == 0, f"{stream} got a message {service} may not publish"


async def test_a_wrong_or_missing_password_is_refused(secured: Secured) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.url, user="intake", password=secured.passwords["routing"],
                           allow_reconnect=False, connect_timeout=3)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.url, allow_reconnect=False, connect_timeout=3)
    async with secured.connect("intake") as me:  # the right one works
        assert me.nc.is_connected


# ---- the outside users -------------------------------------------------------------------------------


async def test_each_platform_publishes_its_statuses_and_reads_only_its_tickets(secured: Secured) -> None:
    await secured.declare_all()
    async with secured.connect("routing") as routing:
        await routing.js.publish("grid.p1.tickets", b'{"ticket_id": "t1"}')
        await routing.js.publish("grid.p2.tickets", b'{"ticket_id": "t2"}')
        (own,) = [c for c in WIRING["routing"].consumers if c.stream == GRID_STREAM.name]
        sub = await routing.js.pull_subscribe(own.filter_subject, durable=own.name, stream=own.stream,
                                              config=_pull_config(own))
        await sub.unsubscribe()
    async with secured.connect("grid-p2") as p2:
        # P2's consumer, named after it, exists before P1 tries to reach it.
        mine = nats_permissions.grid_platform_consumer("p2")
        p2_sub = await p2.js.pull_subscribe(mine.filter_subject, durable=mine.name, stream=GRID_STREAM.name,
                                            config=_pull_config(mine))
        async with secured.connect(grid_platform_user("p1")) as p1:
            assert (await p1.js.publish("grid.p1.events", b"{}")).stream == GRID_STREAM.name
            tickets = nats_permissions.grid_platform_consumer("p1")
            assert (tickets.name, tickets.filter_subject) == ("p1", "grid.p1.tickets")
            sub = await p1.js.pull_subscribe(tickets.filter_subject, durable=tickets.name, stream=GRID_STREAM.name,
                                             config=_pull_config(tickets))
            (msg,) = await sub.fetch(1, timeout=3)
            await msg.ack_sync(timeout=2)
            assert json.loads(msg.data) == {"ticket_id": "t1"}
            # Not another platform's statuses, not tickets, not a registry's records, not a service's events.
            for subject in ("grid.p2.events", "grid.p1.tickets", "registry.population.records",
                            "intake.report.submitted", "deadletter.routing.x"):
                await p1.nc.publish(subject, b"{}")
                await p1.refused(subject)
            # Not another platform's tickets: live, through P2's consumer, or a consumer of its own on them.
            await p1.nc.subscribe("grid.p2.tickets")
            await p1.refused("grid.p2.tickets")
            for subject in (f"$JS.API.CONSUMER.MSG.NEXT.{GRID_STREAM.name}.p2",
                            f"$JS.API.CONSUMER.CREATE.{GRID_STREAM.name}.p2.grid.p2.tickets",
                            f"$JS.API.CONSUMER.CREATE.{GRID_STREAM.name}.p1.grid.p2.tickets",
                            f"$JS.API.CONSUMER.CREATE.{GRID_STREAM.name}",  # an ephemeral one, any filter
                            f"$JS.API.CONSUMER.MSG.NEXT.{GRID_STREAM.name}.{own.name}",
                            f"$JS.API.CONSUMER.CREATE.{GRID_STREAM.name}.{own.name}.grid.p1.tickets"):
                await p1.nc.publish(subject, b"{}", reply=p1.nc.new_inbox())
                await p1.refused(subject)
            # Nor listen where replies (and so pulled tickets) of others arrive.
            for subject in ("_INBOX.>", "_INBOX_grid-p2.>"):
                await p1.nc.subscribe(subject)
                await p1.refused(subject)
        (theirs,) = await p2_sub.fetch(1, timeout=3)
        assert json.loads(theirs.data) == {"ticket_id": "t2"}, "P2's ticket stayed P2's"
        await theirs.ack_sync(timeout=2)
    async with secured.connect(registry_source_user("population")) as registry:
        assert (await registry.js.publish("registry.population.records", b"{}")).stream == REGISTRY_STREAM.name
        for subject in ("registry.migrant.records", "grid.p1.events"):
            await registry.nc.publish(subject, b"{}")
            await registry.refused(subject)
        await registry.nc.subscribe("grid.p1.tickets")
        await registry.refused("grid.p1.tickets")
    # The one shared user of before is gone.
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.url, user="integration", password=secured.passwords["ops"],
                           allow_reconnect=False, connect_timeout=3)
    async with secured.connect(OPS) as ops:
        drain = f"$JS.API.CONSUMER.MSG.NEXT.{GRID_STREAM.name}.p1"
        await ops.nc.publish(drain, b'{"batch": 1}', reply=ops.nc.new_inbox())
        await ops.refused(drain)
    async with secured.connect("routing") as routing:
        info = await routing.js.consumer_info(GRID_STREAM.name, own.name)
        assert info.config.filter_subject == own.filter_subject and info.num_pending == 1
    assert await secured.messages(STREAMS["intake"].name) == 0
    assert await secured.messages(REGISTRY_STREAM.name) == 1


def test_outside_users_are_checked() -> None:
    specs = list(SPECS.values())
    for bad in ({"grid_platforms": ["a.b"]}, {"grid_platforms": ["*"]}, {"registry_sources": [""]},
                {"grid_platforms": ["gp-1", "gp_1"]}, {"grid_platforms": ["P1", "p1"]}):
        with pytest.raises(ValueError):
            nats_permissions.users(specs, **bad)  # type: ignore[arg-type]
    assert nats_permissions.outside_ids(None, " a, b ,,a") == ["a", "b"]
    assert nats_permissions.outside_ids(["c"], "a,b") == ["c"]


async def test_ops_reads_every_stream_and_changes_nothing(secured: Secured) -> None:
    await secured.declare_all()
    for service in SERVICES:
        async with secured.connect(service) as me:
            await me.js.publish(_events_of(service)[0], b'{"specversion": "1.0", "id": "e1", "source": "/t", '
                                                        b'"type": "t", "data": {}}')
            await me.js.publish(f"deadletter.{service}.x", b"{}")
    async with secured.connect(OPS) as ops:
        for service in SERVICES:
            seen: list[str] = []

            async def apply(events: list[Any], seen: list[str] = seen) -> None:
                seen.extend(e.id for e in events)

            done = await replay(ops.js, STREAMS[service].name, ">", apply, progress=lambda line: None)
            assert (done.events, seen) == (1, ["e1"]), service
            letters = dead_letter_stream(service).name
            first = await ops.js.get_msg(letters, 1)
            assert first.subject == f"deadletter.{service}.x"
            assert await ops.js.delete_msg(letters, 1)  # a handled dead letter goes
        for subject in (*(_events_of(s)[0] for s in SERVICES), "registry.population.records", "deadletter.intake.x",
                        f"$JS.API.STREAM.DELETE.{STREAMS['intake'].name}",
                        f"$JS.API.STREAM.PURGE.{STREAMS['intake'].name}",
                        f"$JS.API.STREAM.MSG.DELETE.{STREAMS['intake'].name}"):
            await ops.nc.publish(subject, b"{}", reply=ops.nc.new_inbox())
            await ops.refused(subject)
    for service in SERVICES:
        assert await secured.messages(STREAMS[service].name) == 1
        assert await secured.messages(dead_letter_stream(service).name) == 0


# ---- the services themselves, each as its own user ------------------------------------------------


ADMIN = bearer("admin")
REGION = "330106"


def _settings(database_url: str, servers: Servers, secured: Secured, home: Path, service: str, port: int
              ) -> Settings:
    return Settings(database_url=database_url, nats_url=secured.url, nats_user=service,
                    nats_password=secured.passwords[service], temporal_address=servers.temporal_address,
                    home=home / service, outbox_poll_seconds=0.1, retry_base_seconds=0.2, clock_poll_seconds=3600,
                    grid_dispatch_poll_seconds=0.2, hotspot_threshold=2, **{f"{service}_port": port})


async def _directory(identity: httpx.AsyncClient) -> str:
    """A county with one deputy; returns the deputy's QR code."""
    for code, name, parent in (("330000", "浙江省", None), ("330100", "杭州市", "330000"),
                               (REGION, "西湖区", "330100")):
        resp = await identity.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
        assert resp.status_code in (200, 201), resp.text
    resp = await identity.put("/v1/deputies/NP-D1", headers=ADMIN, json={
        "name": "权限代表", "level": "county", "region_code": REGION, "station_ids": []})
    assert resp.status_code in (200, 201), resp.text
    resp = await identity.post("/v1/deputies/NP-D1/code", headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["code"])


async def test_the_five_services_run_as_their_own_users(servers: Servers, secured: Secured, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await secured.declare_all()
    # A database of its own: another module's queued tickets must not stand before this one's.
    database_url = await fresh_database(servers.database_url, "minyi_nats_users")
    async with AsyncExitStack() as stack:
        running = {}
        for service in SERVICES:
            port = free_port()
            running[service] = await stack.enter_async_context(
                served(SPECS[service], _settings(database_url, servers, secured, tmp_path, service, port), port))
        for service, svc in running.items():
            ready = await svc.client.get("/readyz")
            assert ready.status_code == 200, f"{service}: {ready.text}"
            assert svc.runtime.settings.nats_user == service

        routing = running["routing"].client
        resp = await routing.put("/v1/grid-platforms/np-grid", headers=ADMIN, json={
            "name": "权限测试平台", "region_prefixes": [REGION], "transport": "nats", "secret": "s" * 32})
        assert resp.status_code in (200, 201), resp.text
        code = await _directory(running["identity"].client)
        # Intake asks identity what the code leads to over core NATS request/reply; two alike make a hotspot.
        body = {"channel": "h5", "code": code, "content": "小区门口的路灯坏了一个星期，晚上一片漆黑", "anonymous": True}
        for _ in range(2):
            report = await running["intake"].client.post("/v1/reports", json=body)
            assert report.status_code == 201, report.text
            assert (report.json()["target"]["kind"], report.json()["target"]["id"]) == ("deputy", "NP-D1")
        # A third citizen says "me too" instead: intake.report.supported, for routing's hotspot.
        support = await running["intake"].client.post(f"/v1/reports/{report.json()['id']}/supports",
                                                      json={"anonymous": True, "channel": "h5"})
        assert support.status_code == 201, support.text

        # The grid platform takes the ticket from GRID and answers on its status subject.
        # The grid platform takes the ticket from GRID and answers, signed, on its status subject;
        # the population registry sends its records. Each as its own user.
        async with secured.connect(grid_platform_user("np-grid")) as platform:
            tickets = await platform.js.pull_subscribe("grid.np-grid.tickets", durable="np-grid", stream="GRID")
            ticket, *_ = await tickets.fetch(2, timeout=60)
            await ticket.ack()
            status = {"ticket_id": json.loads(ticket.data)["ticket_id"], "status": "accepted",
                      "at": "2026-11-21T10:00:00+08:00"}
            raw, headers = signed_status("s" * 32, status)
            await platform.js.publish("grid.np-grid.events", raw, headers=headers)
        async with secured.connect(registry_source_user("population")) as registry:
            good = {"record_id": "NP-1", "id_number": id_number(REGION, date(1980, 1, 1), 7), "name": "权限",
                    "hukou_region_code": REGION, "residence_region_code": REGION, "status": "active",
                    "political_rights": True, "updated_at": "2026-10-01T08:00:00+08:00"}
            await registry.js.publish("registry.population.records", json.dumps(good, ensure_ascii=False).encode())
            # Not a record: the feed sets it aside on identity's own dead-letter stream.
            await registry.js.publish("registry.population.records", b'"not a record"')

        async with secured.connect(OPS) as ops:
            async def consumed(*consumers: Consumer) -> bool:
                for c in consumers:
                    info = await ops.js.consumer_info(c.stream, c.name)
                    if info.delivered.stream_seq < 1 or info.num_pending or info.num_ack_pending:
                        return False
                return True

            # A suggestion by the deputy, once suggestions knows them: its events feed scoring.
            (knows,) = [c for c in WIRING["suggestions"].consumers if c.stream == STREAMS["identity"].name]
            await eventually(lambda: consumed(knows), timeout=30, what="the deputy known to suggestions")
            suggestion = {"title": "关于路灯维护的建议", "content": "建议城管部门每月定期巡查小区周边路灯并及时维修。",
                          "lead_deputy_id": "NP-D1", "year": date.today().year, "kind": "session"}
            resp = await running["suggestions"].client.post("/v1/suggestions", json=suggestion,
                                                            headers=bearer("deputy", REGION, deputy_id="NP-D1"))
            assert resp.status_code == 201, resp.text
            # The two reports' hotspot, a supervision topic by now, closed by staff: suggestions.topic.closed
            # to routing, and routing.hotspot.progressed back to intake's receipts and suggestions' topics.
            staff = bearer("npc_staff", REGION)

            async def topics() -> list[dict[str, Any]]:
                found = await running["suggestions"].client.get("/v1/supervision-topics", headers=staff)
                return list(found.json()) if found.status_code == 200 else []

            async def listed() -> bool:
                return bool(await topics())

            await eventually(listed, timeout=30, what="the hotspot as a supervision topic")
            (topic,) = await topics()
            closed = await running["suggestions"].client.post(f"/v1/supervision-topics/{topic['id']}/closure",
                                                              json={"note": "已由城管部门修复。"}, headers=staff)
            assert closed.status_code == 200, closed.text
            everyone = [c for w in WIRING.values() for c in w.consumers] + [FEED]
            await eventually(lambda: consumed(*everyone), timeout=60,
                             what="every consumer of every service consumed and acked")
            assert (await ops.js.stream_info(dead_letter_stream("identity").name)).state.messages == 1
            assert (await ops.js.stream_info(dead_letter_stream("routing").name)).state.messages == 0, \
                "the platform's signed status was applied"
        for service, svc in running.items():
            metrics = (await svc.client.get("/metrics")).text
            for probe in ("consumer_lag", "dead_letters"):
                assert f'minyi_metrics_probe_ok{{probe="{probe}"}} 1.0' in metrics, f"{service} {probe}"
    assert secured.violations() == [], "the services did something their users may not"
    for service in SERVICES:
        assert f"connecting to NATS at {secured.url} as {service}" in caplog.text
    assert not [p for p in secured.passwords.values() if p in caplog.text], "a password was logged"


async def test_a_platform_cannot_answer_for_another(servers: Servers, secured: Secured, tmp_path: Path) -> None:
    """Routing as its own user; platform p1 tries every way to move p2's ticket and say something to
    the citizen: publishing on p2's subject (NATS refuses), naming p2 in its own message, signing with
    its own secret, not signing. Only p2's own signed word is applied."""
    await secured.declare_all()
    database_url = await fresh_database(servers.database_url, "minyi_grid_identities")
    port = free_port()
    settings = _settings(database_url, servers, secured, tmp_path, "routing", port)
    secrets = {"p1": "p1-secret-" + "1" * 22, "p2": "p2-secret-" + "2" * 22}
    async with served(SPECS["routing"], settings, port) as routing:
        for platform_id, prefix in (("p1", "330105"), ("p2", REGION)):
            resp = await routing.client.put(f"/v1/grid-platforms/{platform_id}", headers=ADMIN, json={
                "name": f"{platform_id} 平台", "region_prefixes": [prefix], "transport": "nats",
                "secret": secrets[platform_id]})
            assert resp.status_code == 201, resp.text
        report_id, data = submitted_event(f"{REGION}001", "小区门口的路灯坏了一个星期，晚上一片漆黑")
        async with secured.connect("intake") as intake:
            await intake.js.publish("intake.report.submitted", json.dumps(
                {"specversion": "1.0", "id": report_id, "source": "/minyi/intake", "type": "intake.report.submitted",
                 "data": data}, ensure_ascii=False).encode())
        async with secured.connect(grid_platform_user("p2")) as p2:
            sub = await p2.js.pull_subscribe("grid.p2.tickets", durable="p2", stream=GRID_STREAM.name)
            (msg,) = await sub.fetch(1, timeout=30)
            await msg.ack_sync(timeout=2)
        ticket_id = json.loads(msg.data)["ticket_id"]
        forged = {"ticket_id": ticket_id, "status": "resolved", "note": "伪造的答复", "at": "2026-11-21T10:00:00+08:00"}
        async with secured.connect(grid_platform_user("p1")) as p1:
            await p1.nc.publish("grid.p2.events", json.dumps(forged).encode())
            await p1.refused("grid.p2.events")
            # Its own subject, a CloudEvent whose type names p2, signed even with p2's secret.
            event = {"specversion": "1.0", "id": "forged-1", "source": "/p1", "type": "grid.p2.events", "data": forged}
            raw, headers = signed_status(secrets["p2"], event)
            await p1.js.publish("grid.p1.events", raw, headers=headers)
            # Its own subject, p2's ticket, signed with its own secret.
            raw, headers = signed_status(secrets["p1"], forged)
            await p1.js.publish("grid.p1.events", raw, headers=headers)
        async with secured.connect(grid_platform_user("p2")) as p2:
            for signing in (None, secrets["p1"]):  # unsigned, signed by another
                if signing is None:
                    await p2.js.publish("grid.p2.events", json.dumps(forged).encode())
                else:
                    raw, headers = signed_status(signing, forged)
                    await p2.js.publish("grid.p2.events", raw, headers=headers)
            # Then p2's own word, signed: applied, after the four above (the consumer keeps stream order).
            raw, headers = signed_status(secrets["p2"], {"ticket_id": ticket_id, "status": "accepted",
                                                         "note": "已受理", "at": "2026-11-21T10:05:00+08:00"})
            await p2.js.publish("grid.p2.events", raw, headers=headers)
        staff = bearer("npc_staff", REGION)

        async def accepted() -> bool:
            resp = await routing.client.get(f"/v1/tickets/{ticket_id}", headers=staff)
            return resp.status_code == 200 and resp.json()["status"] == "accepted"

        await eventually(accepted, timeout=30, what="p2's signed status applied")
        history = (await routing.client.get(f"/v1/tickets/{ticket_id}", headers=staff)).json()["history"]
        assert [(h["status"], h["note"], h["source"]) for h in history] == [
            ("queued", None, "routing"), ("sent", None, "routing"), ("accepted", "已受理", "nats")]
        async with secured.connect(OPS) as ops:
            letters = dead_letter_stream("routing").name
            info = await ops.js.stream_info(letters)
            errors = [json.loads((await ops.js.get_msg(letters, seq)).data)["error"]
                      for seq in range(info.state.first_seq, info.state.last_seq + 1)]
        assert len(errors) == 4, errors
        assert "names 'grid.p2.events'" in errors[0]
        assert "is not one of platform p1's" in errors[1]
        assert "not signed by platform p2" in errors[2] and "缺少 X-Minyi-Timestamp" in errors[2]
        assert "not signed by platform p2" in errors[3] and "签名不正确" in errors[3]
    assert [v for v in secured.violations() if "routing" in v] == []


# ---- `minyi up` --------------------------------------------------------------------------------------


def test_passwords_are_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nats-passwords.env"
    first = ensure_nats_passwords(path, ["MINYI_NATS_PW_A", "MINYI_NATS_PW_B"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ensure_nats_passwords(path, ["MINYI_NATS_PW_B", "MINYI_NATS_PW_C"])
    assert again["MINYI_NATS_PW_B"] == first["MINYI_NATS_PW_B"]
    assert read_nats_passwords(path) == {**first, **again}
    assert len(set(read_nats_passwords(path).values())) == 3
    assert referenced_variables(nats_permissions.render(USERS)) == [nats_password_variable(u) for u in USERS]


@pytest.mark.slow
def test_minyi_up_gives_each_service_its_own_user(servers: Servers, tmp_path: Path) -> None:
    """The embedded NATS of `minyi up` (PostgreSQL and Temporal are the session's)."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_HOME": str(home), "MINYI_DATABASE_URL": servers.database_url,
                "MINYI_TEMPORAL_ADDRESS": servers.temporal_address})
    for var in ("NATS", "NATS_MONITOR", "WEB", *(s.upper() for s in SERVICES)):
        env[f"MINYI_{var}_PORT"] = str(free_port())
    proc = subprocess.Popen([sys.executable, "-m", "minyi.cli", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while not any("Minyi is running" in line for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        passwords_file = home / "keys" / "nats-passwords.env"
        passwords = read_nats_passwords(passwords_file)
        assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
        conf = (home / "nats" / "nats.conf").read_text()
        assert "authorization" in conf and not any(p in conf for p in passwords.values())
        users = {}
        for child in psutil.Process(proc.pid).children(recursive=True):
            environ = child.environ()
            if environ.get("MINYI_NATS_USER"):
                users[child.cmdline()[-1]] = environ["MINYI_NATS_USER"]
                assert environ["MINYI_NATS_PASSWORD"] == passwords[nats_password_variable(environ["MINYI_NATS_USER"])]
        assert users == {f"services.{s}": s for s in SERVICES}, "each service process runs as its own user"
        port = int(env["MINYI_NATS_PORT"])

        async def anonymous() -> None:
            await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=3)

        async def unreadable_deputy() -> None:
            nc = await nats.connect(f"nats://127.0.0.1:{port}", user="identity", inbox_prefix="_INBOX_identity",
                                    password=passwords[nats_password_variable("identity")])
            await nc.jetstream().publish("identity.deputy.updated", b"not json")
            await nc.close()

        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            asyncio.run(anonymous())
        asyncio.run(unreadable_deputy())
        options = operator_nats_options(Settings(home=home, nats_port=port, nats_url=None, nats_user=None))
        assert options["user"] == OPS
        # Rebuilding reads IDENTITY (among others) through a consumer of the ops user's own.
        rebuilt = subprocess.run([sys.executable, "-m", "minyi.cli", "rebuild", "scoring"], env=env,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "1 malformed messages skipped" in rebuilt.stdout and "; skipped" not in rebuilt.stdout, rebuilt.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    for service in SERVICES:
        text = (home / "logs" / f"{service}.log").read_text()
        assert f"as {service}" in text and not any(p in text for p in passwords.values()), service
    log = (home / "logs" / "nats.log").read_text()
    violations = [line for line in log.splitlines() if "Violation" in line or "authentication error" in line]
    assert len(violations) == 1 and "authentication error" in violations[0], violations  # ours, above
    assert proc.returncode == 0, "".join(lines)

