"""Property-based checks of every service against its own OpenAPI document (schemathesis).

The five services run in-process over real HTTP, on the session's PostgreSQL (in a database of their
own) with a NATS and a Temporal of this module's own: fuzzed regions, grid platforms, clock rules and
calendars must not leak into other tests, nor fuzzed events into their consumers. A small world is
registered first (regions, a station, a deputy with a QR code, reports, a grid platform, a unit, a
suggestion, an election), so that generated requests do not all stop at "not found".

Every operation of every app then gets generated requests, valid and invalid, some aimed at the
world's own ids, as a caller holding every role everywhere (reads first, deletions last), and a few
without a token. No answer may be a 5xx, and each must be what the document declares: status code,
content type, body schema and headers. Reads aimed at the world must answer 2xx at least once, or the
run proves nothing beyond "not found". A failure names service, method, path and the request as sent.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from busutil import fresh_database
from conftest import Servers
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from identityutil import KEY, id_number
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.formats import rfc3339_values
from serviceutil import own_stack

from services.identity.service import SPEC as IDENTITY
from services.intake.service import SPEC as INTAKE
from services.routing.service import SPEC as ROUTING
from services.scoring.service import SPEC as SCORING
from services.suggestions.service import SPEC as SUGGESTIONS
from shared.auth import ROLES, sign_token
from shared.service import ServiceSpec

# Schemathesis draws header values with the `random` module, which Hypothesis seeds for every example
# (derandomized here); the draws stay reproducible, the deprecation notice says nothing about Minyi.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

SPECS: dict[str, ServiceSpec] = {spec.name: spec for spec in (IDENTITY, INTAKE, ROUTING, SUGGESTIONS, SCORING)}

# Per operation: with about 80 operations the module stays well within two minutes. A deeper run on
# demand: MINYI_SCHEMATHESIS_EXAMPLES=100.
MAX_EXAMPLES = int(os.environ.get("MINYI_SCHEMATHESIS_EXAMPLES", "15"))
# Without a token almost every call stops at the 401; a few show whether that answer is declared.
ANONYMOUS_EXAMPLES = 3

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

COUNTY, DEPUTY, STATION, UNIT, PLATFORM, ELECTION = "320923", "D1", "S1", "U1", "P1", "E1"
YEAR = datetime.now(UTC).year

# Every role, everywhere; the world's deputy and unit, so that deputy- and unit-only actions get past
# "only your own" to the handlers too.
TOKEN = sign_token(KEY, issuer="minyi", audience="minyi", sub="t-schemathesis", roles=list(ROLES), region="",
                   deputy_id=DEPUTY, unit_id=UNIT, sources=("population", "social_security", "migrant"),
                   ttl_seconds=3600)
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Dates and times at the ends of what Python and PostgreSQL can hold, drawn as often as ordinary ones:
# provincial systems send "0001-01-01T00:00:00" for "empty", and a time that moves past year 1 or
# year 9999 when a time zone is applied overflows asyncpg's encoder instead of being invalid input.
EDGE_DATE_TIMES = ("0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "0001-01-01T07:59:59+08:00",
                   "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59.999999Z", "1900-01-01T00:00:00+08:00")
EDGE_DATES = ("0001-01-01", "9999-12-31", "1900-02-28", "2100-02-28")
schemathesis.openapi.format("date-time", st.one_of(rfc3339_values("date-time"), st.sampled_from(EDGE_DATE_TIMES)))
schemathesis.openapi.format("date", st.one_of(rfc3339_values("full-date"), st.sampled_from(EDGE_DATES)))

# The same inputs on every run; nothing carried over between runs; no shrinking, whose number of
# requests has no useful bound (a failing request is reported as it was sent).
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    # They judge the generator's speed and the size of generated data, not the service: a real server
    # answering over HTTP is slower than Hypothesis expects, and bodies are large by design.
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class Finding:
    service: str
    method: str
    path: str
    caller: str
    report: str

    def __str__(self) -> str:
        return f"[{self.service}] {self.method} {self.path} ({self.caller})\n{self.report}"


@dataclass
class World:
    urls: dict[str, str]
    # Per service: path parameter → an id that exists; "<path> <name>" where one name means two things.
    known: dict[str, dict[str, str]]


# ---- the services, on servers of their own -----------------------------------------------------


@pytest.fixture(scope="module")
async def world(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("schemathesis")
    database_url = await fresh_database(servers.database_url, "minyi_schemathesis")
    async with own_stack(database_url, root) as urls:
        yield World(urls, await _seed(urls))


# ---- the world the requests aim at ----------------------------------------------------------------


async def _ok(resp: Awaitable[httpx.Response], *statuses: int) -> Any:
    answer = await resp
    assert answer.status_code in (statuses or (200, 201)), f"{answer.request.url}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


async def _until(what: str, probe: Callable[[], Awaitable[httpx.Response]], status: int = 200) -> httpx.Response:
    """Events take a moment to reach the other services' projections."""
    deadline = asyncio.get_running_loop().time() + 30
    while (resp := await probe()).status_code != status:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: still {resp.status_code} {resp.text}")
        await asyncio.sleep(0.2)
    return resp


