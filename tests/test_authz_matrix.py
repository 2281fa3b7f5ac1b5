"""The authorization matrix: every operation × every role × inside/outside the caller's region.

The five services run side by side on the session's servers, with the few resources the checks
need made through their APIs once for the module. Each service's cases (see `authz_table`) run
in one test that collects every mismatch, so one run shows the whole picture. A guard test
keeps the table in step with the apps: an operation without a row, or a row without an
operation, fails by name.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from authz_table import INSIDE, OUTSIDE, ROWS, SERVICES, SIGNED, Case, Row, cases
from busutil import event_body, eventually, publish
from conftest import Servers
from fastapi import FastAPI
from fastapi.routing import APIRoute
from identityutil import KEY
from PIL import Image
from serviceutil import all_served
from starlette.routing import Route

from services.identity.service import SPEC as IDENTITY
from services.intake.service import SPEC as INTAKE
from services.routing import domain as routing_domain
from services.routing.models import Hotspot, HotspotReport
from services.routing.service import SPEC as ROUTING
from services.scoring.domain import CHINA
from services.scoring.service import SPEC as SCORING
from services.suggestions.models import DeputyView
from services.suggestions.service import SPEC as SUGGESTIONS
from shared.auth import sign_token
from shared.ids import new_id
from shared.service import Runtime, ServiceSpec, build_app
from shared.settings import Settings

SPECS: dict[str, ServiceSpec] = {"identity": IDENTITY, "intake": INTAKE, "routing": ROUTING,
                                 "suggestions": SUGGESTIONS, "scoring": SCORING}
# Matters the grid platform takes (sanitation): the shared report becomes a ticket.
GRID_MATTER = "菜市场门口垃圾桶满了没人清运，臭气熏天，希望尽快处理。"


REGIONS = (("330000", "浙江省", None), ("330100", "杭州市", "330000"), (INSIDE, "西湖区", "330100"),
           ("320000", "江苏省", None), ("320900", "盐城市", "320000"), (OUTSIDE, "阜宁县", "320900"))


def bearer(role: str, region: str = "", *, deputy_id: str | None = None, unit_id: str | None = None) -> dict[str, str]:
    token = sign_token(KEY, issuer="minyi", audience="minyi", sub=f"authz-{role}-{region}", roles=[role],
                       region=region, deputy_id=deputy_id, unit_id=unit_id,
                       sources=("population",) if role == "integration" else ())
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer("admin")
STAFF = bearer("npc_staff", INSIDE)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def checked(resp: httpx.Response, *statuses: int) -> Any:
    assert resp.status_code in statuses, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content and resp.headers.get("content-type", "").endswith("json") else None


@dataclass
class Stack:
    clients: dict[str, httpx.AsyncClient]
    runtimes: dict[str, Runtime]
    nats_url: str
    ctx: dict[str, Any] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def identity(self) -> httpx.AsyncClient:
        return self.clients["identity"]

    @property
    def intake(self) -> httpx.AsyncClient:
        return self.clients["intake"]

    @property
    def suggestions(self) -> httpx.AsyncClient:
        return self.clients["suggestions"]

    def lead(self) -> dict[str, str]:
        return bearer("deputy", INSIDE, deputy_id=self.ctx["deputy"])

    def unit(self, key: str = "unit") -> dict[str, str]:
        return bearer("unit", INSIDE, unit_id=self.ctx[key])


# ---- the five services ----------------------------------------------------------------------


def settings_for(servers: Servers, name: str, home: Path, port: int) -> Settings:
    values: dict[str, Any] = {
        "database_url": servers.database_url, "nats_url": servers.nats_url, "home": home,
        "temporal_address": servers.temporal_address, f"{name}_port": port, "outbox_poll_seconds": 0.1,
        "retry_base_seconds": 0.2, "clock_poll_seconds": 3600, "grid_dispatch_poll_seconds": 0.2,
        # Every role submits and rates from one address here; flood control is not what is tested.
        "flood_limit": "100000/minute", "lookup_limit": "100000/minute",
    }
    return Settings(**values)


@pytest.fixture(scope="module")
async def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("authz")
    async with all_served(servers.nats_url,
                          lambda spec, port: settings_for(servers, spec.name, home / spec.name, port)) as running:
        s = Stack({n: r.client for n, r in running.items()}, {n: r.runtime for n, r in running.items()},
                  servers.nats_url)
        await set_up(s)
        yield s


# ---- the resources the checks need ----------------------------------------------------------


async def set_up(s: Stack) -> None:
    tag = new_id()[-8:]
    now = datetime.now(CHINA)
    tomorrow = now.date() + timedelta(days=1)
    s.ctx.update(year=str(now.year), today=now.date().isoformat(), tomorrow=tomorrow.isoformat(),
                 station=f"az-S1-{tag}", code_station=f"az-S9-{tag}", deputy=f"az-D1-{tag}",
                 stranger_deputy=f"az-D2-{tag}", code_deputy=f"az-D9-{tag}", election=f"az-E-{tag}",
                 platform=f"az-gp-{tag}", grid_secret=f"authz-secret-{tag}", unit=f"az-U1-{tag}",
                 assisting_unit=f"az-U2-{tag}", stranger_unit=f"az-U3-{tag}")
    await directory(s)
    await reports_and_tickets(s)
    s.ctx["open311_token"] = await open311_token(s)
    s.ctx.update(await fresh_hotspot(s))
    await election(s)
    await suggestions(s)
    await scoring(s)


async def directory(s: Stack) -> None:
    c = s.ctx
    for code, name, parent in REGIONS:
        checked(await s.identity.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent},
                                     headers=ADMIN), 200, 201)
    for station, name in ((c["station"], "矩阵联络站"), (c["code_station"], "矩阵亮码联络站")):
        checked(await s.identity.put(f"/v1/stations/{station}", headers=ADMIN,
                                     json={"name": name, "kind": "station", "region_code": INSIDE}), 201)
    deputies = ((c["deputy"], "矩阵代表甲", [c["station"]]), (c["stranger_deputy"], "矩阵代表乙", []),
                (c["code_deputy"], "矩阵代表丙", []))
    for deputy, name, stations in deputies:
        checked(await s.identity.put(f"/v1/deputies/{deputy}", headers=ADMIN, json={
            "name": name, "level": "county", "region_code": INSIDE, "station_ids": stations}), 201)
    c["deputy_code"] = checked(await s.identity.post(f"/v1/deputies/{c['deputy']}/code", headers=ADMIN), 201)["code"]
    await fresh_deputy_code(s)
    await fresh_station_code(s)


async def fresh_deputy_code(s: Stack) -> dict[str, Any]:
    checked(await s.identity.post(f"/v1/deputies/{s.ctx['code_deputy']}/code", headers=ADMIN), 201)
    return {}


async def fresh_station_code(s: Stack) -> dict[str, Any]:
    checked(await s.identity.post(f"/v1/stations/{s.ctx['code_station']}/code", headers=ADMIN), 201)
    return {}


async def submit_report(s: Stack, **extra: Any) -> dict[str, Any]:
    body = {"channel": "h5", "code": s.ctx["deputy_code"], "anonymous": True,
            "content": "楼道里的声控灯坏了，老人晚上上下楼很危险。", **extra}
    return dict(checked(await s.intake.post("/v1/reports", json=body), 201))


async def fresh_report(s: Stack) -> dict[str, Any]:
    return {"report": (await submit_report(s))["id"]}


async def open311_token(s: Stack) -> str:
    """A city system's Open311 submission in the region: its token, for the tokens rows."""
    form = {"jurisdiction_id": INSIDE, "service_code": "greenery", "description": "公园里的树倒了，挡住了步道。"}
    made = checked(await s.intake.post("/open311/v2/requests.json", data=form,
                                       headers=bearer("integration", INSIDE)), 201)
    return str(made[0]["token"])


