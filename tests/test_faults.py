"""Faults against the real servers, under a steady load of citizens' reports.

The five services run as processes on servers of this module's own, two replicas of each, and the
reports are spread over both replicas of intake. While reports keep coming, one replica of each
service at a time is SIGKILLed while the other carries on, and restarted (routing's two in turn
while tickets are on their way to the platform, suggestions while a reply is on its way into a
running workflow), NATS is killed and restarted, PostgreSQL is restarted, the grid platform is
down for a while, and duplicate and malformed messages are injected. After recovery every
accepted report has exactly one ticket at the platform and one in routing, no effect was applied
twice, and the poison messages wait in the dead letters with their reasons.

Every step waits for what it is about (the load meeting a dead replica, a ticket sent again, the
services noticing NATS gone) rather than for a while; the only durations are the faults' own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
from busutil import event_body, stream_messages
from faultutil import (
    LEASE_SECONDS,
    REPLICAS,
    Db,
    Load,
    Stack,
    consumer_backlog,
    event_json,
    metric,
    outbox_backlog,
    publish_raw,
    say,
    undelivered,
    until,
)
from identityutil import registry_record
from routingutil import Simulator, grid_simulator
from scoringutil import suggestion_event
from suggestionsutil import bearer

from services.intake.domain import NOTES
from shared.contracts import STREAMS
from shared.ids import new_id
from shared.settings import SERVICES

pytestmark = pytest.mark.slow

REGION = "330521"
DEPUTY = "fault-deputy"
UNIT = "fault-unit-jiaotong"
PLATFORM = "fault-grid"
SECRET = "fault-grid-secret-0123456789abcdef"
RATE = 8.0  # reports a second
# How long PostgreSQL stays away once the consumers hold the events sent meanwhile: longer than a
# failing event's deliveries last (1 + 2 + 4 + 8 s apart), so an outage would dead-letter what the
# consumers had in hand unless they wait for the database.
PG_DOWN_SECONDS = 16.0
# Reports the load must get accepted while the grid platform is down (half a minute of work queued).
ACCEPTED_WHILE_GRID_DOWN = 24
LATE_DEPUTY = "fault-deputy-late"
ADMIN = bearer("admin")
STAFF = bearer("npc_staff", REGION)
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    own = Stack(tmp_path_factory.mktemp("faults"))
    try:
        own.servers.start()
        own.start_services()
        took = await own.wait_ready(timeout=120, why="first start")
        say(f"five services, {REPLICAS} replicas each, ready in {took:.1f}s (logs in {own.logs})")
        yield own
    finally:
        own.stop()
        own.servers.stop()


# ---- setting up ---------------------------------------------------------------------------------


def ok(resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert resp.status_code in (statuses or (200, 201)), f"{resp.request.method} {resp.request.url}: " \
                                                         f"{resp.status_code} {resp.text}"
    return dict(resp.json()) if resp.content else {}


async def directory(http: httpx.AsyncClient, stack: Stack) -> str:
    """A county with a deputy and the deputy's QR code, through identity's API; returns the code."""
    identity = stack.url("identity")
    province, city = REGION[:2] + "0000", REGION[:4] + "00"
    for code, name, parent in ((province, "浙江省", None), (city, "湖州市", province), (REGION, "德清县", city)):
        ok(await http.put(f"{identity}/v1/regions/{code}", json={"name": name, "parent_code": parent},
                                headers=ADMIN))
    ok(await http.put(f"{identity}/v1/deputies/{DEPUTY}", headers=ADMIN, json={
        "name": "钱代表", "level": "county", "region_code": REGION, "station_ids": []}))
    issued = ok(await http.post(f"{identity}/v1/deputies/{DEPUTY}/code", headers=ADMIN), 201)
    return str(issued["code"])


async def start_suggestion(http: httpx.AsyncClient, stack: Stack) -> str:
    """A suggestion submitted and assigned: its workflow now waits (for months) for the unit's reply."""
    url = f"{stack.url('suggestions')}/v1/suggestions"
    ok(await http.put(f"{stack.url('suggestions')}/v1/units/{UNIT}", headers=STAFF,
                            json={"name": "县交通运输局", "region_code": REGION}))
    deputy = {**bearer("deputy", REGION, deputy_id=DEPUTY), "Idempotency-Key": "fault-suggestion"}
    body = {"title": "关于改造东门桥下排水管网的建议", "lead_deputy_id": DEPUTY, "year": YEAR, "kind": "session",
            "content": "东门桥下每逢雨天积水严重，群众多次反映，建议有关部门尽快改造排水管网。"}
    created: dict[str, Any] = {}

    async def submitted() -> bool:  # 422 until the deputy has reached suggestions' projection
        nonlocal created
        resp = await http.post(url, json=body, headers=deputy)
        created = dict(resp.json())
        return resp.status_code == 201

    await until(submitted, timeout=30, what="the suggestion accepted (its deputy known to suggestions)",
                explain=lambda: f"last answer: {created}\n" + stack.tails(["suggestions", "identity"]))
    sid = str(created["id"])
    ok(await http.post(f"{url}/{sid}/assignment", json={"lead_unit_id": UNIT},
                             headers={**STAFF, "Idempotency-Key": f"fault-assign-{sid}"}))
    return sid