async def _seed(urls: dict[str, str]) -> dict[str, dict[str, str]]:
    clients = {name: httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) for name, url in urls.items()}
    try:
        return await _seed_with(clients)
    finally:
        for client in clients.values():
            await client.aclose()


async def _seed_with(c: dict[str, httpx.AsyncClient]) -> dict[str, dict[str, str]]:
    idc, intake, routing, sugg, scoring = c["identity"], c["intake"], c["routing"], c["suggestions"], c["scoring"]
    for code, parent in (("320000", None), ("320900", "320000"), (COUNTY, "320900")):
        await _ok(idc.put(f"/v1/regions/{code}", json={"name": f"地区{code}", "parent_code": parent}))
    await _ok(idc.put(f"/v1/stations/{STATION}", json={"name": "城关联络站", "kind": "station", "region_code": COUNTY}))
    await _ok(idc.put(f"/v1/deputies/{DEPUTY}", json={"name": "王代表", "level": "county", "region_code": COUNTY,
                                                      "station_ids": [STATION], "phone": "13800000001"}))
    qr = (await _ok(idc.post(f"/v1/deputies/{DEPUTY}/code")))["code"]
    await _ok(idc.post(f"/v1/stations/{STATION}/code"))
    await _ok(idc.put(f"/v1/elections/{ELECTION}", json={
        "region_code": COUNTY, "election_date": f"{YEAR + 1}-03-01",
        "districts": [{"id": "d1", "region_codes": [COUNTY]}]}))
    await _ok(idc.post(f"/v1/elections/{ELECTION}/voters", json=[
        {"id_number": id_number(COUNTY, date(1980, 5, 1), 7), "name": "李选民", "district_id": "d1"}]))
    await _ok(idc.post(f"/v1/elections/{ELECTION}/reconciliation"), 202)

    # A platform first, so that the report becomes a ticket.
    await _ok(routing.put(f"/v1/grid-platforms/{PLATFORM}", json={
        "name": "县网格平台", "region_prefixes": [COUNTY], "transport": "nats", "secret": "s" * 32}))
    report = await _ok(intake.post("/v1/reports", json={
        "channel": "h5", "code": qr, "content": "小区门口路灯坏了一个月，晚上出行很不方便。", "anonymous": False,
        "reporter": {"name": "张三", "phone": "13900000002"}}))
    decided = await _until("routing decision", lambda: routing.get(f"/v1/decisions/{report['id']}"))
    tickets = await _ok(routing.get("/v1/tickets", params={"report_id": report["id"]}))

    await _ok(sugg.put(f"/v1/units/{UNIT}", json={"name": "县住建局", "region_code": COUNTY}))
    suggestion = (await _until("deputy in the suggestions projection", lambda: sugg.post("/v1/suggestions", json={
        "title": "关于老旧小区加装电梯的建议", "content": "建议加快老旧小区加装电梯，方便老年人出行。",
        "lead_deputy_id": DEPUTY, "year": YEAR, "kind": "session", "micro": True}), 201)).json()
    await _ok(sugg.post(f"/v1/suggestions/{suggestion['id']}/assignment", json={"lead_unit_id": UNIT}))
    await _ok(sugg.put(f"/v1/micro-funds/{COUNTY}/{YEAR}", json={"amount": "5000.00"}))

    score = (await _until("deputy in the scoring projection",
                          lambda: scoring.get(f"/v1/deputies/{DEPUTY}/score", params={"year": YEAR}))).json()
    entries = score["entries"]
    return {
        "identity": {"code": COUNTY, "deputy_id": DEPUTY, "station_id": STATION, "election_id": ELECTION,
                     "/v1/codes/{code} code": qr},
        "intake": {"report_id": report["id"], "receipt_code": report["receipt_code"], "year": str(YEAR),
                   "region_prefix": COUNTY},
        "routing": {"report_id": decided.json()["report_id"], "platform_id": PLATFORM,
                    **({"ticket_id": tickets[0]["id"]} if tickets else {})},
        "suggestions": {"suggestion_id": suggestion["id"], "unit_id": UNIT, "region_code": COUNTY, "year": str(YEAR)},
        "scoring": {"deputy_id": DEPUTY, "region_code": COUNTY, **({"entry_id": entries[0]["id"]} if entries else {})},
    }


