"""Faults against the real servers, under a steady load of citizens' reports.

The five services run as processes on servers of this module's own. While reports keep coming,
each service is SIGKILLed and restarted in turn (suggestions while a reply is on its way into a
running workflow), NATS is killed and restarted, PostgreSQL is restarted, the grid platform is
down for a while, and duplicate and malformed messages are injected. After recovery every
accepted report has exactly one ticket at the platform and one in routing, no effect was applied
twice, and the poison messages wait in the dead letters with their reasons.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
from busutil import event_body, stream_messages
from faultutil import Db, Load, Stack, consumer_backlog, event_json, metric, outbox_backlog, publish_raw, say, until
from routingutil import Simulator, grid_simulator
from scoringutil import suggestion_event
from suggestionsutil import bearer

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
# Longer than a failing event's deliveries last (1 + 2 + 4 + 8 s apart): an outage dead-letters
# what the consumers had in hand unless they wait for the database.
PG_DOWN_SECONDS = 18.0
LATE_DEPUTY = "fault-deputy-late"
ADMIN = bearer("admin")
STAFF = bearer("npc_staff")
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    own = Stack(tmp_path_factory.mktemp("faults"))
    try:
        own.servers.start()
        own.start_services()
        took = await own.wait_ready(timeout=120, why="first start")
        say(f"five services ready in {took:.1f}s (logs in {own.logs})")
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
    deputy = {**bearer("deputy", deputy_id=DEPUTY), "Idempotency-Key": "fault-suggestion"}
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


async def kill_and_restart(stack: Stack, load: Load, name: str, *, settle: bool = True) -> None:
    if settle:
        await mid_load(stack, load)
    t0 = time.monotonic()
    stack.kill(name)
    await asyncio.sleep(1.0)  # down for a moment: the load meets a dead service
    stack.restart(name)
    took = await stack.wait_ready([name], timeout=90, why="restarted after SIGKILL")
    say(f"SIGKILL {name}: ready again {took:.1f}s after the restart; {len(load.accepted)} reports accepted, "
        f"{load.retried} requests retried so far ({time.monotonic() - t0:.1f}s)")


async def kill_routing_mid_post(stack: Stack, load: Load, sim: Simulator, db: Db) -> None:
    """Slow answers from the platform, and routing killed while tickets are on their way: once their
    lease runs out they are sent again, and the platform must see the same tickets, not new ones.
    Its callbacks wait meanwhile: one would prove the delivery and spare the second POST."""
    await sim.configure(ack_delay_ms=1500, callback_delay_ms=10_000)

    async def in_flight() -> bool:
        return bool(await db.scalar("SELECT count(*) FROM routing.tickets WHERE status = 'queued' "
                                    "AND attempts > 0 AND next_attempt_at > now()"))

    await until(in_flight, timeout=20, what="tickets on their way to the grid platform", interval=0.05,
                explain=lambda: stack.tails(["routing"]))
    await asyncio.sleep(0.5)  # the POSTs reach the platform and wait there for its answer
    await kill_and_restart(stack, load, "routing", settle=False)
    await sim.configure(ack_delay_ms=0, callback_delay_ms=100)


async def kill_suggestions_mid_reply(http: httpx.AsyncClient, stack: Stack, load: Load, sid: str) -> bool:
    """SIGKILL the process that runs the workflow worker while a reply is on its way in; after the
    restart the same request (same Idempotency-Key) is accepted once. True when the first attempt
    was cut off before it was answered."""
    await mid_load(stack, load)
    url = f"{stack.url('suggestions')}/v1/suggestions/{sid}/replies"
    headers = {**bearer("unit", unit_id=UNIT), "Idempotency-Key": f"fault-reply-{sid}"}
    body = {"unit_id": UNIT, "content": "已将东门桥排水管网改造列入今年计划并开工。", "outcome": "A"}

    async def first_try() -> int:
        try:
            return (await http.post(url, json=body, headers=headers)).status_code
        except httpx.HTTPError:
            return 0

    attempt = asyncio.create_task(first_try())
    await asyncio.sleep(0.03)
    stack.kill("suggestions")
    first = await attempt
    stack.restart("suggestions")
    took = await stack.wait_ready(["suggestions"], timeout=90, why="restarted after SIGKILL mid-reply")
    answer: dict[str, Any] = {}

    async def replied() -> bool:
        nonlocal answer
        try:
            resp = await http.post(url, json=body, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            answer = {"error": type(exc).__name__}
            return False
        answer = {"status_code": resp.status_code, **(resp.json() if resp.content else {})}
        return resp.status_code == 200

    await until(replied, timeout=60, what="the reply accepted by the restarted worker", interval=1,
                explain=lambda: f"last answer: {answer}\n" + stack.tails(["suggestions"], 40))
    assert answer["status"] == "replied", answer
    evaluated = ok(await http.post(f"{stack.url('suggestions')}/v1/suggestions/{sid}/evaluation",
                                         json={"result": "satisfied"},
                                         headers={**bearer("deputy", deputy_id=DEPUTY),
                                                  "Idempotency-Key": f"fault-evaluation-{sid}"}))
    assert evaluated["status"] == "closed", evaluated
    say(f"SIGKILL suggestions mid-reply (first attempt answered {first or 'nothing'}): ready again in {took:.1f}s, "
        f"reply accepted, suggestion closed")
    return first == 0


async def restart_nats(stack: Stack, load: Load) -> None:
    await mid_load(stack, load)
    t0 = time.monotonic()
    nats_server = stack.servers.nats
    assert nats_server.child is not None
    nats_server.child.kill()  # no clean shutdown: what was acknowledged must already be on disk
    await asyncio.sleep(2.0)
    nats_server.start()
    took = await stack.wait_ready(timeout=60, why="NATS restarted")
    say(f"NATS killed and restarted: every service ready again {took:.1f}s later ({time.monotonic() - t0:.1f}s)")
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
    t0 = time.monotonic()
    postgres = stack.servers.postgres
    await asyncio.to_thread(postgres.stop)
    deputy_event, suggestion_event_id = f"fault-late-{new_id()}", f"fault-late-{new_id()}"
    await publish_raw(stack.nats_url, "identity.deputy.updated", event_body(
        deputy_event, "identity.deputy.updated", {"id": LATE_DEPUTY, "name": "孙代表", "level": "county",
                                                  "region_code": REGION, "station_ids": [], "version": 1}),
        {"Nats-Msg-Id": deputy_event})
    await publish_raw(stack.nats_url, "suggestions.suggestion.submitted", event_body(
        suggestion_event_id, "suggestions.suggestion.submitted",
        suggestion_event("submitted", new_id(), LATE_DEPUTY, REGION, datetime.now(UTC))),
        {"Nats-Msg-Id": suggestion_event_id})
    await asyncio.sleep(PG_DOWN_SECONDS)
    postgres.start()
    took = await stack.wait_ready(timeout=60, why="PostgreSQL restarted")
    say(f"PostgreSQL restarted: every service ready again {took:.1f}s later ({time.monotonic() - t0:.1f}s)")
    await mid_load(stack, load, timeout=45)
    return WhileAway(deputy_event, suggestion_event_id)


async def grid_outage(sim: Simulator, load: Load, seconds: float = 8.0) -> tuple[int, int]:
    """The platform answers 503 for a while: reports are still accepted, tickets wait. Returns how
    many reports were accepted during the outage and how many tickets the platform refused."""
    await sim.configure(down=True)
    t0 = time.monotonic()
    await asyncio.sleep(1.0)  # a POST that passed the gate before the switch may still land
    received = (await sim.stats())["received"]
    await asyncio.sleep(seconds - 1.0)
    during = load.accepted_between(t0, time.monotonic())
    stats = await sim.stats()
    await sim.configure(down=False)
    assert stats["received"] == received, "the platform took tickets while it was down"
    assert during >= seconds * RATE / 3, f"only {during} reports accepted while the grid platform was down"
    say(f"grid platform down {seconds:.0f}s: {during} reports accepted meanwhile, "
        f"{stats['failed_injected']} ticket deliveries refused with 503")
    return during, int(stats["failed_injected"])


# ---- duplicates and poison ---------------------------------------------------------------------------

POISON_NOT_JSON = "fault-poison-not-json"
POISON_NO_REPORT = "fault-poison-no-report"
POISON_BAD_STATUS = "fault-poison-bad-status"
# (service, Nats-Msg-Id of the poison) → what its dead letter must say
EXPECTED_DEAD = {
    ("routing", POISON_NOT_JSON): "malformed: not JSON",
    ("scoring", POISON_NOT_JSON): "malformed: not JSON",
    ("routing", POISON_NO_REPORT): "has no report_id",
    ("scoring", POISON_NO_REPORT): "has no region_code",
    ("intake", POISON_BAD_STATUS): "unknown status",
}


async def skipped(http: httpx.AsyncClient, stack: Stack) -> dict[str, float]:
    """Events each consumer recognised as applied before (since its process started)."""
    out: dict[str, float] = {}
    for name, durable in (("routing", "routing-submitted"), ("scoring", "scoring-reports")):
        body = (await http.get(f"{stack.url(name)}/metrics")).text
        out[durable] = metric(body, "minyi_consumer_messages_total", consumer=durable, outcome="skipped")
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

    # The same Idempotency-Key POSTed twice: one report, the same answer.
    body = {"channel": "h5", "code": load.code, "anonymous": True, "content": "东门桥下的下水道又堵了（重复提交）"}
    answers = [ok(await http.post(f"{stack.url('intake')}/v1/reports", json=body,
                                        headers={"Idempotency-Key": "fault-twice"}), 201) for _ in range(2)]
    assert answers[0] == answers[1], answers

    # Poison on subjects the services consume.
    await publish_raw(stack.nats_url, "intake.report.submitted", b"\x00{this is not json",
                      {"Nats-Msg-Id": POISON_NOT_JSON})
    await publish_raw(stack.nats_url, "intake.report.submitted",
                      event_body(POISON_NO_REPORT, "intake.report.submitted",
                                 {"deputy_id": DEPUTY, "content": "没有编号的反映"}),
                      {"Nats-Msg-Id": POISON_NO_REPORT})
    await publish_raw(stack.nats_url, "routing.ticket.updated",
                      event_body(POISON_BAD_STATUS, "routing.ticket.updated",
                                 {"ticket_id": "t-unknown", "report_id": answers[0]["id"], "status": "exploded"}),
                      {"Nats-Msg-Id": POISON_BAD_STATUS})
    say(f"injected: {len(copies)} events republished (dropped by JetStream) and replayed (skipped by the inboxes), "
        "one POST repeated with its Idempotency-Key, three poison messages")
    after = await skipped(http, stack)
    recognised = int(sum(after[k] - before[k] for k in before))
    return Injected(stream_dropped=dropped, inbox_skipped=recognised, key_repeated=len(answers) - 1,
                    twice_report=str(answers[0]["id"]))


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
        load = Load(stack.url("intake"), code, rate=RATE)
        load.start()
        try:
            sid = await start_suggestion(http, stack)
            say("load running, a suggestion assigned; the faults begin")
            await kill_and_restart(stack, load, "intake")
            await kill_routing_mid_post(stack, load, sim, db)
            for name in ("scoring", "identity"):
                await kill_and_restart(stack, load, name)
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
        ids = set(accepted.values()) | {injected.twice_report}
        say(f"load stopped: {len(ids)} reports accepted, {load.retried} requests retried with their key")
        took = await wait_for_recovery(stack, db, sim, ids)
        say(f"recovered: everything delivered and quiet {took:.1f}s after the load stopped")
        numbers = await check_exactly_once(stack, db, sim, ids, sid)
        await check_applied_after_outage(db, away)
        found = await dead_letters(stack)
        check_dead_letters(found)
    await db.dispose()
    restarts = stack.restarts + 2  # the services, NATS and PostgreSQL
    duplicates = numbers["grid_duplicates"] + injected.stream_dropped + injected.inbox_skipped + injected.key_repeated
    say(f"SUMMARY accepted={len(ids)} delivered_to_grid={numbers['grid_received']} duplicates_suppressed={duplicates} "
        f"(grid repeats {numbers['grid_duplicates']}, stream {injected.stream_dropped}, "
        f"inbox {injected.inbox_skipped}, idempotency key {injected.key_repeated}; none applied twice) "
        f"dead_lettered={len(found)} restarts={restarts} client_retries={load.retried} answers={dict(answers)} "
        f"accepted_while_grid_down={during_outage} grid_refusals={refused_by_grid} "
        f"reply_cut_off_by_kill={cut_off} in {time.monotonic() - t0:.0f}s")