async def answered_report(s: Stack) -> dict[str, Any]:
    created = await submit_report(s)
    checked(await s.intake.post(f"/v1/reports/{created['id']}/reply", json={"content": "已修好。"},
                                headers=s.lead()), 200)
    return {"receipt": created["receipt_code"]}


async def reports_and_tickets(s: Stack) -> None:
    """A real-name report with a photo, aimed at the lead deputy, on a grid platform's ground: it gets a ticket."""
    c, routing = s.ctx, s.clients["routing"]
    checked(await routing.put(f"/v1/grid-platforms/{c['platform']}", headers=ADMIN, json={
        "name": "矩阵网格平台", "region_prefixes": [INSIDE], "transport": "nats", "secret": c["grid_secret"]}), 201)
    c["attachment"] = checked(await s.intake.post("/v1/attachments", files={"file": ("p.png", png(), "image/png")}),
                              201)["id"]
    created = await submit_report(s, anonymous=False, reporter={"name": "王小明", "phone": "13800001111"},
                                  attachment_ids=[c["attachment"]], content=GRID_MATTER)
    c["report"], c["receipt"] = created["id"], created["receipt_code"]

    async def ticketed() -> bool:
        resp = await routing.get("/v1/tickets", params={"report_id": c["report"]}, headers=STAFF)
        if resp.status_code == 200 and resp.json():
            c["ticket"] = resp.json()[0]["id"]
        return "ticket" in c

    await eventually(ticketed, timeout=30, what="a ticket for the shared report")