# ---- generated requests ----------------------------------------------------------------------------


def _distinct(failures: list[Failure]) -> tuple[tuple[str, str], ...]:
    """What makes two failing answers the same bug: the kinds of failure and, per kind, its particulars."""
    return tuple(sorted((f.code, str(getattr(f, "_unique_key", ""))) for f in failures))


def _aimed(operation: Any, known: dict[str, str]) -> dict[str, str] | None:
    """The world's ids for every id in the operation's path; None when it has none or one is not known."""
    names = re.findall(r"{(\w+)}", operation.path)
    fixed = {n: known.get(f"{operation.path} {n}", known.get(n)) for n in names}
    return {n: v for n, v in fixed.items() if v} if names and all(fixed.values()) else None


def _strategy(operation: Any, known: dict[str, str]) -> st.SearchStrategy[schemathesis.Case]:
    """Valid and invalid requests anywhere, and valid ones at the world's own ids where the path has ids."""
    modes = [operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
             operation.as_strategy(schemathesis.GenerationMode.NEGATIVE)]
    if (fixed := _aimed(operation, known)) is not None:
        modes.append(operation.as_strategy(schemathesis.GenerationMode.POSITIVE, path_parameters=fixed))
    return st.one_of(modes)


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    examples: int


WITH_TOKEN = Caller('token: every role, region ""', AUTH, MAX_EXAMPLES)
ANONYMOUS = Caller("no token", {}, ANONYMOUS_EXAMPLES)


@dataclass
class Outcome:
    operations: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Reads aimed at the world's ids, and those of them that answered 2xx at least once.
    aimed_reads: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)


def fuzz_operation(service: str, operation: Any, base_url: str, known: dict[str, str], caller: Caller,
                   session: requests.Session) -> tuple[list[Finding], bool]:
    """`caller.examples` requests; every distinct failure is kept, not only the first; and whether any was 2xx."""
    found: dict[Any, Finding] = {}
    succeeded = False

    def keep(key: Any, report: str) -> None:
        found.setdefault(key, Finding(service, operation.method.upper(), operation.path, caller.name, report))

    @hypothesis.settings(SETTINGS, max_examples=caller.examples)
    @hypothesis.given(case=_strategy(operation, known))
    def run(case: schemathesis.Case) -> None:
        nonlocal succeeded
        try:
            response = case.call_and_validate(base_url=base_url, session=session, headers=caller.headers,
                                              checks=CHECKS, timeout=30)
            succeeded = succeeded or 200 <= response.status_code < 300
        except FailureGroup as group:
            keep(_distinct(list(group.exceptions)), str(group.message))
        except requests.RequestException as exc:
            keep(type(exc).__name__, f"{type(exc).__name__}: {exc}\n" + "\n".join(getattr(exc, "__notes__", [])))

    run()
    return list(found.values()), succeeded


# Reads first, while the world is as registered; deletions last, so they do not take away what others read.
_ORDER = {"GET": 0, "DELETE": 2}


def fuzz_service(service: str, base_url: str, known: dict[str, str], caller: Caller) -> Outcome:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=schemathesis.Config())
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: _ORDER.get(op.method.upper(), 1))
    outcome = Outcome()
    with requests.Session() as session:
        for operation in operations:
            label = f"{operation.method.upper()} {operation.path}"
            outcome.operations.append(label)
            findings, succeeded = fuzz_operation(service, operation, base_url, known, caller, session)
            outcome.findings.extend(findings)
            if operation.method.upper() == "GET" and _aimed(operation, known) is not None:
                outcome.aimed_reads.add(label)
            if succeeded:
                outcome.answered.add(label)
    return outcome