# ---- the faults -----------------------------------------------------------------------------------


async def mid_load(stack: Stack, load: Load, more: int = 3, timeout: float = 30) -> None:
    """Let the load run until a few more reports are in, so the next fault lands in the middle of it."""
    target = len(load.accepted) + more

    async def flowing() -> bool:
        return len(load.accepted) >= target

    def explain() -> str:
        latest = [s.seen[-3:] for s in load.submissions[-5:]]
        return f"the last reports sent got {latest}\n" + stack.tails(["intake", "identity"])

    await until(flowing, timeout=timeout, what=f"{more} more reports accepted before the next fault", explain=explain)


async def while_down(stack: Stack, load: Load, db: Db, name: str, replica: int
                     ) -> tuple[str, Callable[[], Awaitable[bool]]]:
    """What shows that the other replicas carry on while one replica of `name` is dead, and the
    check that it has happened since now."""
    if name == "intake":
        url = stack.url(name, replica)
        met = load.unreachable[url]
        others = sum(n for u, n in load.accepted_by.items() if u != url)

        async def intake_carries_on() -> bool:
            return load.unreachable[url] > met and sum(n for u, n in load.accepted_by.items() if u != url) > others

        return "the load to meet the dead replica and the other replica to accept reports", intake_carries_on
    if name == "identity":  # intake's code lookups are answered by the replica left
        accepted = len(load.accepted)

        async def identity_carries_on() -> bool:
            return len(load.accepted) > accepted

        return "reports accepted (codes resolved by the other replica)", identity_carries_on
    table = {"routing": "routing.tickets", "scoring": "scoring.entries"}[name]
    rows = int(await db.scalar(f"SELECT count(*) FROM {table}") or 0)

    async def consumer_carries_on() -> bool:
        return int(await db.scalar(f"SELECT count(*) FROM {table}") or 0) > rows

    return f"new rows in {table}, written by the other replica", consumer_carries_on


async def kill_and_restart(stack: Stack, load: Load, db: Db, name: str, replica: int, *, settle: bool = True) -> None:
    """SIGKILL one replica, see the others carry its work, restart it and wait until it is ready."""
    if settle:
        await mid_load(stack, load)
    t0 = time.monotonic()
    stack.kill(name, replica)
    what, carried_on = await while_down(stack, load, db, name, replica)
    down = await until(carried_on, timeout=45, what=f"{what} while {name}-{replica} is dead",
                       explain=lambda: stack.tails([name, "intake"]))
    stack.restart(name, replica)
    took = await stack.wait_ready([name], replica=replica, timeout=90, why="restarted after SIGKILL")
    say(f"SIGKILL {name}-{replica}: the others carried on ({down:.1f}s), ready again {took:.1f}s after the "
        f"restart; {len(load.accepted)} reports accepted, {load.retried} requests retried so far "
        f"({time.monotonic() - t0:.1f}s)")


async def tickets_in_flight(stack: Stack, sim: Simulator, db: Db) -> None:
    """Tickets claimed and on their way, and the slow platform deciding tickets since we began to
    look: POSTs keep arriving at it under the load, so some wait at its gate now."""
    received = (await sim.stats())["received"]

    async def in_flight() -> bool:
        claimed = await db.scalar("SELECT count(*) FROM routing.tickets WHERE status = 'queued' "
                                  "AND attempts > 0 AND next_attempt_at > now()")
        return bool(claimed) and (await sim.stats())["received"] > received

    await until(in_flight, timeout=30, what="tickets on their way to the slow grid platform", interval=0.05,
                explain=lambda: stack.tails(["routing"]))


async def kill_routing_mid_post(stack: Stack, load: Load, sim: Simulator, db: Db) -> None:
    """Slow answers from the platform, and each routing replica in turn killed while tickets are on
    their way: once their lease runs out they are sent again, and the platform must see the same
    tickets, not new ones. Its callbacks wait meanwhile: one would prove the delivery and spare the
    second POST."""
    await sim.configure(ack_delay_ms=1500, callback_delay_ms=10_000)
    duplicates = (await sim.stats())["duplicates"]

    async def sent_again() -> bool:
        return bool((await sim.stats())["duplicates"] > duplicates)

    # Which replica holds the tickets on their way cannot be seen from outside: a kill may find its
    # replica between two POSTs while the other one sends. A round kills each replica once; the
    # next round comes only when no ticket was cut off by the last one.
    for attempt in range(1, 4):
        for replica in range(1, REPLICAS + 1):
            await tickets_in_flight(stack, sim, db)
            await kill_and_restart(stack, load, db, "routing", replica, settle=False)
        try:
            took = await until(sent_again, timeout=LEASE_SECONDS + 15, what="a ticket cut off by the kills sent "
                               "to the platform again once its lease ran out", explain=lambda: stack.tails(["routing"]))
            break
        except AssertionError:
            if attempt == 3:
                raise
            say(f"round {attempt}: no ticket was on its way at the killed replicas; killing them again")
    say(f"tickets cut off by the kills came to the platform again {took:.1f}s after the last restart")
    await sim.configure(ack_delay_ms=0, callback_delay_ms=100)