async def fresh_hotspot(s: Stack) -> dict[str, Any]:
    """Two hotspots of two reports each in the region, written straight into routing's tables: what
    staff correct is not how the clustering found it."""
    runtime, now, region = s.runtimes["routing"], datetime.now(UTC), f"{INSIDE}001"
    made: list[tuple[str, list[str]]] = [(new_id(), [new_id(), new_id()]) for _ in range(2)]
    async with runtime.transaction() as session:
        for hotspot_id, _ in made:
            session.add(Hotspot(id=hotspot_id, county_code=INSIDE, region_code=region,
                                category="sanitation_environment", category_counts={"sanitation_environment": 2},
                                profile={}, keywords=["垃圾"], places=[], search_keys=[], count=2, supporters=0,
                                first_at=now, last_at=now, state="open", version=1))
        await session.flush()
        for hotspot_id, reports in made:
            for report_id in reports:
                session.add(HotspotReport(report_id=report_id, hotspot_id=hotspot_id, region_code=region,
                                          category="sanitation_environment", received_at=now, similarity=1.0,
                                          signature={}, placed_by="auto"))
    return {"hotspot": made[0][0], "hotspot_report": made[0][1][1], "other_hotspot": made[1][0]}


async def election(s: Stack) -> None:
    c = s.ctx
    checked(await s.identity.put(f"/v1/elections/{c['election']}", headers=STAFF, json={
        "region_code": INSIDE, "election_date": "2026-12-15", "districts": [{"id": "d1", "region_codes": [INSIDE]}]}),
        201)
    checked(await s.identity.post(f"/v1/elections/{c['election']}/reconciliation", headers=STAFF), 202)


