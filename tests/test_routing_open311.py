"""Routing's open311 transport against a platform speaking Open311 GeoReport v2 (tests/open311_server.py),
with identity, intake and routing on the real PostgreSQL and NATS: a citizen's report becomes a service
request, the platform's statuses come back by polling into the ticket and the citizen's report, and
refusals, outages, lost answers and queued requests are handled as the transport promises.

Routing runs as in production (no MINYI_DEV_SECRETS), with 127.0.0.1 allowed by
`MINYI_GRID_ALLOWED_DESTINATIONS`, one read timeout of a second and a poll every 0.3 s.

Two replicas' pollers (two runtimes with their own connection pools on one database of their own,
nothing else polling it) read a platform once a round between them, and a replica that leased a
platform and died holds it only until its lease runs out.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from busutil import eventually, fresh_database
from conftest import Servers
from intakeutil import Intake, directory, intake_stack
from open311_server import CST, Open311Server, open311_server
from routingutil import ADMIN, Routing, bearer, routing_events, routing_service
from sqlalchemy import select, text

from services.intake.domain import NOTES
from services.routing import platforms
from services.routing.models import GridPlatform, Ticket
from services.routing.open311 import marker
from services.routing.open311_poll import LEASE_SHARE, Open311Poller, lease_due
from services.routing.service import SPEC
from shared.db import Database, upgrade_async
from shared.ids import new_id
from shared.pii import Keyring
from shared.service import Runtime, make_runtime
from shared.settings import Settings

API_KEY = "georeport-key-for-minyi-0001"
JURISDICTION = "gulou.fz.example.cn"
REGION = "350740"  # the plain GeoReport platform's
FMS_REGION = "350741"  # the platform that also offers mySociety's updates
STAFF = bearer("npc_staff", "35")


@dataclass
class Stack:
    intake: Intake
    routing: Routing
    plain: Open311Server
    fms: Open311Server


@pytest.fixture(scope="module")
async def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("routing-open311")
    keys = home / "pii-keys.json"
    keys.write_text(Keyring.generate().to_json())
    # Its own database: other modules' tickets and platforms are not this one's to send or poll.
    database_url = await fresh_database(servers.database_url, "minyi_routing_open311")
    async with intake_stack(servers, home, flood_limit="1000/minute") as intake, \
            routing_service(servers, home / "routing", database_url=database_url, dev_secrets=False,
                             pii_keys_file=keys, grid_allowed_destinations="127.0.0.1/32", grid_timeout_seconds=1.0,
                             grid_open311_poll_seconds=0.3) as routing, \
            open311_server(api_key=API_KEY, jurisdiction_id=JURISDICTION) as plain, \
            open311_server(api_key=API_KEY, offer_updates=True) as fms:
        await directory(intake, REGION, None, {"D1": ["S1"]}, ["S1"])
        await directory(intake, FMS_REGION, None, {"D2": ["S2"]}, ["S2"])
        await register(routing, "gp-311", {"name": "鼓楼区12345", "region_prefixes": [REGION], "transport": "open311",
                                           "url": plain.url, "api_key": API_KEY, "jurisdiction_id": JURISDICTION})
        await register(routing, "gp-fms", {
            "name": "台江区基层治理平台", "region_prefixes": [FMS_REGION], "transport": "open311", "url": fms.url,
            "api_key": API_KEY, "service_codes": {"roads_traffic": "DL-02", "municipal_facilities": "SZ-01"}})
        yield Stack(intake, routing, plain, fms)


async def register(routing: Routing, platform_id: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await routing.client.put(f"/v1/grid-platforms/{platform_id}", json=body, headers=ADMIN)
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


async def file(intake: Intake, deputy: str, content: str, **extra: Any) -> dict[str, Any]:
    resp = await intake.client.post("/v1/reports", json={"channel": "h5", "code": intake.codes[deputy],
                                                         "anonymous": True, "content": content, **extra})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def ticket_of(routing: Routing, report_id: str) -> dict[str, Any] | None:
    resp = await routing.client.get(f"/v1/tickets?report_id={report_id}", headers=STAFF)
    assert resp.status_code == 200, resp.text
    found = resp.json()
    if not found:
        return None
    full = await routing.client.get(f"/v1/tickets/{found[0]['id']}", headers=STAFF)
    assert full.status_code == 200, full.text
    return dict(full.json())


async def ticket_when(routing: Routing, report_id: str, wanted: Any, *, what: str,
                      timeout: float = 20) -> dict[str, Any]:
    """The report's ticket once `wanted(ticket)` holds."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = await ticket_of(routing, report_id) or {}
        return bool(seen) and bool(wanted(seen))

    await eventually(check, timeout=timeout, what=what)
    return seen


