"""The generated contracts, checked by tools nobody here wrote.

Each service's OpenAPI document (docs/openapi/<service>.json, which the drift test keeps equal to the
code) must pass the OpenAPI validator and Redocly's linter without an error, and a client generated from
it must come out whole (no operation or model skipped), import, and work: the generated clients of all
five services drive a running stack through a report, a grid platform's signed callback, a suggestion
and a ranking. The AsyncAPI document must pass AsyncAPI's own validator.

Redocly's and AsyncAPI's command lines are npm packages: tests/nodetools.py installs them once into
.minyi/nodetools (the npm registry must be reachable the first time).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import json
import pkgutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypeVar

import httpx
import nodetools
import pytest
import yaml
from authz_table import ANYONE, ROWS, SIGNED
from busutil import fresh_database
from conftest import Servers
from fastapi import APIRouter, Depends, FastAPI, Header
from identityutil import KEY
from openapi_spec_validator import OpenAPIV31SpecValidator
from serviceutil import own_stack
from sqlalchemy import MetaData

from shared import openapi_doc
from shared.auth import ROLES, OptionalPrincipal, Principal, require_roles, sign_token
from shared.service import ServiceSpec
from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "docs" / "openapi"
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"

# The recommended rules, and as errors what these documents promise beyond them: an error answer on
# every operation, a license, a description on every tag, examples that fit their schemas, no unused
# component. `operation-2xx-response` stays a warning: intake's GET /q/{code} only ever redirects (308).
REDOCLY_CONFIG = {
    "extends": ["recommended"],
    "rules": {rule: "error" for rule in (
        "operation-4xx-response", "info-license", "info-license-strict", "tag-description", "operation-tag-defined",
        "no-invalid-media-type-examples", "no-invalid-schema-examples", "no-unused-components", "operation-summary",
        "operation-operationId-unique", "security-defined")},
}

# What the client generator says when it leaves an operation, a response or a model out.
GENERATOR_WARNINGS = ("WARNING parsing", "Unable to parse", "Cannot parse", "Unable to process schema",
                      "Failure to process schema", "Could not find reference", "Unsupported content type")
# Said and accepted: the registry feed also takes its records as NDJSON, for feeders that stream them;
# the generator has no body type for that and keeps the operation with its JSON array body, which is the
# same records. (Read as bytes instead, the body makes it write a module that does not import.)
# Initial loads likewise: the generated client sends the file as bytes (application/octet-stream, read as
# NDJSON); the NDJSON and CSV forms of the same body are for any other HTTP client.
ACCEPTED_GENERATOR_WARNINGS = {
    "identity": ("WARNING parsing POST /v1/registry/{source}/records within identity.",
                 "WARNING parsing POST /v1/registry/{source}/loads within identity.",
                 "Unsupported content type application/x-ndjson", "Unsupported content type text/csv"),
}
# Answers the generator has no model for are read as bytes: an attachment, a QR code image, XML.
_STRUCTURED = ("application/json", "application/problem+json", "application/octet-stream")

COUNTY, DEPUTY, STATION, UNIT, PLATFORM = "330106", "D1", "S1", "U1", "P1"
PLATFORM_SECRET = "c" * 32
YEAR = datetime.now(UTC).year
# Every role everywhere, as the world's deputy and unit too: the clients are under test, not the roles.
TOKEN = sign_token(KEY, issuer="minyi", audience="minyi", sub="t-contract-tools", roles=list(ROLES), region="",
                   deputy_id=DEPUTY, unit_id=UNIT, ttl_seconds=3600)

T = TypeVar("T")


def _openapi(service: str) -> dict[str, Any]:
    return json.loads((OPENAPI / f"{service}.json").read_text())


# ---- who may call, as the documents say -------------------------------------------------------------


def test_security_is_read_from_each_routes_own_dependencies() -> None:
    """A route nobody listed anywhere is documented as it behaves (shared/openapi_doc.py)."""
    router = APIRouter(prefix="/v1")

    @router.get("/staff-only")
    async def staff_only(who: Annotated[Principal, Depends(require_roles("npc_staff"))]) -> dict[str, str]:
        return {"sub": who.sub}

    @router.get("/anyone")
    async def anyone(who: OptionalPrincipal) -> dict[str, str]:
        return {}

    @router.get("/open")
    async def open_() -> dict[str, str]:
        return {}

    @router.post("/signed")
    async def signed(x_minyi_timestamp: Annotated[str | None, Header()] = None,
                     x_minyi_signature: Annotated[str | None, Header()] = None) -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    openapi_doc.install(app, ServiceSpec(name="scoring", title="t", description="d", metadata=MetaData(), stream=None))
    paths = app.openapi()["paths"]
    assert paths["/v1/staff-only"]["get"]["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(paths["/v1/staff-only"]["get"]["responses"])
    assert paths["/v1/anyone"]["get"]["security"] == [{}, {"bearerAuth": []}]
    assert "403" not in paths["/v1/anyone"]["get"]["responses"]
    assert paths["/v1/open"]["get"]["security"] == []
    assert paths["/v1/signed"]["post"]["security"] == [{"gridTimestamp": [], "gridSignature": []}]
    assert all("413" in item[method]["responses"] for item in paths.values() for method in item)


@pytest.mark.parametrize("service", SERVICES)
def test_documented_security_agrees_with_the_authorization_matrix(service: str) -> None:
    """The matrix (tests/authz_table.py) says who may call each operation, and test_authz_matrix.py calls it
    so: what the document says must be the same."""
    anyone = ([], [{}, {"bearerAuth": []}])
    signed = ([{"gridTimestamp": [], "gridSignature": []}],)
    paths = _openapi(service)["paths"]
    rows = [row for row in ROWS if row.service == service and row.method.lower() in paths.get(row.path, {})]
    assert len(rows) > 5, service
    wrong = []
    for row in rows:
        documented = paths[row.path][row.method.lower()]["security"]
        allowed = anyone if row.allow == ANYONE else signed if row.allow == SIGNED else ([{"bearerAuth": []}],)
        if documented not in allowed:
            wrong.append(f"{row.method} {row.path}: documented {documented}, the matrix allows {row.allow}")
    assert not wrong, f"docs/openapi/{service}.json:\n" + "\n".join(wrong)


# ---- the OpenAPI validator -----------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_validator_finds_no_error(service: str) -> None:
    errors = list(OpenAPIV31SpecValidator(_openapi(service)).iter_errors())
    assert not errors, f"docs/openapi/{service}.json: {len(errors)} error(s) from openapi-spec-validator:\n" + \
        "\n".join(f"- at /{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:20])


# ---- Redocly --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lint:
    returncode: int
    problems: list[dict[str, Any]]
    output: str


@pytest.fixture(scope="module")
def redocly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lint]:
    config = tmp_path_factory.mktemp("redocly") / "redocly.yaml"
    config.write_text(yaml.safe_dump(REDOCLY_CONFIG))
    out = {}
    for service in SERVICES:
        done = nodetools.run("redocly", "lint", "--config", str(config), "--format=json",
                             str(OPENAPI / f"{service}.json"))
        assert "Your config has" not in done.stdout + done.stderr, f"the Redocly configuration is wrong:\n{done.stdout}"
        try:
            problems = json.loads(done.stdout)["problems"]
        except (ValueError, KeyError) as exc:
            raise AssertionError(f"docs/openapi/{service}.json: redocly lint said no JSON ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}") from exc
        out[service] = Lint(done.returncode, problems, done.stdout + done.stderr)
    return out


def _where(problem: dict[str, Any]) -> str:
    locations = problem.get("location") or [{}]
    return str(locations[0].get("pointer", "?"))


@pytest.mark.parametrize("service", SERVICES)
def test_redocly_lint_finds_no_error(service: str, redocly: dict[str, Lint]) -> None:
    lint = redocly[service]
    errors = [p for p in lint.problems if p["severity"] == "error"]
    warnings = [p for p in lint.problems if p["severity"] != "error"]
    for p in warnings:
        print(f"docs/openapi/{service}.json: warning {p['ruleId']} at {_where(p)}: {p['message']}")
    assert not errors, f"docs/openapi/{service}.json: {len(errors)} error(s) from redocly lint:\n" + "\n".join(
        f"- {p['ruleId']} at {_where(p)}: {p['message']}" for p in errors[:30])
    assert lint.returncode == 0, lint.output


def test_redocly_reports_an_error_it_is_shown(tmp_path: Path) -> None:
    """The lint above can fail: an operation without an error answer or a security requirement is an error."""
    document = _openapi("scoring")
    operation = document["paths"]["/healthz"]["get"]
    operation["responses"] = {k: v for k, v in operation["responses"].items() if not k.startswith("4")}
    del operation["security"]
    broken = tmp_path / "scoring.json"
    broken.write_text(json.dumps(document))
    config = tmp_path / "redocly.yaml"
    config.write_text(yaml.safe_dump(REDOCLY_CONFIG))
    done = nodetools.run("redocly", "lint", "--config", str(config), "--format=json", str(broken))
    rules = {p["ruleId"] for p in json.loads(done.stdout)["problems"] if p["severity"] == "error"}
    assert done.returncode != 0 and {"operation-4xx-response", "security-defined"} <= rules, done.stdout


# ---- AsyncAPI ----------------------------------------------------------------------------------------------


def test_asyncapi_validator_finds_no_error() -> None:
    done = nodetools.run("asyncapi", "validate", "--diagnostics-format", "json", str(ASYNCAPI))
    start = done.stdout.find("[")
    diagnostics: list[dict[str, Any]] = json.loads(done.stdout[start:done.stdout.rindex("]") + 1]) \
        if start >= 0 else []
    for d in diagnostics:
        if d.get("severity", 0) > 0:
            print(f"docs/asyncapi.yaml: {d.get('code')} at {'/'.join(map(str, d.get('path', [])))}: {d.get('message')}")
    # Spectral's severities: 0 error, 1 warning, 2 information, 3 hint.
    errors = [d for d in diagnostics if d.get("severity", 0) == 0]
    assert done.returncode == 0 and not errors, (
        f"docs/asyncapi.yaml: asyncapi validate failed ({done.returncode}):\n" + "\n".join(
            f"- {d.get('code')} at {'/'.join(map(str, d.get('path', [])))}: {d.get('message')}" for d in errors[:30])
        + f"\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")


# ---- generated clients ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    package: str
    output: str
    returncode: int


def _package(service: str) -> str:
    return f"minyi_{service}_client"


def _generator_config(document: dict[str, Any]) -> dict[str, Any]:
    media = {m for operations in document["paths"].values() for operation in operations.values()
             for answer in operation["responses"].values() for m in answer.get("content", {})}
    return {"post_hooks": [],
            "content_type_overrides": {m: "application/octet-stream" for m in sorted(media)
                                       if m not in _STRUCTURED and not m.startswith("text/")}}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Generated]]:
    root = tmp_path_factory.mktemp("clients")
    generator = Path(sys.executable).parent / "openapi-python-client"
    out = {}
    for service in SERVICES:
        config = root / f"{service}.yaml"
        config.write_text(yaml.safe_dump(_generator_config(_openapi(service))))
        done = subprocess.run([str(generator), "generate", "--path", str(OPENAPI / f"{service}.json"),
                               "--output-path", str(root / _package(service)), "--meta", "none",
                               "--config", str(config)],
                              capture_output=True, text=True, timeout=300, check=False)
        out[service] = Generated(_package(service), done.stdout + done.stderr, done.returncode)
    sys.path.insert(0, str(root))
    try:
        yield out
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] in {_package(s) for s in SERVICES}]:
            del sys.modules[name]


@pytest.mark.parametrize("service", SERVICES)
def test_a_client_is_generated_whole_and_imports(service: str, clients: dict[str, Generated]) -> None:
    made = clients[service]
    assert made.returncode == 0, f"openapi-python-client failed on docs/openapi/{service}.json:\n{made.output}"
    accepted = ACCEPTED_GENERATOR_WARNINGS.get(service, ())
    warned = [line for line in made.output.splitlines()
              if any(w in line for w in GENERATOR_WARNINGS) and line.strip() not in accepted]
    assert not warned, (f"openapi-python-client left parts of docs/openapi/{service}.json out:\n" + "\n".join(warned)
                        + f"\n\n{made.output[-6000:]}")
    package = importlib.import_module(made.package)
    modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(package.__path__, f"{made.package}.")]
    endpoints = [m for m in modules if hasattr(m, "asyncio_detailed")]
    operations = sum(len(ops) for ops in _openapi(service)["paths"].values())
    assert len(endpoints) == operations, f"{service}: {len(endpoints)} endpoint modules for {operations} operations"


# ---- the generated clients against the running stack -------------------------------------------------


@pytest.fixture(scope="module")
async def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """The five services over real HTTP, on a database, a NATS and a Temporal of this module's own."""
    root = tmp_path_factory.mktemp("contract-stack")
    database_url = await fresh_database(servers.database_url, "minyi_contract_tools")
    async with own_stack(database_url, root) as urls:
        yield urls