async def act(s: Stack, suggestion_id: str, action: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    checked(await s.suggestions.post(f"/v1/suggestions/{suggestion_id}/{action}", json=body, headers=headers), 200)


async def submitted_suggestion(s: Stack, **extra: Any) -> dict[str, Any]:
    body = {"title": f"关于社区助餐点建设的建议{new_id()[-6:]}", "lead_deputy_id": s.ctx["deputy"],
            "year": int(s.ctx["year"]), "kind": "session",
            "content": "建议在老旧小区增设社区助餐点，方便高龄老人就餐。", **extra}
    return {"suggestion": checked(await s.suggestions.post("/v1/suggestions", json=body, headers=s.lead()), 201)["id"]}


async def assigned_suggestion(s: Stack, **extra: Any) -> dict[str, Any]:
    made = await submitted_suggestion(s, **extra)
    await act(s, made["suggestion"], "assignment", {"lead_unit_id": s.ctx["unit"],
                                                     "assisting_unit_ids": [s.ctx["assisting_unit"]]}, STAFF)
    return made


async def replied_suggestion(s: Stack, outcome: str = "A", **extra: Any) -> dict[str, Any]:
    made = await assigned_suggestion(s)
    body = {"unit_id": s.ctx["unit"], "content": "已经办理。", "outcome": outcome, **extra}
    await act(s, made["suggestion"], "replies", body, s.unit())
    return made


async def referred_suggestion(s: Stack) -> dict[str, Any]:
    """Dissatisfied twice: the suggestion waits for the directors' meeting."""
    made = await replied_suggestion(s)
    sid = made["suggestion"]
    await act(s, sid, "evaluation", {"result": "dissatisfied", "comment": "没有解决。"}, s.lead())
    await act(s, sid, "replies", {"unit_id": s.ctx["unit"], "content": "再次办理。", "outcome": "A"}, s.unit())
    await act(s, sid, "evaluation", {"result": "dissatisfied", "comment": "仍未解决。"}, s.lead())
    return made


def expects_success(case: Case) -> bool:
    return case.expect is not None and 200 <= case.expect < 300


def successes(fresh: str) -> int:
    """How many calls will want a fresh resource of this kind: one each."""
    return sum(expects_success(c) for r in ROWS if r.call.fresh == fresh for c in cases(r))


async def fresh_topic(s: Stack) -> dict[str, Any]:
    return {"topic": s.topics.pop()}


async def suggestions(s: Stack) -> None:
    c, runtime = s.ctx, s.runtimes["suggestions"]

    async def deputies_known() -> bool:
        async with runtime.sessions()() as session:
            return all([await session.get(DeputyView, d) for d in (c["deputy"], c["stranger_deputy"])])

    await eventually(deputies_known, timeout=30, what="the deputies in the suggestions projection")
    units = ((c["unit"], "矩阵主办局"), (c["assisting_unit"], "矩阵协办局"), (c["stranger_unit"], "矩阵无关局"))
    for unit, name in units:
        checked(await s.suggestions.put(f"/v1/units/{unit}", json={"name": name, "region_code": INSIDE},
                                        headers=STAFF), 200)
    checked(await s.suggestions.put(f"/v1/micro-funds/{INSIDE}/{c['year']}", json={"amount": "10000.00"},
                                    headers=STAFF), 200)
    c["suggestion"] = (await assigned_suggestion(s))["suggestion"]
    c["micro"] = (await assigned_suggestion(s, micro=True))["suggestion"]
    following = await replied_suggestion(s, outcome="B", planned_year=int(c["year"]) + 1)
    c["following"] = following["suggestion"]
    await act(s, c["following"], "evaluation", {"result": "satisfied"}, s.lead())
    await hotspot_topics(s, successes("topic") + 1)
    c["topic"] = s.topics.pop()


async def hotspot_topics(s: Stack, count: int) -> None:
    """Hotspots routing would have found: each becomes an open supervision topic."""
    ids = [new_id() for _ in range(count)]
    for hotspot_id in ids:
        data = {"id": hotspot_id, "region_code": INSIDE, "category": "sanitation", "count": 5,
                "keywords": ["垃圾", "清运"], "report_ids": [new_id() for _ in range(5)],
                "first_at": "2026-10-01T08:00:00+08:00", "last_at": "2026-10-20T08:00:00+08:00", "window_days": 30}
        await publish(s.nats_url, "routing.hotspot.detected",
                      event_body(new_id(), "routing.hotspot.detected", data))

    async def listed() -> bool:
        resp = await s.suggestions.get("/v1/supervision-topics", params={"status": "open"}, headers=STAFF)
        return {t["id"] for t in resp.json()} >= set(ids)

    await eventually(listed, timeout=30, what="the hotspots as open supervision topics")
    s.topics.extend(ids)


async def fresh_entry(s: Stack) -> dict[str, Any]:
    body = {"deputy_id": s.ctx["deputy"], "kind": "reception_day", "on": s.ctx["today"],
            "evidence": {"sign_in_sheet": "矩阵-setup"}}
    made = checked(await s.clients["scoring"].post("/v1/activities", json=body, headers=STAFF), 201)
    return {"entry": made["entries"][0]["id"]}


async def scoring(s: Stack) -> None:
    async def known() -> bool:
        resp = await s.clients["scoring"].get(f"/v1/deputies/{s.ctx['deputy']}/score",
                                              params={"year": s.ctx["year"]}, headers=STAFF)
        return resp.status_code == 200

    await eventually(known, timeout=30, what="the lead deputy known to scoring")
    s.ctx.update(await fresh_entry(s))


FRESH: dict[str, Callable[[Stack], Awaitable[dict[str, Any]]]] = {
    "deputy_code": fresh_deputy_code, "station_code": fresh_station_code, "report": fresh_report,
    "answered_report": answered_report, "submitted_suggestion": submitted_suggestion,
    "assigned_suggestion": assigned_suggestion, "replied_suggestion": replied_suggestion,
    "referred_suggestion": referred_suggestion, "topic": fresh_topic, "entry": fresh_entry,
    "hotspot": fresh_hotspot,
}


# ---- running a case -------------------------------------------------------------------------


def fill(template: Any, ctx: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        return template.format_map(ctx)
    if isinstance(template, dict):
        return {k: fill(v, ctx) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, ctx) for v in template]
    return template


def identity_claims(case: Case, ctx: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """deputy_id and unit_id of the caller: the one the row needs, or a stranger's."""
    if case.role == "deputy":
        return (ctx["stranger_deputy"] if case.stranger else ctx[case.row.needs.get("deputy", "deputy")]), None
    if case.role == "unit":
        return None, ctx["stranger_unit"] if case.stranger else ctx[case.row.needs.get("unit", "unit")]
    return None, None


async def request(s: Stack, case: Case) -> httpx.Response:
    row = case.row
    ctx: dict[str, Any] = {**s.ctx, "n": next(s.counter), "now": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    if row.call.fresh and expects_success(case):
        ctx.update(await FRESH[row.call.fresh](s))
    deputy_id, unit_id = identity_claims(case, ctx)
    ctx["caller_unit"] = unit_id or ctx["unit"]
    headers = bearer(case.role, case.region, deputy_id=deputy_id, unit_id=unit_id) if case.role else {}
    path = row.path.format(**{k: fill(v, ctx) for k, v in row.call.path.items()})
    body = row.call.json(ctx) if callable(row.call.json) else fill(row.call.json, ctx)
    params = fill(dict(row.call.query), ctx)
    client = s.clients[row.service]
    if case.signed:
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers.update(routing_domain.signed_headers(ctx["grid_secret"].encode(), raw, time.time()))
        return await client.request(row.method, path, content=raw, headers=headers)
    if row.call.upload:
        return await client.request(row.method, path, files={"file": ("p.png", png(), "image/png")}, headers=headers)
    if row.call.form is not None:
        return await client.request(row.method, path, params=params, data=fill(dict(row.call.form), ctx),
                                    headers=headers)
    return await client.request(row.method, path, params=params, json=body, headers=headers)


def mismatch(case: Case, resp: httpx.Response) -> str | None:
    status = resp.status_code
    if case.expect is None:
        if status not in (401, 403) and status < 500:
            return None
        wanted = "neither 401 nor 403"
    elif status == case.expect:
        return None
    else:
        wanted = str(case.expect)
    kind = resp.headers.get("content-type", "")
    body = resp.text[:200] if "json" in kind or kind.startswith("text/") else f"({kind}, {len(resp.content)} bytes)"
    return f"{case.name}: expected {wanted}, got {status} {body}"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_role_gets_what_the_table_says(stack: Stack, service: str) -> None:
    found: list[str] = []
    ran = 0
    for row in (r for r in ROWS if r.service == service):
        for case in cases(row):
            ran += 1
            problem = mismatch(case, await request(stack, case))
            if problem:
                found.append(problem)
    assert ran > 0
    assert not found, f"{len(found)} of {ran} {service} cases differ from the table:\n" + "\n".join(found)


# ---- the table covers exactly the apps' operations ------------------------------------------


def operations(app: FastAPI) -> set[tuple[str, str]]:
    """What the app serves: the OpenAPI operations, and the routes left out of it (docs, metrics)."""
    ops = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            continue
        if isinstance(route, Route):
            ops |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return ops


@pytest.mark.parametrize("service", SERVICES)
def test_the_table_covers_exactly_the_operations(service: str, tmp_path: Path) -> None:
    served_ops = operations(build_app(SPECS[service], Settings(home=tmp_path)))
    rows: dict[tuple[str, str], Row] = {}
    for row in ROWS:
        if row.service == service:
            assert (row.method, row.path) not in rows, f"two rows for {service} {row.method} {row.path}"
            rows[(row.method, row.path)] = row
    problems = [f"operation without a row in tests/authz_table.py: {service} {m} {p}"
                for m, p in sorted(served_ops - rows.keys())]
    problems += [f"row for an operation the app does not serve: {service} {m} {p}"
                 for m, p in sorted(rows.keys() - served_ops)]
    assert not problems, "\n".join(problems)


def test_cases_follow_the_rules_of_the_matrix() -> None:
    """The generator itself: no token is 401 on a protected row, a role not allowed 403, outside 403/404."""
    row = next(r for r in ROWS if r.key == ("intake", "POST", "/v1/reports/{report_id}/acknowledge"))
    by_name = {c.name.removeprefix(f"{row.service} {row.method} {row.path} "): c.expect for c in cases(row)}
    assert by_name["no token"] == 401
    assert by_name["npc_staff inside"] == 403 and by_name["citizen outside"] == 403
    assert by_name["station_staff inside"] == 200 and by_name["station_staff outside"] == 403
    assert by_name["deputy outside"] == 200 and by_name["deputy inside as a stranger"] == 403
    callbacks = next(r for r in ROWS if r.allow == SIGNED)
    assert {c.expect for c in cases(callbacks) if not c.signed} == {401}
