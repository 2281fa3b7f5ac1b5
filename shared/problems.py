"""How the services' OpenAPI documents declare their error answers.

Every error leaves a service as RFC 9457 problem+json (shared/errors.py). Left alone, FastAPI would
document a 422 as its own `HTTPValidationError` JSON and no other error at all, so a client built from
the document would expect the wrong body under the wrong media type, and no 404 or 409 anywhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.errors import PROBLEM_JSON

# RFC 9457 names the members; `detail` and `errors[].message` are Chinese, `title` English. One
# component of each document, which every error answer refers to (see `declare_component`).
COMPONENT = "Problem"
PROBLEM_REF: dict[str, Any] = {"$ref": f"#/components/schemas/{COMPONENT}"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                              "properties": {"field": {"type": "string"},
                                                             "message": {"type": "string"}}}},
    },
}

DESCRIPTIONS: dict[int, str] = {
    400: "the body cannot be read (not UTF-8, or broken multipart)",
    401: "no token, or an invalid or expired one",
    403: "outside the caller's role or region",
    404: "unknown, or outside the caller's region",
    409: "conflicts with the current state",
    413: "too large",
    415: "unsupported media type",
    422: "invalid input, with the field at fault in `errors`",
    429: "too many requests from one source",
    503: "a service this one depends on does not answer; retry",
}


def problem(status: int, description: str | None = None) -> dict[str, Any]:
    """One error answer for `responses=`: a description and the problem+json body."""
    return {"description": description or DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def problems(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for several error answers: a status alone, or with its own description."""
    out: dict[int | str, dict[str, Any]] = {}
    for entry in statuses:
        status, description = entry if isinstance(entry, tuple) else (entry, None)
        out[status] = problem(status, description)
    return out


# Every router whose calls need a token: an unreadable body, a bad token, a role or region that does not
# fit, invalid input.
COMMON = problems(400, 401, 403, 422)


def declare_component(app: FastAPI) -> None:
    """Add the `Problem` schema that the operations' error answers refer to. FastAPI copies a route's
    `responses=` into the document as given and offers no hook for a shared component, so the
    document is completed once, when it is first built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        document.setdefault("components", {}).setdefault("schemas", {})[COMPONENT] = PROBLEM_SCHEMA
        return document

    app.openapi = openapi  # type: ignore[method-assign]