class Api:
    """One generated client package, as its integrator would use it."""

    def __init__(self, service: str, base_url: str) -> None:
        self.service, self.base_url = service, base_url
        self.package = importlib.import_module(_package(service))
        self.client = self.package.AuthenticatedClient(base_url=base_url, token=TOKEN, timeout=httpx.Timeout(30),
                                                       raise_on_unexpected_status=True)

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.package.__name__}.models"), name)

    def operation(self, tag: str, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package.__name__}.api.{tag}.{name}")

    async def call(self, tag: str, name: str, status: int, **kwargs: Any) -> Any:
        """The operation's answer, parsed into the generated model; it must have `status`."""
        answer = await self.operation(tag, name).asyncio_detailed(client=self.client, **kwargs)
        assert answer.status_code == status, f"{self.service} {name}: {answer.status_code} {answer.content!r}"
        return answer


async def _until(what: str, attempt: Callable[[], Awaitable[T | None]], seconds: float = 30) -> T:
    """Events take a moment to reach the other services."""
    deadline = time.monotonic() + seconds
    while (found := await attempt()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not there after {seconds:.0f} s")
        await asyncio.sleep(0.2)
    return found


REPORT_CONTENT = "小区门口路灯坏了一个月，晚上出行很不方便。"


@dataclass
class World:
    """A county with a station and a deputy with a QR code; a report and a suggestion made on first use."""

    apis: dict[str, Api]
    code: str
    made: dict[str, Any] = field(default_factory=dict)

    async def report(self) -> Any:
        """A citizen's report filed with the deputy's code, after a grid platform for the county (so that it
        becomes one of its tickets); intake's generated ReportCreated."""
        if "report" not in self.made:
            intake, routing = self.apis["intake"], self.apis["routing"]
            platform = await routing.call("routing", "put_platform_v1_grid_platforms_platform_id_put", 201,
                                          platform_id=PLATFORM, body=routing.model("PlatformIn").from_dict({
                                              "name": "西湖区基层治理四平台", "region_prefixes": [COUNTY],
                                              "transport": "nats", "secret": PLATFORM_SECRET}))
            assert platform.parsed.transport == "nats" and platform.parsed.region_prefixes == [COUNTY]
            body = intake.model("ReportIn").from_dict({
                "channel": "h5", "code": self.code, "content": REPORT_CONTENT, "anonymous": False,
                "reporter": {"name": "张三", "phone": "13900000002"}})
            self.made["report"] = (await intake.call("intake", "submit_report_v1_reports_post", 201,
                                                     body=body)).parsed
        return self.made["report"]

    async def suggestion(self) -> Any:
        """The deputy's suggestion, assigned to a unit; the suggestions client's Suggestion after assignment."""
        if "suggestion" not in self.made:
            suggestions = self.apis["suggestions"]
            unit_in = suggestions.model("UnitIn").from_dict({"name": "区住建局", "region_code": COUNTY})
            unit = await suggestions.call("suggestions", "put_unit_v1_units_unit_id_put", 200, unit_id=UNIT,
                                          body=unit_in)
            assert (unit.parsed.id, unit.parsed.name, unit.parsed.parent_id) == (UNIT, "区住建局", None)
            body = suggestions.model("SuggestionIn").from_dict({
                "title": "关于老旧小区加装电梯的建议", "content": "建议加快老旧小区加装电梯，方便老年人出行。",
                "lead_deputy_id": DEPUTY, "year": YEAR, "kind": "session"})
            submit = suggestions.operation("suggestions", "submit_v1_suggestions_post")

            async def submitted() -> Any:
                # 422 until identity's deputy has reached the suggestions service.
                answer = await submit.asyncio_detailed(client=suggestions.client, body=body)
                return answer.parsed if answer.status_code == 201 else None

            made = await _until("the deputy in the suggestions service", submitted)
            assert (made.status, made.lead_deputy_id, made.region_code, made.seq) == ("submitted", DEPUTY, COUNTY, 1)
            assert [c.code for c in made.outcome_classes] == ["A", "B", "C"]
            assignment = suggestions.model("AssignmentIn").from_dict({"lead_unit_id": UNIT})
            self.made["suggestion"] = (await suggestions.call(
                "suggestions", "assign_v1_suggestions_suggestion_id_assignment_post", 200, suggestion_id=made.id,
                body=assignment)).parsed
        return self.made["suggestion"]


@pytest.fixture(scope="module")
async def world(stack: dict[str, str], clients: dict[str, Generated]) -> World:
    """The county, registered through identity's generated client."""
    for service, made in clients.items():
        assert made.returncode == 0, f"no client for {service}:\n{made.output}"
    apis = {service: Api(service, url) for service, url in stack.items()}
    identity = apis["identity"]
    region_in, station_in, deputy_in = (identity.model(n) for n in ("RegionIn", "StationIn", "DeputyIn"))
    for code, parent in (("330000", None), ("330100", "330000"), (COUNTY, "330100")):
        await identity.call("identity", "put_region_v1_regions_code_put", 201, code=code,
                            body=region_in.from_dict({"name": f"地区{code}", "parent_code": parent}))
    await identity.call("identity", "put_station_v1_stations_station_id_put", 201, station_id=STATION,
                        body=station_in.from_dict({"name": "文新联络站", "kind": "station", "region_code": COUNTY}))
    deputy = await identity.call("identity", "put_deputy_v1_deputies_deputy_id_put", 201, deputy_id=DEPUTY,
                                 body=deputy_in.from_dict({"name": "王代表", "level": "county", "region_code": COUNTY,
                                                           "station_ids": [STATION], "phone": "13800000001"}))
    assert deputy.parsed.id == DEPUTY and deputy.parsed.station_ids == [STATION]
    code = (await identity.call("identity", "issue_deputy_code_v1_deputies_deputy_id_code_post", 201,
                                deputy_id=DEPUTY)).parsed.code
    resolved = await identity.call("identity", "resolve_code_v1_codes_code_get", 200, code=code)
    assert (resolved.parsed.kind, resolved.parsed.id, resolved.parsed.name) == ("deputy", DEPUTY, "王代表")
    return World(apis, code)


async def test_a_report_goes_in_through_intake_and_comes_back_out(world: World) -> None:
    intake = world.apis["intake"]
    report = await world.report()
    assert report.status == "submitted" and (report.target.kind, report.target.id) == ("deputy", DEPUTY)
    assert report.reply_due > report.ack_due

    receipt = (await intake.call("intake", "get_receipt_v1_receipts_receipt_code_get", 200,
                                 receipt_code=report.receipt_code)).parsed
    assert receipt.status == "submitted"
    detail = (await intake.call("intake", "get_report_v1_reports_report_id_get", 200, report_id=report.id)).parsed
    assert (detail.id, detail.content, detail.anonymous) == (report.id, REPORT_CONTENT, False)
    assert detail.reporter is not None and detail.reporter.name != "张三"  # masked until unmasked, with a reason
    listed = (await intake.call("intake", "list_reports_v1_reports_get", 200, deputy_id=DEPUTY)).parsed
    assert report.id in [item.id for item in listed.items]


async def test_a_grid_platform_signs_its_callback_as_the_document_says(world: World) -> None:
    routing = world.apis["routing"]
    report = await world.report()

    async def ticket() -> Any:
        found = (await routing.call("routing", "list_tickets_v1_tickets_get", 200, report_id=report.id)).parsed
        return found[0] if found else None

    made = await _until("the report's ticket", ticket)
    assert made.platform_id == PLATFORM
    body = routing.model("CallbackV1GridCallbacksPostCallbackIn").from_dict({
        "ticket_id": made.id, "status": "accepted", "note": "已派单至社区网格员", "at": datetime.now(UTC).isoformat()})
    # As the security scheme says: HMAC-SHA256 of the timestamp, a dot and the body as sent.
    sent = httpx.Request("POST", routing.base_url, json=body.to_dict()).content
    timestamp = str(int(time.time()))
    signature = "sha256=" + hmac.new(PLATFORM_SECRET.encode(), f"{timestamp}.".encode() + sent,
                                     hashlib.sha256).hexdigest()
    anonymous = routing.package.Client(base_url=routing.base_url, timeout=httpx.Timeout(30))
    callback = routing.operation("routing", "callback_v1_grid_callbacks_post")
    answer = await callback.asyncio_detailed(client=anonymous, body=body, x_minyi_timestamp=timestamp,
                                             x_minyi_signature=signature)
    assert answer.status_code == 200, answer.content
    assert (answer.parsed.ticket_id, answer.parsed.status, answer.parsed.applied) == (made.id, "accepted", True)
    forged = await callback.asyncio_detailed(client=anonymous, body=body, x_minyi_timestamp=timestamp,
                                             x_minyi_signature="sha256=" + "0" * 64)
    assert forged.status_code == 401 and forged.parsed.status == 401
    after = (await routing.call("routing", "get_ticket_v1_tickets_ticket_id_get", 200, ticket_id=made.id)).parsed
    assert after.status == "accepted"


async def test_a_suggestion_is_made_assigned_and_read_through_the_suggestions_client(world: World) -> None:
    suggestions = world.apis["suggestions"]
    assigned = await world.suggestion()
    assert (assigned.status, assigned.lead_unit_id, assigned.seq) == ("assigned", UNIT, 2)
    assert assigned.due_at is not None and assigned.extension_request is None

    read = (await suggestions.call("suggestions", "get_suggestion_v1_suggestions_suggestion_id_get", 200,
                                   suggestion_id=assigned.id)).parsed
    assert (read.id, read.status, read.color, read.fund) == (assigned.id, "assigned", "green", None)
    assert [step.kind for step in read.timeline] == ["submitted", "assigned"]
    listed = (await suggestions.call("suggestions", "list_suggestions_v1_suggestions_get", 200, year=YEAR)).parsed
    assert [(s.id, s.status, s.color) for s in listed] == [(assigned.id, "assigned", "green")]


async def test_the_deputy_is_scored_and_ranked_through_the_scoring_client(world: World) -> None:
    scoring = world.apis["scoring"]
    await world.suggestion()
    score_of = scoring.operation("scoring", "deputy_score_v1_deputies_deputy_id_score_get")

    async def scored() -> Any:
        answer = await score_of.asyncio_detailed(client=scoring.client, deputy_id=DEPUTY, year=YEAR)
        return answer.parsed if answer.status_code == 200 and answer.parsed.entries else None

    score = await _until("the suggestion's points", scored)
    led = [e for e in score.entries if e.source == "suggestions.suggestion.submitted"]
    assert led and led[0].rule_code == "suggestion_led" and led[0].points > 0
    assert score.total == score.base + score.bonus and score.grade

    ranking = await scoring.call("scoring", "get_ranking_v1_rankings_get", 200, year=YEAR, region_code=COUNTY)
    assert [(r.deputy_id, r.name, r.rank) for r in ranking.parsed] == [(DEPUTY, "王代表", 1)]
    assert ranking.parsed[0].total == score.total
    assert ranking.headers["Minyi-Total-Count"] == "1"