async def kill_suggestions_mid_reply(http: httpx.AsyncClient, stack: Stack, load: Load, sid: str) -> bool:
    """SIGKILL the replica a reply is on its way into, once the request is all sent; the same request
    (same Idempotency-Key) then goes to the other replica, as a load balancer would send it, and is
    accepted once. True when the first attempt was cut off before it was answered."""
    await mid_load(stack, load)
    path = f"/v1/suggestions/{sid}/replies"
    headers = {**bearer("unit", REGION, unit_id=UNIT), "Idempotency-Key": f"fault-reply-{sid}"}
    body = {"unit_id": UNIT, "content": "已将东门桥排水管网改造列入今年计划并开工。", "outcome": "A"}
    sent = asyncio.Event()

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            sent.set()

    async def first_try() -> int:
        try:
            return (await http.post(f"{stack.url('suggestions', 1)}{path}", json=body, headers=headers,
                                    extensions={"trace": trace})).status_code
        except httpx.HTTPError:
            return 0

    attempt = asyncio.create_task(first_try())
    await asyncio.wait_for(sent.wait(), timeout=30)
    stack.kill("suggestions", 1)
    first = await attempt
    stack.restart("suggestions", 1)
    answer: dict[str, Any] = {}

    async def replied() -> bool:
        nonlocal answer
        try:
            resp = await http.post(f"{stack.url('suggestions', 2)}{path}", json=body, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            answer = {"error": type(exc).__name__}
            return False
        answer = {"status_code": resp.status_code, **(resp.json() if resp.content else {})}
        return resp.status_code == 200

    took = await until(replied, timeout=60, what="the reply accepted by the other replica", interval=1,
                       explain=lambda: f"last answer: {answer}\n" + stack.tails(["suggestions"], 40))
    assert answer["status"] == "replied", answer
    evaluated = ok(await http.post(f"{stack.url('suggestions', 2)}/v1/suggestions/{sid}/evaluation",
                                   json={"result": "satisfied"},
                                   headers={**bearer("deputy", REGION, deputy_id=DEPUTY),
                                            "Idempotency-Key": f"fault-evaluation-{sid}"}))
    assert evaluated["status"] == "closed", evaluated
    ready = await stack.wait_ready(["suggestions"], replica=1, timeout=90, why="restarted after SIGKILL mid-reply")
    say(f"SIGKILL suggestions-1 mid-reply (first attempt answered {first or 'nothing'}): reply accepted by "
        f"suggestions-2 {took:.1f}s later, suggestion closed; suggestions-1 ready again {ready:.1f}s later")
    return first == 0


async def restart_nats(stack: Stack, load: Load) -> None:
    await mid_load(stack, load)
    t0 = time.monotonic()
    nats_server = stack.servers.nats
    assert nats_server.child is not None
    nats_server.child.kill()  # no clean shutdown: what was acknowledged must already be on disk
    noticed = await stack.wait_noticed("nats", why="NATS killed")
    nats_server.start()
    took = await stack.wait_ready(timeout=60, why="NATS restarted")
    say(f"NATS killed: every replica noticed within {noticed:.1f}s; restarted, every replica ready again "
        f"{took:.1f}s later ({time.monotonic() - t0:.1f}s)")
    await mid_load(stack, load, timeout=45)


@dataclass(frozen=True)
class WhileAway:
    """Events that reached the consumers while PostgreSQL was away."""

    deputy_event: str  # identity.deputy.updated of LATE_DEPUTY: intake, suggestions and scoring keep it
    suggestion_event: str  # a suggestion led by LATE_DEPUTY: scoring's batch consumer gives points for it


async def restart_postgres(stack: Stack, load: Load) -> WhileAway:
    """PostgreSQL away for longer than the consumers' retries last, with events arriving meanwhile:
    they must wait for it, not go to the dead letters."""
    await mid_load(stack, load)
    postgres = stack.servers.postgres
    await asyncio.to_thread(postgres.stop)
    t0 = time.monotonic()
    deputy_event, suggestion_event_id = f"fault-late-{new_id()}", f"fault-late-{new_id()}"
    await publish_raw(stack.nats_url, "identity.deputy.updated", event_body(
        deputy_event, "identity.deputy.updated", {"id": LATE_DEPUTY, "name": "孙代表", "level": "county",
                                                  "region_code": REGION, "station_ids": [], "version": 1}),
        {"Nats-Msg-Id": deputy_event})
    await publish_raw(stack.nats_url, "suggestions.suggestion.submitted", event_body(
        suggestion_event_id, "suggestions.suggestion.submitted",
        suggestion_event("submitted", new_id(), LATE_DEPUTY, REGION, datetime.now(UTC))),
        {"Nats-Msg-Id": suggestion_event_id})
    streams = (STREAMS["identity"].name, STREAMS["suggestions"].name)

    async def in_hand() -> bool:
        return not await undelivered(stack.nats_url, streams)

    held = await until(in_hand, timeout=30, what="the events sent while PostgreSQL is away delivered to every "
                       "consumer", explain=lambda: stack.tails(lines=10))
    # The outage itself: from the moment the consumers hold the events, longer than their retries last.
    await asyncio.sleep(PG_DOWN_SECONDS)
    postgres.start()  # from this thread: a server stops with the thread that started it
    away = time.monotonic() - t0
    # A worker that crashed while the database was away keeps its replica unready for a while after
    # (see /readyz); the faults go on once every replica serves again, and the end waits for all of it.
    took = await stack.wait_ready(timeout=90, why="PostgreSQL restarted", ignore=("workers",))
    crashed = [svc.label for svc in stack.processes() if (await stack.readiness(svc))[1].get("workers") != "ok"]
    say(f"PostgreSQL away {away:.1f}s (the events in the consumers' hands after {held:.1f}s): every replica "
        f"serving again {took:.1f}s after its restart; a worker crashed during the outage in {crashed or 'none'}")
    await mid_load(stack, load, timeout=45)
    return WhileAway(deputy_event, suggestion_event_id)


async def grid_outage(sim: Simulator, load: Load) -> tuple[int, int]:
    """The platform answers 503 until the load has got a good many reports accepted and routing has
    found it down a few times: reports are still accepted, tickets wait. Returns how many reports
    were accepted during the outage and how many tickets the platform refused."""
    await sim.configure(down=True)
    t0 = time.monotonic()
    refused = (await sim.stats())["failed_injected"]

    async def refusing() -> bool:
        return bool((await sim.stats())["failed_injected"] >= refused + 2)

    await until(refusing, timeout=30, what="routing to meet the platform down")
    # A POST that passed the platform's gate before the switch has landed by the time routing has
    # been refused twice (with a backoff between): from here on nothing may get in.
    received = (await sim.stats())["received"]
    accepted = len(load.accepted)

    async def queued_meanwhile() -> bool:
        stats = await sim.stats()
        return len(load.accepted) >= accepted + ACCEPTED_WHILE_GRID_DOWN and \
            stats["failed_injected"] >= refused + 4

    await until(queued_meanwhile, timeout=60, what=f"{ACCEPTED_WHILE_GRID_DOWN} reports accepted and routing "
                "refused again while the grid platform is down",
                explain=lambda: f"accepted {len(load.accepted) - accepted} since the outage began")
    during = load.accepted_between(t0, time.monotonic())
    stats = await sim.stats()
    await sim.configure(down=False)
    assert stats["received"] == received, "the platform took tickets while it was down"
    say(f"grid platform down {time.monotonic() - t0:.1f}s: {during} reports accepted meanwhile, "
        f"{stats['failed_injected'] - refused} ticket deliveries refused with 503")
    return during, int(stats["failed_injected"] - refused)


# ---- duplicates and poison ---------------------------------------------------------------------------

POISON_NOT_JSON = "fault-poison-not-json"
POISON_NO_REPORT = "fault-poison-no-report"
POISON_BAD_STATUS = "fault-poison-bad-status"
POISON_FORGED_STATUS = "fault-poison-forged-status"
# (service, Nats-Msg-Id of the poison) → what its dead letter must say. A refused registry record is
# kept by reference only (no headers), under "seq <its REGISTRY sequence>": added when published.
EXPECTED_DEAD = {
    ("routing", POISON_NOT_JSON): "malformed: not JSON",
    ("scoring", POISON_NOT_JSON): "malformed: not JSON",
    # Refused by the event's model (shared/events.py), naming the field, before any handler runs.
    ("routing", POISON_NO_REPORT): "ReportSubmitted: report_id: Field required",
    ("scoring", POISON_NO_REPORT): "ReportSubmitted: report_id: Field required",
    ("intake", POISON_BAD_STATUS): "status: Input should be",
    # An outside system speaking for the platform without its secret.
    ("routing", POISON_FORGED_STATUS): f"not signed by platform {PLATFORM}",
}


async def skipped(http: httpx.AsyncClient, stack: Stack) -> dict[str, float]:
    """Events each consumer recognised as applied before (since its processes started), over the
    replicas: either may have been handed the replayed event."""
    out: dict[str, float] = {}
    for name, durable in (("routing", "routing-submitted"), ("scoring", "scoring-reports")):
        out[durable] = 0.0
        for url in stack.urls(name):
            body = (await http.get(f"{url}/metrics")).text
            out[durable] += metric(body, "minyi_consumer_messages_total", consumer=durable, outcome="skipped")
    return out


@dataclass(frozen=True)
class Injected:
    stream_dropped: int  # republished with a Nats-Msg-Id the stream holds
    inbox_skipped: int  # replayed under a new Nats-Msg-Id: deliveries the consumers' inboxes recognised
    key_repeated: int  # POSTs repeated with their Idempotency-Key
    twice_report: str  # the report the repeated POST made (once)


async def inject(http: httpx.AsyncClient, stack: Stack, load: Load) -> Injected:
    """Duplicates (an event republished, a POST repeated) and poison; returns what was suppressed."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        copies = [await js.get_last_msg(STREAMS["intake"].name, f"intake.report.{kind}")
                  for kind in ("submitted", "answered")]
    finally:
        await nc.close()
    before = await skipped(http, stack)
    dropped = 0
    for raw in copies:
        headers = dict(raw.headers or {})
        # The relay publishing again after a crash: same Nats-Msg-Id, JetStream drops it.
        dropped += await publish_raw(stack.nats_url, raw.subject or "", raw.data or b"", headers)
        # The same event again past the stream's duplicate window (a replay): only the inboxes know it.
        again = {**headers, "Nats-Msg-Id": f"fault-replay-{headers['Nats-Msg-Id']}"}
        assert not await publish_raw(stack.nats_url, raw.subject or "", raw.data or b"", again)
    assert dropped == len(copies), "JetStream stored an event whose Nats-Msg-Id it already holds"

    async def inboxes_skipped() -> bool:
        now = await skipped(http, stack)
        return all(now[k] >= before[k] + n for k, n in (("routing-submitted", 1), ("scoring-reports", 2)))

    await until(inboxes_skipped, timeout=30, what="the replayed events recognised by routing's and scoring's inboxes",
                explain=lambda: f"before {before}\n" + stack.tails(["routing", "scoring"]))

    # The same Idempotency-Key POSTed twice, to each replica once: one report, the same answer.
    body = {"channel": "h5", "code": load.code, "anonymous": True, "content": "东门桥下的下水道又堵了（重复提交）"}
    answers = [ok(await http.post(f"{url}/v1/reports", json=body, headers={"Idempotency-Key": "fault-twice"}), 201)
               for url in stack.urls("intake")]
    assert answers[0] == answers[1], answers

    # Poison on subjects the services consume.
    await publish_raw(stack.nats_url, "intake.report.submitted", b"\x00{this is not json",
                      {"Nats-Msg-Id": POISON_NOT_JSON})
    await publish_raw(stack.nats_url, "intake.report.submitted",
                      event_body(POISON_NO_REPORT, "intake.report.submitted",
                                 {"deputy_id": DEPUTY, "content": "没有编号的反映"}, complete=False),
                      {"Nats-Msg-Id": POISON_NO_REPORT})
    await publish_raw(stack.nats_url, "routing.ticket.updated",
                      event_body(POISON_BAD_STATUS, "routing.ticket.updated",
                                 {"ticket_id": "t-unknown", "report_id": answers[0]["id"], "status": "exploded"},
                                 complete=False),
                      {"Nats-Msg-Id": POISON_BAD_STATUS})
    await publish_raw(stack.nats_url, f"grid.{PLATFORM}.events",
                      event_body(POISON_FORGED_STATUS, f"grid.{PLATFORM}.events",
                                 {"ticket_id": "t-forged", "status": "resolved", "note": "已办结（伪造）",
                                  "at": "2026-12-05T10:00:00+08:00"},
                                 complete=False),
                      {"Nats-Msg-Id": POISON_FORGED_STATUS})
    # A provincial registry's "empty" date between two good records: only it is dead-lettered.
    seqs = [await publish_registry_record(stack.nats_url, registry_record(REGION, f"fault-registry-{n}", 700 + n,
                                                                               updated_at=updated_at))
            for n, updated_at in enumerate(("2026-01-02T08:00:00+08:00", "0001-01-01T00:00:00",
                                            "2026-01-02T08:00:00+08:00"))]
    EXPECTED_DEAD[("identity", f"seq {seqs[1]}")] = "不能早于1900年"
    say(f"injected: {len(copies)} events republished (dropped by JetStream) and replayed (skipped by the inboxes), "
        "one POST repeated with its Idempotency-Key, four poison messages, a registry record dated year 1")
    after = await skipped(http, stack)
    recognised = int(sum(after[k] - before[k] for k in before))
    return Injected(stream_dropped=dropped, inbox_skipped=recognised, key_repeated=len(answers) - 1,
                    twice_report=str(answers[0]["id"]))


async def publish_registry_record(nats_url: str, record: dict[str, Any]) -> int:
    """Publish one record on the population feed; returns its sequence in the REGISTRY stream."""
    nc = await nats.connect(nats_url)
    try:
        ack = await nc.jetstream().publish("registry.population.records",
                                           json.dumps(record, ensure_ascii=False).encode(), timeout=5)
        return int(ack.seq)
    finally:
        await nc.close()


async def registry_records_stored(db: Db) -> set[str]:
    rows = await db.rows("SELECT record_id FROM identity.registry_records WHERE record_id LIKE 'fault-registry-%'")
    return {str(r[0]) for r in rows}


# ---- after recovery ---------------------------------------------------------------------------------


async def wait_for_recovery(stack: Stack, db: Db, sim: Simulator, ids: set[str]) -> float:
    """Every accepted report answered through the grid platform, then nothing left in flight anywhere."""
    t0 = time.monotonic()

    async def explain() -> str:
        statuses = await db.rows("SELECT status, count(*) FROM intake.reports WHERE id = ANY(:ids) GROUP BY status",
                                 ids=list(ids))
        tickets = await db.rows("SELECT status, count(*) FROM routing.tickets GROUP BY status")
        return (f"intake reports by status: {statuses}\nrouting tickets by status: {tickets}\n"
                f"grid platform: {await sim.stats()}\nconsumers behind: {await consumer_backlog(stack.nats_url)}\n"
                f"outboxes behind: {await outbox_backlog(db)}\n" + stack.tails(lines=12))

    async def answered() -> bool:
        done = await db.scalar("SELECT count(*) FROM intake.reports WHERE id = ANY(:ids) AND status = 'answered'",
                               ids=list(ids))
        return int(done or 0) == len(ids)

    await until(answered, timeout=120, what=f"all {len(ids)} accepted reports answered through the grid platform",
                explain=explain)

    async def quiet() -> bool:
        if await consumer_backlog(stack.nats_url) or await outbox_backlog(db):
            return False
        if await db.scalar("SELECT count(*) FROM routing.tickets WHERE status = 'queued'"):
            return False
        return not any(c["result"] == "pending" for t in await sim.tickets() for c in t["callbacks"])

    await until(quiet, timeout=60, what="no consumer, outbox, ticket or callback left in flight", explain=explain)
    return time.monotonic() - t0


# What a citizen may read of the platform's work, in the only order it happens; answered is the
# platform's result, in its own words.
GRID_NEWS = {NOTES["dispatched"]: 0, NOTES["grid_accepted"]: 1, NOTES["grid_in_progress"]: 2}


async def grid_news_out_of_order(db: Db) -> dict[str, list[str]]:
    """Reports whose public timeline shows the platform's news other than once each, in order
    (dispatched, accepted, in progress, answered): the relays and consumers of two replicas deliver
    routing's events out of order, and an older one must be set aside, not told."""
    rows = await db.rows("SELECT report_id, status, note FROM intake.timeline WHERE public AND actor = 'grid' "
                         "ORDER BY report_id, seq")
    told: dict[str, list[str]] = {}
    for report_id, status, note in rows:
        if note == NOTES["acknowledged"]:
            continue  # the platform's answer takes the report up first, in the same breath
        told.setdefault(report_id, []).append(note if note in GRID_NEWS or status != "answered" else "answered")
    rank = {**GRID_NEWS, "answered": len(GRID_NEWS)}
    return {r: news for r, news in told.items()
            if any(n not in rank for n in news) or [rank[n] for n in news] != sorted({rank[n] for n in news})}


def by_report(messages: list[tuple[str, dict[str, str], bytes]]) -> Counter[tuple[str, str]]:
    """(event type, report id) of the services' own events, without the copies this test injected."""
    out: Counter[tuple[str, str]] = Counter()
    for subject, headers, data in messages:
        event = event_json(data)
        if event is None or headers.get("Nats-Msg-Id", "").startswith("fault-"):
            continue
        out[(subject, str(event.get("data", {}).get("report_id")))] += 1
    return out


async def dead_letters(stack: Stack) -> dict[tuple[str, str], str]:
    """(service, Nats-Msg-Id of the original) → the reason, of every dead letter of every service."""
    out: dict[tuple[str, str], str] = {}
    for name in SERVICES:
        for _subject, _headers, data in await stream_messages(stack.nats_url, f"DEADLETTER_{name.upper()}"):
            letter = json.loads(data)
            original = letter.get("original_headers", {}).get("Nats-Msg-Id") or f"seq {letter.get('stream_seq')}"
            out[(name, original)] = f"{letter['consumer']} on {letter['subject']}: {letter['error']}"
    return out


async def check_exactly_once(stack: Stack, db: Db, sim: Simulator, ids: set[str], sid: str) -> dict[str, int]:
    """Every accepted report once everywhere, every effect once; returns numbers for the summary."""
    reports = {r[0] for r in await db.rows("SELECT id FROM intake.reports")}
    assert reports == ids, f"reports intake holds but never accepted: {sorted(reports - ids)[:5]}; " \
                           f"accepted and missing: {sorted(ids - reports)[:5]}"

    tickets = await sim.tickets()
    at_grid = Counter(str(t["report_id"]) for t in tickets)
    assert set(at_grid) == ids, f"accepted reports without a ticket at the platform: {sorted(ids - set(at_grid))[:5]}"
    assert max(at_grid.values()) == 1, f"reports with more than one ticket: {[r for r, n in at_grid.items() if n > 1]}"
    stats = await sim.stats()
    assert stats["duplicates"] > 0, "routing was killed with tickets in flight, yet none came to the platform again"
    assert stats["duplicate_mismatches"] == 0, "a ticket was sent again with a different body"
    assert {t["status"] for t in tickets} == {"resolved"}, Counter(t["status"] for t in tickets)

    routed = await db.rows("SELECT report_id, count(*), min(status), max(status) FROM routing.tickets GROUP BY 1")
    assert {r[0] for r in routed} == ids and {(r[1], r[2], r[3]) for r in routed} == {(1, "resolved", "resolved")}
    assert {t["ticket_id"] for t in tickets} == {r[0] for r in await db.rows("SELECT id FROM routing.tickets")}
    twice = await db.rows("SELECT ticket_id, status, count(*) FROM routing.ticket_history WHERE applied "
                          "GROUP BY 1, 2 HAVING count(*) > 1")
    assert twice == [], f"ticket statuses applied twice: {twice[:5]}"

    twice = await db.rows("SELECT report_id, status, note, count(*) FROM intake.timeline "
                          "GROUP BY 1, 2, 3 HAVING count(*) > 1")
    assert twice == [], f"timeline entries written twice: {twice[:5]}"
    for status in ("submitted", "dispatched", "acknowledged", "answered"):
        n = await db.scalar("SELECT count(DISTINCT report_id) FROM intake.timeline WHERE status = :s", s=status)
        assert n == len(ids), f"{n} of {len(ids)} reports have a {status!r} entry on their timeline"
    backwards = await grid_news_out_of_order(db)
    assert backwards == {}, f"{len(backwards)} citizens' timelines tell the platform's news out of order, " \
                            f"e.g. {list(backwards.items())[:3]}"

    intake_events = by_report(await stream_messages(stack.nats_url, STREAMS["intake"].name))
    for kind in ("submitted", "dispatched", "acknowledged", "answered"):
        of_kind = {r: n for (t, r), n in intake_events.items() if t == f"intake.report.{kind}"}
        assert set(of_kind) == ids and set(of_kind.values()) == {1}, \
            f"intake.report.{kind}: {len(of_kind)} reports, {[r for r, n in of_kind.items() if n > 1][:5]} twice"
    routing_events = by_report(await stream_messages(stack.nats_url, STREAMS["routing"].name))
    for kind in ("routing.report.classified", "routing.ticket.created"):
        of_kind = {r: n for (t, r), n in routing_events.items() if t == kind}
        assert set(of_kind) == ids and set(of_kind.values()) == {1}, f"{kind}: not once per report"

    for source in ("intake.report.acknowledged", "intake.report.answered"):
        entries = await db.rows("SELECT source_id, count(*) FROM scoring.entries WHERE source = :s GROUP BY 1",
                                s=source)
        assert len(entries) == len(ids) and {r[1] for r in entries} == {1}, \
            f"scoring: {len(entries)} {source} events scored for {len(ids)} reports"
    ledger = await db.scalar("SELECT sum(points) FROM scoring.entries WHERE deputy_id = :d", d=DEPUTY)
    totals = await db.scalar("SELECT sum(base_sum + bonus_sum) FROM scoring.totals WHERE deputy_id = :d", d=DEPUTY)
    assert ledger == totals, f"scoring totals {totals} do not add up to the ledger's {ledger}"

    kinds = [r[0] for r in await db.rows("SELECT kind FROM suggestions.timeline WHERE suggestion_id = :s "
                                         "ORDER BY seq", s=sid)]
    assert kinds == ["submitted", "assigned", "replied", "evaluated", "closed"], kinds
    steps = Counter(subject for subject, _h, data in await stream_messages(stack.nats_url, STREAMS["suggestions"].name)
                    if (event_json(data) or {}).get("data", {}).get("id") == sid)
    assert set(steps.values()) == {1} and len(steps) == 5, f"suggestion events: {steps}"
    return {"grid_duplicates": int(stats["duplicates"]), "grid_received": int(stats["received"])}


async def check_applied_after_outage(db: Db, away: WhileAway) -> None:
    for schema in ("intake", "suggestions", "scoring"):
        known = await db.scalar(f"SELECT count(*) FROM {schema}.deputies WHERE id = :d", d=LATE_DEPUTY)
        assert known == 1, f"{schema} lost the deputy announced while PostgreSQL was away"
    points = await db.rows("SELECT rule_code FROM scoring.entries WHERE source_id = :s", s=away.suggestion_event)
    assert [r[0] for r in points] == ["suggestion_led"], f"scoring of the suggestion sent during the outage: {points}"


def check_dead_letters(found: dict[tuple[str, str], str]) -> None:
    for (service, msg_id), reason in EXPECTED_DEAD.items():
        assert (service, msg_id) in found, f"{service} has no dead letter for {msg_id}; it has {found}"
        assert reason in found[(service, msg_id)], found[(service, msg_id)]
    stray = {k: v for k, v in found.items() if k not in EXPECTED_DEAD}
    assert stray == {}, f"good messages were dead-lettered: {stray}"


def stale_news(stack: Stack) -> int:
    """Ticket events intake's replicas set aside as older than what they had applied (from their
    logs, which outlive the restarts that reset their metrics)."""
    return sum(svc.child.log_path.read_text(errors="replace").count("was applied before: set aside")
               for svc in stack.processes(["intake"]))


# ---- the test -------------------------------------------------------------------------------------------


async def test_every_accepted_report_reaches_its_ticket_once_through_every_fault(stack: Stack) -> None:
    t0 = time.monotonic()
    db = Db(stack.database_url)
    async with grid_simulator(SECRET, "--callback-delay-ms", "100", log_file=stack.logs / "gridsim.log") as sim, \
            httpx.AsyncClient(timeout=60, trust_env=False) as http:
        code = await directory(http, stack)
        ok(await http.put(f"{stack.url('routing')}/v1/grid-platforms/{PLATFORM}", headers=ADMIN, json={
            "name": "德清县基层治理四平台（模拟器）", "region_prefixes": [REGION], "transport": "http",
            "url": sim.url, "secret": SECRET}))
        load = Load(stack.urls("intake"), code, rate=RATE)
        load.start()
        try:
            sid = await start_suggestion(http, stack)
            say("load running over both intake replicas, a suggestion assigned; the faults begin")
            await kill_and_restart(stack, load, db, "intake", 1)
            await kill_routing_mid_post(stack, load, sim, db)
            await kill_and_restart(stack, load, db, "scoring", 2)
            await kill_and_restart(stack, load, db, "identity", 1)
            cut_off = await kill_suggestions_mid_reply(http, stack, load, sid)
            await restart_nats(stack, load)
            away = await restart_postgres(stack, load)
            during_outage, refused_by_grid = await grid_outage(sim, load)
            injected = await inject(http, stack, load)
            await mid_load(stack, load)
        except BaseException:
            await load.abort()
            raise
        await load.stop()
        assert load.refused == [], [(s.key, s.refused) for s in load.refused]
        # While PostgreSQL was away intake said 503 (come back later), never 500 (a fault of its own).
        answers = Counter(a for s in load.submissions for a in s.seen)
        assert answers["500"] == 0 and answers["503"] > 0, answers
        accepted = load.accepted
        assert len(set(accepted.values())) == len(accepted), "two keys were answered with the same report"
        spread = {url: load.accepted_by[url] for url in stack.urls("intake")}
        assert all(spread.values()), f"a replica of intake accepted nothing: {spread}"
        ids = set(accepted.values()) | {injected.twice_report}
        say(f"load stopped: {len(ids)} reports accepted ({' + '.join(map(str, spread.values()))} by the intake "
            f"replicas), {load.retried} requests retried with their key")
        took = await wait_for_recovery(stack, db, sim, ids)
        ready = await stack.wait_ready(timeout=90, why="everything recovered")
        say(f"recovered: everything delivered and quiet {took:.1f}s after the load stopped, every replica ready "
            f"{ready:.1f}s after that")
        numbers = await check_exactly_once(stack, db, sim, ids, sid)
        await check_applied_after_outage(db, away)
        found = await dead_letters(stack)
        check_dead_letters(found)
        # The good records on either side of the year-1 one were stored, through every restart.
        assert await registry_records_stored(db) == {"fault-registry-0", "fault-registry-2"}
    await db.dispose()
    restarts = stack.restarts + 2  # the replicas, NATS and PostgreSQL
    duplicates = numbers["grid_duplicates"] + injected.stream_dropped + injected.inbox_skipped + injected.key_repeated
    say(f"SUMMARY accepted={len(ids)} delivered_to_grid={numbers['grid_received']} duplicates_suppressed={duplicates} "
        f"(grid repeats {numbers['grid_duplicates']}, stream {injected.stream_dropped}, "
        f"inbox {injected.inbox_skipped}, idempotency key {injected.key_repeated}; none applied twice) "
        f"dead_lettered={len(found)} restarts={restarts} client_retries={load.retried} answers={dict(answers)} "
        f"accepted_while_grid_down={during_outage} grid_refusals={refused_by_grid} "
        f"reply_cut_off_by_kill={cut_off} ticket_news_set_aside={stale_news(stack)} "
        f"in {time.monotonic() - t0:.0f}s")