async def receipt(intake: Intake, code: str) -> dict[str, Any]:
    resp = await intake.client.get(f"/v1/receipts/{code}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def polls_of(platform: Open311Server, count: int, path: str = "/requests.json") -> None:
    """Wait until the platform has been read `count` more times at `path`."""
    start = platform.reads(path)

    async def read() -> bool:
        return platform.reads(path) >= start + count

    await eventually(read, timeout=10, what=f"{count} more reads of {path}")


def statuses(ticket: dict[str, Any]) -> list[str]:
    return [h["status"] for h in ticket["history"]]


async def test_a_report_becomes_a_service_request_and_the_platforms_closing_answers_the_citizen(
        stack: Stack) -> None:
    intake, routing, plain = stack.intake, stack.routing, stack.plain
    content = "人民路和建设路交叉口的红绿灯坏了两天了，早高峰车辆乱成一团"
    report = await file(intake, "D1", content,
                        location={"lat": 26.0745123, "lon": 119.2965456, "address": "鼓楼区人民路与建设路交叉口"})
    ticket = await ticket_when(routing, report["id"], lambda t: t["remote_id"], what="the ticket sent with its id")
    assert ticket["transport"] == "open311" and ticket["category"] == "roads_traffic"

    (request,) = plain.holding(marker(ticket["id"]))
    assert ticket["remote_id"] == request.id
    form = {k: v[0] for k, v in request.form.items()}
    assert form["api_key"] == API_KEY and form["jurisdiction_id"] == JURISDICTION
    # No mapping was registered: services.json names 道路交通 with code DL-02.
    assert form["service_code"] == "DL-02"
    assert form["description"] == f"{content}\n\n{marker(ticket['id'])}"
    assert (form["lat"], form["long"]) == ("26.0745123", "119.2965456")
    assert form["address_string"].startswith("鼓楼区人民路与建设路交叉口，") and REGION in form["address_string"]
    assert not any(k.startswith("attribute") for k in form)

    # The platform lists it open: the ticket is accepted, once, however often it is read.
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "accepted", what="accepted")
    await polls_of(plain, 3)
    ticket = await ticket_of(routing, report["id"]) or {}
    assert statuses(ticket) == ["queued", "sent", "accepted"], ticket["history"]
    assert ticket["history"][-1]["source"] == "open311"
    # The plain platform has no updates feed: found out from its 404, and not asked again.
    resp = await routing.client.get("/v1/grid-platforms/gp-311", headers=STAFF)
    assert resp.json()["service_request_updates"] is False, resp.text
    feed_reads = plain.reads("/servicerequestupdates.json")
    await polls_of(plain, 2)
    assert plain.reads("/servicerequestupdates.json") == feed_reads == 1

    plain.change(request.id, "closed", "信号灯控制器已更换，路口通行恢复正常")
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "resolved", what="resolved")
    assert statuses(ticket) == ["queued", "sent", "accepted", "resolved"]
    assert ticket["history"][-1]["note"] == "信号灯控制器已更换，路口通行恢复正常"

    async def answered() -> bool:
        return (await receipt(intake, report["receipt_code"]))["status"] == "answered"

    await eventually(answered, timeout=20, what="the citizen's report answered by the platform's closing")
    seen = await receipt(intake, report["receipt_code"])
    assert seen["reply"]["by"] == "grid" and seen["reply"]["content"] == "信号灯控制器已更换，路口通行恢复正常"
    updated = [d["status"] for s, d in await routing_events(routing.runtime.settings.nats_url, report["id"])
               if s == "routing.ticket.updated"]
    assert updated == ["accepted", "resolved"]


async def test_a_refusal_or_a_category_the_platform_lacks_fails_the_ticket_back_to_the_deputy(
        stack: Stack) -> None:
    intake, routing, plain = stack.intake, stack.routing, stack.plain
    plain.behave("【拒收】", "reject")
    refused = await file(intake, "D1", "【拒收】解放大道的路面塌了一个大坑，车辆经过很危险")
    ticket = await ticket_when(routing, refused["id"], lambda t: t["status"] == "failed", what="failed on the 400")
    assert ticket["last_error"] == "基层治理平台答复 HTTP 400：400 描述中的事项不属于本平台受理范围"
    assert ticket["remote_id"] is None and ticket["attempts"] == 1
    assert len(plain.posts_holding(marker(ticket["id"]))) == 1 and not plain.holding(marker(ticket["id"]))

    async def handed_back() -> bool:
        seen = await receipt(intake, refused["receipt_code"])
        return any(e["note"] == NOTES["grid_failed"] for e in seen["timeline"])

    await eventually(handed_back, timeout=20, what="the refusal on the citizen's timeline")

    # services.json has nothing for 园林绿化: nothing is posted, and the ticket says why.
    greenery = await file(intake, "D1", "公园里的大树被风刮倒了，压坏了绿化带")
    ticket = await ticket_when(routing, greenery["id"], lambda t: t["status"] == "failed", what="failed: no code")
    assert ticket["last_error"] == "基层治理平台没有与类别“园林绿化”对应的服务类型（service_code）"
    assert not plain.posts_holding(marker(ticket["id"]))


