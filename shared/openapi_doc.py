"""What each service's OpenAPI document says beyond what FastAPI writes of it.

Who may call each operation is read from the route's own dependencies, not from a list of paths: a
dependency that yields a `Principal` makes the operation need a bearer token, one that yields
`Principal | None` makes the token optional, and the grid platforms' signature headers make an
operation signed. A new route is documented as it behaves without anyone remembering to say so.

Besides: where the services run (`servers`), the license, a description of every tag, and the error
answers as shared `components/responses` (RFC 9457 problem+json), which the operations refer to.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from shared.auth import Principal
from shared.body_limit import readable_size
from shared.errors import PROBLEM_JSON, TYPE_BASE
from shared.problems import DESCRIPTIONS, PROBLEM_REF
from shared.settings import DEFAULT_PORTS

if TYPE_CHECKING:
    from shared.service import ServiceSpec

BEARER = "bearerAuth"
GRID_TIMESTAMP = "gridTimestamp"
GRID_SIGNATURE = "gridSignature"
# The headers a grid platform signs its callbacks with; an operation that reads both is signed.
SIGNATURE_HEADERS = {"x-minyi-timestamp": GRID_TIMESTAMP, "x-minyi-signature": GRID_SIGNATURE}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": (
            "A JWT from the identity provider (production: verified against its JWKS; development: "
            "`minyi token`), with `iss` and `aud` as configured (`minyi` by default) and an expiry. Claims: "
            "`sub` (the account), `roles` (any of citizen, deputy, station_staff, unit, npc_staff, admin, "
            "integration), `region` (the administrative code prefix the caller works in; `\"\"` means everywhere "
            "only for admin and integration), `deputy_id` (needed by the deputy role), `unit_id` (needed by the "
            "unit role) and, for integration, `sources` (the registries it may write). A role whose claim is "
            "missing is not held: its operations answer 403 naming the claim."),
    },
    GRID_TIMESTAMP: {
        "type": "apiKey", "in": "header", "name": "X-Minyi-Timestamp",
        "description": "Unix time in seconds when the grid platform signed the callback; more than five minutes "
                       "off is refused.",
    },
    GRID_SIGNATURE: {
        "type": "apiKey", "in": "header", "name": "X-Minyi-Signature",
        "description": "`sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>`: the platform's secret (set "
                       "with `PUT /v1/grid-platforms/{platform_id}`), the X-Minyi-Timestamp value and the raw "
                       "request body.",
    },
}


class Access(StrEnum):
    PUBLIC = "public"
    OPTIONAL_TOKEN = "optional token"
    TOKEN = "token"
    SIGNED = "signed"


SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    # Anyone; a token makes the answer or the limits those of its holder (and a bad one is still 401).
    Access.OPTIONAL_TOKEN: [{}, {BEARER: []}],
    Access.TOKEN: [{BEARER: []}],
    Access.SIGNED: [{GRID_TIMESTAMP: [], GRID_SIGNATURE: []}],
}

# The error answers every document may refer to, by status.
RESPONSE_NAMES: dict[int, str] = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
    413: "ContentTooLarge", 415: "UnsupportedMediaType", 422: "ValidationFailed", 429: "TooManyRequests",
    503: "ServiceUnavailable",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before asking again", "schema": {"type": "string"}}}
_RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer realm=\"minyi\"` where a bearer token was wanted",
                               "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
_VALIDATION_EXAMPLE = {
    "type": TYPE_BASE + "validation-failed", "title": "Validation Failed", "status": 422,
    "detail": "提交的数据有误，请检查后重试。", "instance": "/v1/reports",
    "errors": [{"field": "content", "message": "长度不能少于 5 个字符"}],
}

# Tags other than the service's own name (whose description is the service's).
TAG_DESCRIPTIONS: dict[str, str] = {
    "ops": "Liveness and readiness for orchestrators; no token.",
    "audit": "The service's audit log (审计日志), newest first, within the caller's region; npc_staff and admin.",
    "public": "Open to anyone without a token; nothing personal in the answers. Those that can answer 429 are "
              "limited per source.",
    "hotspots": "Hotspots (共性事项): reports of many people about one matter in one place, for staff to merge, "
                "split and close.",
    "micro-suggestion funds": "The yearly micro-suggestion fund (急难小) of a region and what was spent from it.",
    "supervision topics": "Hotspots raised for congress supervision (人大监督): converted into a key suggestion "
                          "or closed with a note.",
}

# No license is granted with the code; SPDX's form for a license of one's own.
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}


class Readiness(BaseModel):
    """The answer of `/readyz`, 200 or 503 alike."""

    status: str = Field(description="`ready`, or `not ready` when any check fails")
    checks: dict[str, str] = Field(description="each check (database, nats, consumers, workers, and temporal "
                                               "where used): `ok`, or `failing: …` with the reason")


def install(app: FastAPI, spec: ServiceSpec) -> None:
    """Complete `app`'s document the first time it is built (FastAPI keeps it from then on)."""
    build = app.openapi
    completed: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal completed
        if completed is None:
            completed = complete(build(), app.routes, spec)
        return completed

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], routes: Sequence[BaseRoute], spec: ServiceSpec) -> dict[str, Any]:
    document["servers"] = servers(spec.name)
    document["info"]["license"] = LICENSE
    components = document.setdefault("components", {})
    used_responses: set[int] = set()
    used_schemes: set[str] = set()
    # Routes of included routers come with the context of their inclusion (prefix, router dependencies).
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        access = access_of(route)
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = [dict(requirement) for requirement in SECURITY[access]]
            used_schemes |= {name for requirement in SECURITY[access] for name in requirement}
            responses = operation["responses"]
            _add_implied(responses, access, _body_limit(spec, route.path_format))
            used_responses |= _refer_to_components(responses)
    if used_schemes:
        components["securitySchemes"] = {k: v for k, v in SECURITY_SCHEMES.items() if k in used_schemes}
    if used_responses:
        components["responses"] = {RESPONSE_NAMES[s]: _problem_response(s) for s in sorted(used_responses)}
    _describe_readiness(document)
    _restore_nulls(document)
    document["tags"] = _tags(document, spec)
    return document


