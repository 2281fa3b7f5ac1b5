"""GeoReport v2 (Open311) inbound: city systems that speak Open311 file citizens' reports and follow them.

Filing is an integration's act (`api_key`: a JWT with the `integration` role whose region covers
`jurisdiction_id`). The report is filed by region, as the web form files one without a QR code, or, with
the service attribute `attribute[code]`, to the deputy or station whose QR code (亮码) that is, as a
citizen who scans it files one. It is written by `submission.insert_report` like every other: deadlines,
timers, `intake.report.submitted`, routing's classification and dispatch, the station's or deputy's
handling.

Reads are open to anyone, as the spec allows: they show what intake shows the public of a report
(status, deadlines, the answer) and nothing about the reporter or their words, so there is nothing a
credential would unlock. They are limited per source like the receipt lookups; a valid integration
credential lifts the limit for systems that poll.

Each operation comes as `.json` and `.xml`. Errors come in the spec's shape, a list of `code` and
`description`, in the operation's format; a client that sends `Accept: application/problem+json`
gets Minyi's usual problem+json instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.intake import clock, domain, open311, submission, targets
from services.intake.api import (
    IdempotencyKey,
    LocationIn,
    ReporterIn,
    ReportIn,
    RuntimeDep,
    _new_report,
    domain_detail,
    flood_guard,
    limit_flood,
)
from services.intake.models import IDEMPOTENCY, Report
from shared import idempotency
from shared.auth import Principal, TokenVerifier, get_verifier
from shared.calendar import SHANGHAI
from shared.client_source import source_of
from shared.errors import DEFAULT_DETAIL, PROBLEM_JSON, Problem, field_path, validation_message
from shared.ids import new_id
from shared.inputs import storable
from shared.instants import Instant
from shared.problems import PROBLEM_REF
from shared.service import Runtime

XML = "application/xml"
# Where a submission's token is kept: the idempotency store, whose rows live a week (shared/idempotency.py).
TOKEN_SCOPE = "open311.token"
ID_PATTERN = r"^[0-9a-f-]{36}$"
# A report lands in a region (six digits at least); a search may cover a prefix (33: all of Zhejiang).
FILING_REGION = r"^\d{6,12}$"
SEARCH_REGION = r"^\d{2,12}$"
_JURISDICTION = "the region code (行政区划代码)"


def error_response(fmt: open311.Format, status: int, description: str,
                   headers: dict[str, str] | None = None) -> Response:
    errors = open311.error_list(status, description)
    if fmt == "xml":
        return Response(open311.errors_xml(errors), status_code=status, media_type=XML, headers=headers)
    return JSONResponse(errors, status_code=status, headers=headers)


def _validation_text(exc: RequestValidationError) -> str:
    found = [f"{field_path(e.get('loc', ()))}：{validation_message(e)}" for e in exc.errors()]
    return "请求参数有误：" + "；".join(found[:3]) + ("……" if len(found) > 3 else "。")


def _spec_error(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, open311.Invalid):
        return 400, exc.message, None
    if isinstance(exc, RequestValidationError):
        return 400, _validation_text(exc), None
    if isinstance(exc, Problem):
        # The spec knows no 422: input it cannot take is a bad request.
        return (400 if exc.status == 422 else exc.status), exc.detail, exc.headers
    assert isinstance(exc, StarletteHTTPException)
    return exc.status_code, DEFAULT_DETAIL.get(exc.status_code, "请求无法处理。"), \
        dict(exc.headers) if exc.headers else None


class Open311Route(APIRoute):
    """Errors in the spec's shape and the route's format, unless the client asks for problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        fmt: open311.Format = "xml" if self.path.endswith(".xml") else "json"

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (open311.Invalid, RequestValidationError, Problem, StarletteHTTPException) as exc:
                if open311.prefers_problem(request.headers.get("accept")):
                    if isinstance(exc, open311.Invalid):
                        raise Problem(400, exc.message) from exc
                    raise
                return error_response(fmt, *_spec_error(exc))

        return route


router = APIRouter(prefix="/open311/v2", tags=["intake"], route_class=Open311Route)


# ---- what the document says ---------------------------------------------------------------------


class ServiceOut(BaseModel):
    service_code: str
    service_name: str = Field(description="Chinese")
    description: str
    metadata: bool = Field(description="always true: every service takes the `code` attribute (亮码)")
    type: Literal["realtime"]
    keywords: str = Field(description="comma-separated")
    group: str