async def test_a_503_is_tried_again_and_the_platform_gets_one_request(stack: Stack) -> None:
    routing, plain = stack.routing, stack.plain
    plain.behave("【繁忙】", "busy", times=2)
    report = await file(stack.intake, "D1", "【繁忙】幸福小区12号楼门口的路灯不亮了，晚上走路很危险")
    ticket = await ticket_when(routing, report["id"], lambda t: t["remote_id"], what="sent after two 503s")
    assert ticket["attempts"] == 3 and ticket["last_error"] is None
    assert len(plain.posts_holding(marker(ticket["id"]))) == 3
    (request,) = plain.holding(marker(ticket["id"]))
    assert ticket["remote_id"] == request.id
    assert request.service_code == "SZ-01"
    # Without coordinates the place is told in words: the places the report names, then the region.
    assert request.form["address_string"] == [f"幸福小区12号楼，行政区划代码 {REGION}"]
    platform = (await routing.client.get("/v1/grid-platforms/gp-311", headers=STAFF)).json()
    assert platform["failures"] == 0 and platform["last_error"] is None


async def test_a_post_whose_answer_never_came_is_looked_for_and_not_sent_again(stack: Stack) -> None:
    routing, plain = stack.routing, stack.plain
    plain.behave("【超时】", "slow")
    report = await file(stack.intake, "D1", "【超时】东门外面那条路天天堵车，希望加装一个红绿灯")
    ticket = await ticket_when(routing, report["id"], lambda t: t["remote_id"], timeout=30,
                               what="the lost POST's request found and followed")
    (request,) = plain.holding(marker(ticket["id"]))
    assert ticket["remote_id"] == request.id and ticket["attempts"] == 2
    # Posted once; the second attempt searched the platform's requests of the service code instead.
    assert len(plain.posts_holding(marker(ticket["id"]))) == 1
    searches = [p for m, path, p in plain.calls if m == "GET" and path.endswith("/requests.json")
                and p.get("service_code") == "DL-02" and "start_date" in p]
    assert searches and all(p["jurisdiction_id"] == JURISDICTION for p in searches)
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "accepted", what="accepted")
    assert statuses(ticket) == ["queued", "sent", "accepted"]


async def test_a_queued_request_is_followed_once_its_token_names_it(stack: Stack) -> None:
    routing, plain = stack.routing, stack.plain
    plain.behave("【排队】", "token")
    report = await file(stack.intake, "D1", "【排队】建设路口的交通标线磨没了，车辆经常压线")
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "sent", what="sent with a token")
    (request,) = plain.holding(marker(ticket["id"]))
    assert request.token is not None and ticket["remote_id"] is None
    token_path = f"/tokens/{request.token}.json"
    await polls_of(plain, 2, token_path)
    assert (await ticket_of(routing, report["id"]) or {})["remote_id"] is None

    plain.release(request.token)
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "accepted",
                               what="the token resolved and the request read")
    assert ticket["remote_id"] == request.id
    asked = plain.reads(token_path)
    await polls_of(plain, 2)
    assert plain.reads(token_path) == asked, "a resolved token is not asked about again"