# ---- who may call ------------------------------------------------------------------------------------


def access_of(route: APIRoute | RouteContext) -> Access:
    """From the route's dependencies: the most a caller must show."""
    headers = {param.alias.lower() for dependant in _tree(route.dependant) for param in dependant.header_params}
    yields = {_yields(d.call) for d in _tree(route.dependant) if d.call is not None and d is not route.dependant}
    if Access.TOKEN in yields:
        return Access.TOKEN
    if set(SIGNATURE_HEADERS) <= headers:
        return Access.SIGNED
    if Access.OPTIONAL_TOKEN in yields:
        return Access.OPTIONAL_TOKEN
    return Access.PUBLIC


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _tree(sub)


def _yields(call: Callable[..., Any]) -> Access:
    """TOKEN for a dependency that yields the caller, OPTIONAL_TOKEN for one that may yield nobody."""
    if isinstance(call, type):
        return Access.PUBLIC
    # A callable object (a class instance with __call__) says what it yields on its __call__.
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    try:
        returned = typing.get_type_hints(target).get("return")
    except NameError as exc:
        # Guessing would document a route that needs a token as open to anyone, or the reverse.
        raise TypeError(f"cannot tell whether dependency {call!r} yields the caller: {exc}") from exc
    if returned is Principal:
        return Access.TOKEN
    if typing.get_origin(returned) in (typing.Union, types.UnionType):
        members = set(typing.get_args(returned))
        if members == {Principal, type(None)}:
            return Access.OPTIONAL_TOKEN
    return Access.PUBLIC


# ---- error answers ---------------------------------------------------------------------------------------


def _body_limit(spec: ServiceSpec, path: str) -> int:
    matching = [(prefix, limit) for prefix, limit in spec.body_limits.items() if path.startswith(prefix)]
    return max(matching, key=lambda m: len(m[0]))[1] if matching else spec.default_body_limit


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def _add_implied(responses: dict[str, Any], access: Access, body_limit: int) -> None:
    """What any operation may answer whatever its route says: a bad token, a role that does not fit, a body
    over the service's limit (refused before the route sees it)."""
    if access in (Access.TOKEN, Access.OPTIONAL_TOKEN):
        responses.setdefault("401", _problem(DESCRIPTIONS[401]))
    if access is Access.TOKEN:
        responses.setdefault("403", _problem(DESCRIPTIONS[403]))
    responses.setdefault("413", _problem(f"the request body is over {readable_size(body_limit)}"))