@pytest.mark.parametrize("service", list(SPECS))
async def test_every_operation_keeps_to_its_openapi(service: str, world: World) -> None:
    outcome = await asyncio.to_thread(fuzz_service, service, world.urls[service], world.known[service], WITH_TOKEN)
    _no_findings(service, outcome)
    # Else the checks above would pass on answers that never got past "not found".
    unanswered = sorted(outcome.aimed_reads - outcome.answered)
    assert outcome.aimed_reads and not unanswered, f"{service}: no 2xx from {unanswered} at the world's ids"


@pytest.mark.parametrize("service", list(SPECS))
async def test_without_a_token_every_answer_is_declared(service: str, world: World) -> None:
    _no_findings(service, await asyncio.to_thread(fuzz_service, service, world.urls[service], world.known[service],
                                                  ANONYMOUS))


def _no_findings(service: str, outcome: Outcome) -> None:
    assert len(outcome.operations) >= 3, f"{service}: its OpenAPI lists only {outcome.operations}"
    if outcome.findings:
        pytest.fail(f"{len(outcome.findings)} finding(s):\n\n" + "\n\n".join(map(str, outcome.findings)),
                    pytrace=False)


# ---- text PostgreSQL cannot store: found by the runs above, pinned here since a run need not draw it again


UNSTORABLE = [
    ("identity", "PUT", f"/v1/deputies/{DEPUTY}", {}, '{"name": "王\\u0000", "level": "county", '
                                                     f'"region_code": "{COUNTY}"}}', "name"),
    ("intake", "POST", "/v1/reports", {}, f'{{"channel": "h5", "region_code": "{COUNTY}", "anonymous": true, '
                                          '"content": "路灯坏了\\u0000"}', "content"),
    ("intake", "GET", "/v1/reports", {"deputy_id": "D\x001"}, None, "deputy_id"),
    ("routing", "PUT", "/v1/grid-platforms/P2", {}, '{"name": "\\ud800", "region_prefixes": ["32"], '
                                                    '"transport": "nats", "secret": "ssssssssssssssss"}', "name"),
    ("routing", "GET", "/v1/tickets", {"platform_id": "P\x001"}, None, "platform_id"),
    ("scoring", "POST", "/v1/activities", {}, '{"deputy_id": "D\\u0000", "kind": "survey", "on": "2024-01-02", '
                                              '"evidence": {"sheet": "1"}}', "deputy_id"),
    ("suggestions", "PUT", "/v1/units/U2", {}, f'{{"name": "局", "region_code": "{COUNTY}", '
                                               '"parent_id": "\\u0000"}', "parent_id"),
    ("suggestions", "GET", "/v1/suggestions", {"unit_id": "U\x001"}, None, "unit_id"),
]


@pytest.mark.parametrize(("service", "method", "path", "params", "body", "field_name"), UNSTORABLE,
                         ids=[f"{s}-{m}-{p}" for s, m, p, *_ in UNSTORABLE])
async def test_text_postgresql_cannot_store_is_invalid_input(world: World, service: str, method: str, path: str,
                                                             params: dict[str, str], body: str | None,
                                                             field_name: str) -> None:
    async with httpx.AsyncClient(base_url=world.urls[service], headers=AUTH) as client:
        resp = await client.request(method, path, params=params, content=body,
                                    headers={"Content-Type": "application/json"} if body else None)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert field_name in [e["field"] for e in resp.json()["errors"]]


async def test_a_registry_record_with_unstorable_text_is_rejected_alone(world: World) -> None:
    person = id_number(COUNTY, date(1970, 1, 1), 8)
    record = {"record_id": "r-1", "id_number": person, "name": "赵", "hukou_region_code": COUNTY,
              "residence_region_code": COUNTY, "status": "active", "political_rights": True,
              "updated_at": "2024-01-01T00:00:00+08:00"}
    async with httpx.AsyncClient(base_url=world.urls["identity"], headers=AUTH) as client:
        resp = await client.post("/v1/registry/population/records",
                                 json=[{**record, "record_id": "r\x00-0"}, record])
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0] and "U+0000" in answer["rejected"][0]["error"]