async def test_mysocietys_updates_move_the_ticket_newest_first_and_return_it_to_the_deputy(stack: Stack) -> None:
    intake, routing, fms = stack.intake, stack.routing, stack.fms
    report = await file(intake, "D2", "台江路和中山路路口的红绿灯一直闪黄灯，车辆乱成一团")
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "accepted", what="accepted")
    (request,) = fms.holding(marker(ticket["id"]))
    assert request.service_code == "DL-02"  # from the registered mapping; services.json is not read
    assert fms.reads("/services.json") == 0
    resp = await routing.client.get("/v1/grid-platforms/gp-fms", headers=STAFF)
    assert resp.json()["service_request_updates"] is True

    fms.change(request.id, "open", "已派网格员到现场核实", update_status="investigating")
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "in_progress", what="in progress")
    # A reading dated before the one applied is old news, however late it comes: here the request as
    # a lagging copy of the platform's database lists it.
    request.status, request.status_notes = "closed", "早先的记录"
    request.updated_at = datetime.now(CST) - timedelta(hours=2)
    await polls_of(fms, 3)
    ticket = await ticket_of(routing, report["id"]) or {}
    assert statuses(ticket) == ["queued", "sent", "accepted", "in_progress"], ticket["history"]
    assert ticket["history"][-1]["note"] == "已派网格员到现场核实"

    fms.change(request.id, "closed", "该路口信号灯由市交通局管理，已转交", update_status="internal_referral")
    ticket = await ticket_when(routing, report["id"], lambda t: t["status"] == "returned", what="returned")
    assert statuses(ticket) == ["queued", "sent", "accepted", "in_progress", "returned"]
    assert ticket["history"][-1]["note"] == "该路口信号灯由市交通局管理，已转交"

    async def back_with_the_deputy() -> bool:
        seen = await receipt(intake, report["receipt_code"])
        return any(e["note"] == NOTES["grid_returned"] for e in seen["timeline"])

    await eventually(back_with_the_deputy, timeout=20, what="the return on the citizen's timeline")
    assert (await receipt(intake, report["receipt_code"]))["status"] != "answered"


async def test_registration_asks_for_what_georeport_needs_and_keeps_the_key_sealed(stack: Stack) -> None:
    routing = stack.routing
    base = {"name": "测试平台", "region_prefixes": ["350749"], "transport": "open311", "url": stack.plain.url,
            "api_key": "k" * 20}
    cases = [
        ({**base, "url": None}, ["url"], "open311 方式须提供以 http:// 或 https:// 开头的 GeoReport 接口地址"),
        ({**base, "api_key": None}, ["api_key"], "open311 方式须提供平台分配的 api_key"),
        ({**base, "url": None, "api_key": None}, ["url", "api_key"], None),
        ({**base, "transport": "http", "secret": "s" * 20}, ["api_key"], "仅 open311 方式使用此项"),
        ({**base, "service_codes": {"education": "JY-01"}}, ["service_codes"], None),
    ]
    for body, fields, message in cases:
        resp = await routing.client.put("/v1/grid-platforms/gp-new", json=body, headers=ADMIN)
        assert resp.status_code == 422, (body, resp.text)
        errors = resp.json()["errors"]
        assert [e["field"] for e in errors] == fields, resp.text
        if message is not None:
            assert errors[0]["message"] == message
    inside = await routing.client.put("/v1/grid-platforms/gp-new", json={**base, "url": "http://10.0.0.7/open311/v2"},
                                      headers=ADMIN)
    assert inside.status_code == 422 and "平台地址不允许" in inside.json()["detail"]
    assert (await routing.client.get("/v1/grid-platforms/gp-new", headers=STAFF)).status_code == 404

    made = await routing.client.put("/v1/grid-platforms/gp-new", headers=ADMIN,
                                    json={**base, "jurisdiction_id": "x.example.cn",
                                          "service_codes": {"roads_traffic": " DL-02 "}})
    assert made.status_code == 201, made.text
    out = made.json()
    assert "api_key" not in out and "secret" not in out
    assert (out["transport"], out["jurisdiction_id"], out["service_codes"], out["service_request_updates"]) == (
        "open311", "x.example.cn", {"roads_traffic": "DL-02"}, None)
    async with routing.runtime.transaction() as session:
        sealed = (await session.execute(text("SELECT api_key, secret FROM routing.grid_platforms WHERE id = 'gp-new'"))
                  ).one()
    assert sealed.api_key is not None and b"k" * 20 not in bytes(sealed.api_key)
    assert sealed.secret is not None


# ---- two replicas, one reading of each platform a round --------------------------------------------

# The replicas' poll interval: long enough that a round's lease outlasts a test's few passes.
REPLICA_POLL_SECONDS = 2.0


@dataclass
class Replicas:
    runtimes: list[Runtime]
    pollers: list[Open311Poller]
    client: httpx.AsyncClient

    async def poll_together(self) -> None:
        """Every replica's poller makes a pass, all at the same moment."""
        await asyncio.gather(*(p.poll_once(self.client) for p in self.pollers))


@pytest.fixture(scope="module")
async def replicas(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    home = tmp_path_factory.mktemp("routing-open311-replicas")
    keys = home / "pii-keys.json"
    keys.write_text(Keyring.generate().to_json())
    database_url = await fresh_database(servers.database_url, "minyi_routing_open311_replicas")
    await upgrade_async("routing", database_url)
    async with AsyncExitStack() as stack:
        runtimes = [await stack.enter_async_context(replica(servers, home / f"replica-{n}", database_url, keys))
                    for n in (1, 2)]
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=5.0))
        yield Replicas(runtimes, [Open311Poller(r) for r in runtimes], client)