class AttributeOut(BaseModel):
    variable: bool = Field(description="true: the client supplies the value")
    code: str = Field(description="sent as `attribute[{code}]` when filing")
    datatype: Literal["string"]
    required: bool
    datatype_description: str
    order: int
    description: str = Field(description="Chinese")


class DefinitionOut(BaseModel):
    service_code: str
    attributes: list[AttributeOut] = Field(description="the same for every service: one optional attribute, "
                                                       "`code`, a deputy's or station's QR code (亮码); filed "
                                                       "with it, the report goes to them instead of the region")


class CreatedOut(BaseModel):
    service_request_id: str
    token: str = Field(description="resolves to service_request_id through GET tokens/{token} for 7 days")
    service_notice: str
    account_id: None = None
    receipt_code: str = Field(description="Minyi's receipt code: lets the citizen follow the report and rate the "
                                          "answer on Minyi's own pages")
    expected_datetime: datetime = Field(description="the answer deadline")


class RequestOut(BaseModel):
    service_request_id: str
    status: open311.Open311Status = Field(description="closed once answered; open again if the citizen's "
                                                      "rating reopens it")
    status_notes: str | None = Field(description="the public answer once there is one, else where it stands")
    service_name: str | None
    service_code: str | None
    description: None = Field(description="a report's own text is never public")
    agency_responsible: str | None
    service_notice: None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime = Field(description="the answer deadline (7 working days unless the region says "
                                               "otherwise)")
    address: None
    address_id: None
    zipcode: None
    lat: None
    long: None
    media_url: None


class TokenOut(BaseModel):
    service_request_id: str
    token: str


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "required": ["code", "description"],
              "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}
_XML_SCHEMA: dict[str, Any] = {"type": "string"}