def _refer_to_components(responses: dict[str, Any]) -> set[int]:
    """Problem answers become references to the shared ones, keeping their own description where they say
    more; returns the statuses referred to."""
    used = set()
    for code, answer in list(responses.items()):
        status = int(code) if code.isdigit() else 0
        name = RESPONSE_NAMES.get(status)
        if name is None or answer.get("content") != {PROBLEM_JSON: {"schema": PROBLEM_REF}}:
            continue
        reference: dict[str, Any] = {"$ref": f"#/components/responses/{name}"}
        if answer.get("description") and answer["description"] != DESCRIPTIONS[status]:
            reference["description"] = answer["description"]
        responses[code] = reference
        used.add(status)
    return used


def _problem_response(status: int) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": PROBLEM_REF}
    if status == 422:
        media["examples"] = {"field": {"summary": "a field at fault", "value": _VALIDATION_EXAMPLE}}
    out: dict[str, Any] = {"description": DESCRIPTIONS[status], "content": {PROBLEM_JSON: media}}
    if status in _RESPONSE_HEADERS:
        out["headers"] = _RESPONSE_HEADERS[status]
    return out


def _describe_readiness(document: dict[str, Any]) -> None:
    """`/readyz` (added by shared/service.py's build_app) answers JSONResponse, which FastAPI cannot see into."""
    operation = document["paths"].get("/readyz", {}).get("get")
    if operation is None:
        return
    schema = Readiness.model_json_schema()
    document["components"].setdefault("schemas", {})["Readiness"] = schema
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    operation["responses"]["200"] = {"description": "every check is ok", "content": body}
    operation["responses"]["503"] = {"description": "a check fails; `checks` names it", "content": body}


# ---- examples --------------------------------------------------------------------------------------------


def _restore_nulls(document: dict[str, Any]) -> None:
    """FastAPI writes the document without any member whose value is None, the null members of the models'
    examples too: an example would then lack required fields. Each gets its null back."""
    schemas = document.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        for example in schema.get("examples", []):
            _fill_nulls(example, schema, schemas)


def _fill_nulls(value: Any, schema: dict[str, Any], schemas: dict[str, Any]) -> None:
    schema = _resolved(schema, schemas)
    branches = [_resolved(b, schemas) for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema = branches[0]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value and _nullable(properties.get(name, {})):
                value[name] = None
        for name, member in value.items():
            if name in properties and member is not None:
                _fill_nulls(member, properties[name], schemas)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill_nulls(item, schema["items"], schemas)


def _resolved(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    prefix = "#/components/schemas/"
    return schemas.get(ref[len(prefix):], schema) if ref.startswith(prefix) else schema


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(b.get("type") == "null" for b in schema.get("anyOf", []))


# ---- where, and what -----------------------------------------------------------------------------------


def servers(service: str) -> list[dict[str, Any]]:
    port = DEFAULT_PORTS[service]
    return [
        # The address services listen on by default (MINYI_HTTP_HOST); `localhost` may resolve to ::1 first.
        {"url": f"http://127.0.0.1:{port}",
         "description": f"`minyi up` on this machine (MINYI_{service.upper()}_PORT, {port} by default)"},
        {"url": f"http://minyi-{service}.{{namespace}}.svc.cluster.local:{port}",
         "description": "inside a Kubernetes deployment of deploy/k8s: the service's ClusterIP Service",
         "variables": {"namespace": {"default": "minyi", "description": "the namespace Minyi is deployed in"}}},
    ]


def _tags(document: dict[str, Any], spec: ServiceSpec) -> list[dict[str, str]]:
    """Every tag the operations use, in order of first use, with its description."""
    seen: list[str] = []
    for operations in document["paths"].values():
        for operation in operations.values():
            seen += [t for t in operation.get("tags", []) if t not in seen]
    own = {spec.name: spec.description}
    return [{"name": t, "description": own.get(t) or TAG_DESCRIPTIONS.get(t, "")} for t in seen]