@asynccontextmanager
async def replica(servers: Servers, home: Path, database_url: str, keys: Path) -> AsyncIterator[Runtime]:
    """What a routing replica's poller stands on: its settings, keyring and own connection pool."""
    settings = Settings(database_url=database_url, nats_url=servers.nats_url, home=home, dev_secrets=False,
                        pii_keys_file=keys, grid_allowed_destinations="127.0.0.1/32", grid_timeout_seconds=1.0,
                        grid_open311_poll_seconds=REPLICA_POLL_SECONDS)
    runtime = make_runtime(SPEC, settings)
    runtime.db = Database.connect(database_url, application_name=f"minyi-routing-{home.name}", pool_size=4)
    try:
        yield runtime
    finally:
        await runtime.database.dispose()


async def followed_platform(runtime: Runtime, platform_id: str, server: Open311Server) -> str:
    """An open311 platform with one ticket it took (a request it lists open); the ticket's id."""
    posted = await server_post(server, f"{platform_id} 路口红绿灯不亮")
    ticket_id = new_id()
    async with runtime.transaction() as session:
        session.add(GridPlatform(
            id=platform_id, name=f"平台 {platform_id}", region_prefixes=["350799"], categories=["roads_traffic"],
            transport="open311", url=server.url, secret=platforms.seal(runtime.keyring, secrets.token_urlsafe(32)),
            api_key=platforms.seal_api_key(runtime.keyring, API_KEY), version=1, failures=0))
        session.add(Ticket(id=ticket_id, report_id=new_id(), platform_id=platform_id, transport="open311",
                           region_code="350799001", category="roads_traffic", body=b"{}", status="sent", version=1,
                           remote_id=posted))
    return ticket_id


async def server_post(server: Open311Server, description: str) -> str:
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{server.url}/requests.json", data={
            "api_key": API_KEY, "service_code": "DL-02", "description": description, "address_string": "福州"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()[0]["service_request_id"])


async def status_of(runtime: Runtime, ticket_id: str) -> str | None:
    async with runtime.sessions()() as session:
        return await session.scalar(select(Ticket.status).where(Ticket.id == ticket_id))


async def test_two_replicas_polling_at_once_read_each_platform_once_a_round(replicas: Replicas) -> None:
    first = replicas.runtimes[0]
    async with open311_server(api_key=API_KEY) as plain, open311_server(api_key=API_KEY, offer_updates=True) as fms:
        tickets = [await followed_platform(first, "gp-r-plain", plain), await followed_platform(first, "gp-r-fms", fms)]

        await replicas.poll_together()
        for server in (plain, fms):
            assert server.reads("/requests.json") == 1, server.calls
        assert fms.reads("/servicerequestupdates.json") == 1 and plain.reads("/servicerequestupdates.json") == 1
        assert [await status_of(first, t) for t in tickets] == ["accepted", "accepted"]

        # Within the interval the round's lease holds: neither replica reads the platforms again.
        await replicas.poll_together()
        await replicas.poll_together()
        assert (plain.reads("/requests.json"), fms.reads("/requests.json")) == (1, 1)

        # The next interval is a new round, read once again, by whichever replica comes first.
        await asyncio.sleep(REPLICA_POLL_SECONDS)
        await replicas.poll_together()
        assert (plain.reads("/requests.json"), fms.reads("/requests.json")) == (2, 2)
        assert fms.reads("/servicerequestupdates.json") == 2


async def test_a_replica_that_leased_a_platform_and_died_holds_it_only_until_the_lease_runs_out(
        replicas: Replicas) -> None:
    dead, alive = replicas.runtimes[0], replicas.pollers[1]
    async with open311_server(api_key=API_KEY) as plain:
        ticket = await followed_platform(dead, "gp-r-orphan", plain)
        # The first replica takes the round and dies before reading anything.
        lease = timedelta(seconds=REPLICA_POLL_SECONDS * LEASE_SHARE)
        assert "gp-r-orphan" in [p.id for p in await lease_due(dead, lease)]
        await alive.poll_once(replicas.client)
        assert plain.reads("/requests.json") == 0 and await status_of(dead, ticket) == "sent"

        await asyncio.sleep(lease.total_seconds())
        await alive.poll_once(replicas.client)
        assert plain.reads("/requests.json") == 1 and await status_of(dead, ticket) == "accepted"