def _responses(fmt: open311.Format, status: int, errors: Sequence[tuple[int, str]]) -> dict[int | str, Any]:
    own = {"application/json": {"schema": _ERROR_SCHEMA}} if fmt == "json" else {XML: {"schema": _XML_SCHEMA}}
    out: dict[int | str, Any] = {
        code: {"description": f"{why} (the spec's error list; problem+json when asked for)",
               "content": {**own, PROBLEM_JSON: {"schema": PROBLEM_REF}}}
        for code, why in errors}
    out[422] = {"description": "invalid input, only with `Accept: application/problem+json` (else 400)",
                "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}
    if fmt == "xml":
        out[status] = {"description": "the spec's XML", "content": {XML: {"schema": _XML_SCHEMA}}}
    return out


def _operation(method: str, path: str, *, summary: str, model: Any, errors: Sequence[tuple[int, str]],
               status: int = 200) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        for fmt in ("json", "xml"):
            router.add_api_route(
                f"{path}.{fmt}", endpoint, methods=[method], status_code=status, summary=f"{summary} ({fmt})",
                response_model=model if fmt == "json" else None,
                response_class=JSONResponse if fmt == "json" else Response,
                responses=_responses(fmt, status, errors))  # type: ignore[arg-type]
        return endpoint

    return register


def _format(request: Request) -> open311.Format:
    return "xml" if request.url.path.endswith(".xml") else "json"


def render(request: Request, kind: str, content: Any, status: int = 200) -> Response:
    if _format(request) == "xml":
        root, item = open311.XML_NAMES[kind]
        return Response(open311.xml_document(root, item, content), status_code=status, media_type=XML)
    return JSONResponse(jsonable_encoder(content), status_code=status)


# ---- who is calling -----------------------------------------------------------------------------


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="minyi"'})


async def credential(request: Request, api_key: str | None, verifier: TokenVerifier) -> Principal | None:
    """The caller behind `api_key` (or a Bearer token); None when neither was sent."""
    token = api_key.strip() if api_key else ""
    if not token:
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "bearer" or not rest.strip():
            raise _unauthorized("api_key 无效：请使用接入凭证（integration 角色的 JWT）。")
        token = rest.strip()
    if verifier.fetches_keys:
        return await asyncio.to_thread(verifier.verify, token)
    return verifier.verify(token)


ApiKeyQuery = Annotated[str | None, Query(alias="api_key", max_length=4096,
                                          description="the integration credential (a JWT); also accepted as "
                                                      "`Authorization: Bearer`")]
Verifier = Annotated[TokenVerifier, Depends(get_verifier)]


async def integration(request: Request, verifier: Verifier,
                      api_key: Annotated[str | None, Form(max_length=4096, description="the integration credential "
                                                          "(a JWT with the `integration` role)")] = None,
                      api_key_query: ApiKeyQuery = None) -> Principal:
    who = await credential(request, api_key or api_key_query, verifier)
    if who is None:
        raise _unauthorized("缺少 api_key：提交反映需要接入凭证。")
    if "integration" not in who.roles:
        if "integration" in who.incomplete:
            raise Problem(403, "接入凭证缺少地区（region）声明，不能提交反映。")
        raise Problem(403, "该凭证不是接入凭证（integration），不能提交反映。")
    return who


async def reader(request: Request, runtime: RuntimeDep, verifier: Verifier,
                 api_key: ApiKeyQuery = None) -> Principal | None:
    """Anyone may read; a source without an integration credential is limited like receipt lookups."""
    who = await credential(request, api_key, verifier)
    if who is None or "integration" not in who.roles:
        await flood_guard(runtime, "lookup").check("open311", source_of(request))
    return who


Integration = Annotated[Principal, Depends(integration)]
Reader = Annotated[Principal | None, Depends(reader)]
FilingRegion = Annotated[str, Form(pattern=FILING_REGION, description=_JURISDICTION + " the report is about")]
SearchRegion = Annotated[str, Query(pattern=SEARCH_REGION, description=_JURISDICTION + ", as a prefix: 33 is "
                                                                        "all of Zhejiang")]


# ---- services -----------------------------------------------------------------------------------


@_operation("GET", "/services", summary="The categories a report may be filed under", model=list[ServiceOut],
            errors=((400, "jurisdiction_id missing or malformed"),))
async def list_services(request: Request, jurisdiction_id: SearchRegion) -> Response:
    return render(request, "services", [open311.service_dict(s) for s in open311.SERVICES])


@_operation("GET", "/services/{service_code}", summary="One category's definition: the optional `code` attribute",
            model=DefinitionOut, errors=((400, "jurisdiction_id missing or malformed"),
                                         (404, "no such service_code")))
async def get_service(request: Request, service_code: Annotated[str, Path(max_length=40)],
                      jurisdiction_id: SearchRegion) -> Response:
    service = open311.BY_CODE.get(service_code)
    if service is None:
        raise Problem(404, f"未知的 service_code：{service_code}。")
    return render(request, "definition", open311.definition_dict(service))


# ---- filing -------------------------------------------------------------------------------------


@_operation("POST", "/requests", summary="File a citizen's report (form-encoded), anonymous unless a name and "
                                         "phone are given", model=list[CreatedOut], status=201,
            errors=((400, "missing or invalid field, unknown service_code, a forged, revoked or unknown "
                          "attribute[code], or one of a deputy or station outside jurisdiction_id"),
                    (401, "no api_key, or an invalid or expired one"),
                    (403, "not an integration credential, or its region does not cover jurisdiction_id"),
                    (409, "the Idempotency-Key was used for another body"),
                    (429, "too many reports from one source"),
                    (503, "attribute[code] cannot be checked right now; retry")))
async def file_request(
    request: Request,
    runtime: RuntimeDep,
    who: Integration,
    jurisdiction_id: FilingRegion,
    service_code: Annotated[str, Form(max_length=40, description="from services.json")],
    description: Annotated[str, Form(min_length=1, max_length=open311.MAX_DESCRIPTION)],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(alias="long", ge=-180, le=180)] = None,
    address_string: Annotated[str | None, Form(max_length=200)] = None,
    media_url: Annotated[str | None, Form(max_length=500, pattern=r"^https?://\S+$",
                                          description="kept in the report's text for the deputy; not fetched")] = None,
    first_name: Annotated[str | None, Form(max_length=25, description="with last_name and phone: a real-name "
                                                                      "report, kept encrypted")] = None,
    last_name: Annotated[str | None, Form(max_length=25)] = None,
    phone: Annotated[str | None, Form(max_length=30, pattern=r"^(\+?[0-9 ()-]{7,30})?$")] = None,
    code_attribute: Annotated[str | None, Form(alias=open311.CODE_FIELD, max_length=open311.MAX_CODE,
                                               description="a deputy's or station's QR code (亮码): the report "
                                                           "goes to them, as when a citizen scans it")] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if not who.can_see(jurisdiction_id):
        raise Problem(403, "该地区不在此接入凭证的范围内。")
    await limit_flood(request, runtime, who, "reports")
    form = {"jurisdiction_id": jurisdiction_id, "service_code": service_code, "description": description,
            "lat": lat, "long": lon, "address_string": address_string, "media_url": media_url,
            "first_name": first_name, "last_name": last_name, "phone": phone}
    code = open311.code_of(code_attribute)
    # Only when given: keys of retries filed before the attribute existed keep their fingerprints.
    if code is not None:
        form[open311.CODE_FIELD] = code
    for name, value in form.items():
        if isinstance(value, str) and not storable(value):
            raise open311.Invalid(f"{name} 不能包含空字符或无效的 Unicode 字符。")
    body = _report_in(form)
    now = clock.now(runtime)
    book = await clock.book(runtime)
    reporter = None if body.reporter is None else domain.Reporter(body.reporter.name, body.reporter.phone, None)
    # The integration's own scope: its keys never meet another system's. The integration is a city
    # system, not the citizen, so the key does not tie an anonymous report to a person.
    scope = f"open311:{who.sub}"
    print_ = idempotency.fingerprint(form)
    async with runtime.transaction() as session:
        if idempotency_key is not None:
            replay = await idempotency.claim(session, IDEMPOTENCY, scope=scope, key=idempotency_key, print_=print_)
            if replay is not None:
                return render(request, "requests", replay.body, replay.status_code)
        errors, id_number = domain.check_submission(
            channel=body.channel, code=None, region_code=body.region_code, content=body.content, has_voice=False,
            anonymous=body.anonymous, reporter=reporter, received_at=None, roles=who.roles, now=now)
        if errors:
            raise open311.Invalid(domain_detail(errors))
        target = targets.region_target(jurisdiction_id) if code is None else \
            await _code_target(runtime, code, jurisdiction_id)
        rules = domain.rules_for(target.region_code, book.rules)
        due = domain.deadlines(book.calendar, rules, now)
        report = _new_report(runtime, body, target, reporter, id_number, who, now, due)
        await submission.file_report(runtime, session, report, rules=rules, due=due, now=now)
        token = await _token_for(session, report.id)
        created = [jsonable_encoder(CreatedOut(
            service_request_id=report.id, token=token,
            service_notice=open311.service_notice(report.ack_due, report.reply_due),
            receipt_code=domain.display_receipt_code(report.receipt_code),
            expected_datetime=report.reply_due.astimezone(SHANGHAI)))]
        if idempotency_key is not None:
            await idempotency.remember(session, IDEMPOTENCY, scope=scope, key=idempotency_key, status_code=201,
                                       body=created)
        return render(request, "requests", created, 201)


async def _code_target(runtime: Runtime, code: str, jurisdiction_id: str) -> targets.Target:
    """The deputy or station behind the code, as `POST /v1/reports` finds it (503 while identity is
    unreachable); a code that leads nowhere, or out of the jurisdiction, is the caller's mistake."""
    found = await targets.resolve_code(runtime, code)
    if found is None:
        raise open311.unknown_code()
    return targets.Target(found.kind, found.id, open311.code_region(jurisdiction_id, found.region_code), found.name)


def _report_in(form: dict[str, Any]) -> ReportIn:
    """The report as `POST /v1/reports` takes it, from the spec's fields."""
    point = open311.coordinates(form["lat"], form["long"])
    anonymous = not (form["first_name"] or form["last_name"] or form["phone"])
    try:
        return ReportIn(
            channel="api", region_code=form["jurisdiction_id"],
            content=open311.content_of(form["description"], form["address_string"], form["media_url"],
                                       has_coordinates=point is not None),
            category=open311.service_of(form["service_code"]).code, anonymous=anonymous,
            reporter=None if anonymous else ReporterIn(
                name=open311.reporter_name(form["first_name"], form["last_name"]), phone=form["phone"] or ""),
            location=None if point is None else LocationIn(lat=point[0], lon=point[1],
                                                           address=form["address_string"] or None))
    except pydantic.ValidationError as exc:
        found = [f"{field_path(e.get('loc', ()))}：{validation_message(dict(e))}" for e in exc.errors()]
        raise open311.Invalid("提交的反映有误：" + "；".join(found[:3]) + "。") from exc


async def _token_for(session: AsyncSession, report_id: str) -> str:
    """A handle for the submission, kept with its answer in the idempotency store (a week, like any key)."""
    token = new_id()
    await idempotency.claim(session, IDEMPOTENCY, scope=TOKEN_SCOPE, key=token,
                            print_=idempotency.fingerprint(report_id))
    await idempotency.remember(session, IDEMPOTENCY, scope=TOKEN_SCOPE, key=token, status_code=200,
                               body={"service_request_id": report_id})
    return token


# ---- following ----------------------------------------------------------------------------------


_FACTS = [getattr(Report, f.name) for f in fields(open311.ReportFacts)]


async def _facts(runtime: Runtime, *where: Any) -> list[open311.ReportFacts]:
    query = (select(*_FACTS).where(*where).order_by(Report.received_at.desc(), Report.id.desc())
             .limit(open311.MAX_RESULTS))
    async with runtime.database.sessions() as session:
        rows = (await session.execute(query)).mappings().all()
    return [open311.ReportFacts(**row) for row in rows]


def _within(jurisdiction_id: str) -> Any:
    return Report.region_code.startswith(jurisdiction_id, autoescape=True)


@_operation("GET", "/requests", summary="Reports of a region: the last 90 days, newest first, at most 1000",
            model=list[RequestOut],
            errors=((400, "missing or invalid parameter, a window over 90 days"),
                    (401, "an invalid or expired api_key"), (429, "too many requests from one source")))
async def search_requests(
    request: Request,
    runtime: RuntimeDep,
    who: Reader,
    jurisdiction_id: SearchRegion,
    service_request_id: Annotated[str | None, Query(max_length=4000, description="comma-separated ids; overrides "
                                                                                 "every other filter")] = None,
    service_code: Annotated[str | None, Query(max_length=1000, description="comma-separated")] = None,
    start_date: Annotated[Instant | None, Query(description="received at or after")] = None,
    end_date: Annotated[Instant | None, Query(description="received at or before; at most 90 days after "
                                                                "start_date")] = None,
    status: Annotated[str | None, Query(max_length=100, description="open, closed or both, comma-separated")] = None,
) -> Response:
    where: list[Any] = [_within(jurisdiction_id)]
    ids = open311.request_ids(service_request_id)
    if ids:
        where.append(Report.id.in_(ids))
    else:
        start, end = open311.search_window(clock.now(runtime), start_date, end_date)
        where += [Report.received_at >= start, Report.received_at <= end]
        if codes := open311.service_codes(service_code):
            where.append(Report.category.in_(codes))
        if statuses := open311.statuses(status):
            where.append(Report.status.in_(statuses))
    found = await _facts(runtime, *where)
    return render(request, "requests", [open311.request_dict(r) for r in found])


@_operation("GET", "/requests/{service_request_id}", summary="One report", model=list[RequestOut],
            errors=((400, "missing or invalid parameter"), (401, "an invalid or expired api_key"),
                    (404, "no such report in the jurisdiction"), (429, "too many requests from one source")))
async def get_request(request: Request, runtime: RuntimeDep, who: Reader,
                      service_request_id: Annotated[str, Path(pattern=ID_PATTERN)],
                      jurisdiction_id: SearchRegion) -> Response:
    found = await _facts(runtime, Report.id == service_request_id, _within(jurisdiction_id))
    if not found:
        raise Problem(404, "该地区没有这条反映。")
    return render(request, "requests", [open311.request_dict(found[0])])


@_operation("GET", "/tokens/{token}", summary="The report a submission's token stands for", model=list[TokenOut],
            errors=((400, "missing or invalid parameter"), (401, "an invalid or expired api_key"),
                    (404, "unknown or expired token, or a report outside the jurisdiction"),
                    (429, "too many requests from one source")))
async def get_token(request: Request, runtime: RuntimeDep, who: Reader,
                    token: Annotated[str, Path(pattern=ID_PATTERN)], jurisdiction_id: SearchRegion) -> Response:
    kept_answer = select(IDEMPOTENCY.c.response).where(IDEMPOTENCY.c.scope == TOKEN_SCOPE, IDEMPOTENCY.c.key == token)
    async with runtime.database.sessions() as session:
        kept = await session.scalar(kept_answer)
        report_id = kept.get("service_request_id") if isinstance(kept, dict) else None
        known = report_id is not None and await session.scalar(
            select(Report.id).where(Report.id == report_id, _within(jurisdiction_id))) is not None
    if not known:
        raise Problem(404, "该凭据不存在或已过期（凭据保留 7 天），或反映不在该地区。")
    return render(request, "requests", [{"service_request_id": report_id, "token": token}])
