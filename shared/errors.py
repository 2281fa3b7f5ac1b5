"""RFC 9457 problem+json: English `title`, Chinese `detail`, the field at fault in `errors`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import unreachable

log = logging.getLogger("minyi.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://minyi.example/problems/"

# Chinese text for the statuses a client can meet without a more specific message.
DEFAULT_DETAIL: dict[int, str] = {
    400: "请求格式不正确。",
    401: "未登录或登录凭证无效。",
    403: "无权执行此操作。",
    404: "请求的资源不存在。",
    405: "不支持该请求方法。",
    406: "无法提供所请求的内容类型。",
    409: "操作与当前状态冲突。",
    413: "提交的内容过大。",
    415: "不支持的文件类型。",
    422: "提交的数据有误，请检查后重试。",
    429: "请求过于频繁，请稍后再试。",
    500: "服务器内部错误，请稍后再试。",
    503: "服务暂不可用，请稍后再试。",
}

# pydantic error types → Chinese; `{ctx}` keys come from pydantic's error context.
_VALIDATION_MESSAGES: dict[str, str] = {
    "missing": "此项为必填项",
    "string_too_short": "长度不能少于 {min_length} 个字符",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_type": "应为字符串",
    "string_pattern_mismatch": "格式不正确",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "bool_type": "应为布尔值",
    "bool_parsing": "应为布尔值",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
    "literal_error": "取值应为 {expected} 之一",
    "enum": "取值应为 {expected} 之一",
    "list_type": "应为列表",
    "too_short": "至少需要 {min_length} 项",
    "too_long": "最多允许 {max_length} 项",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "datetime_type": "应为带时区的时间（RFC 3339）",
    "datetime_parsing": "应为带时区的时间（RFC 3339）",
    "datetime_from_date_parsing": "应为带时区的时间（RFC 3339）",
    "timezone_aware": "时间必须带时区",
    "date_type": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "uuid_parsing": "应为有效的标识",
    "json_invalid": "不是有效的 JSON",
    "extra_forbidden": "不允许的字段",
    "value_error": "{error}",
    "assertion_error": "{error}",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass
class Problem(Exception):
    """Raise from any layer; the handler turns it into problem+json."""

    status: int
    detail: str
    title: str | None = None
    type: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.resolved_title}"

    @property
    def resolved_title(self) -> str:
        if self.title:
            return self.title
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"

    def body(self, instance: str | None = None) -> dict[str, Any]:
        slug = self.resolved_title.lower().replace(" ", "-")
        out: dict[str, Any] = {
            "type": self.type or TYPE_BASE + slug,
            "title": self.resolved_title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            out["instance"] = instance
        if self.errors:
            out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return out


def not_found(detail: str = DEFAULT_DETAIL[404]) -> Problem:
    return Problem(404, detail)


def conflict(detail: str) -> Problem:
    return Problem(409, detail)


def forbidden(detail: str = DEFAULT_DETAIL[403]) -> Problem:
    return Problem(403, detail)


def invalid(field_name: str, message: str, detail: str = DEFAULT_DETAIL[422]) -> Problem:
    return Problem(422, detail, title="Validation Failed", errors=[FieldError(field_name, message)])


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "reporter", "phone")` → `reporter.phone`; list indexes as `[0]`."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "body"


def validation_message(error: dict[str, Any]) -> str:
    template = _VALIDATION_MESSAGES.get(error.get("type", ""))
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    if template is None:
        return "取值无效"
    try:
        return template.format(**ctx).removeprefix("Value error, ")
    except (KeyError, IndexError):
        return "取值无效"


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance=request.url.path if request else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves the service as problem+json, and a 500 never leaks internals."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [FieldError(field_path(e.get("loc", ())), validation_message(e)) for e in exc.errors()]
        return problem_response(
            Problem(422, DEFAULT_DETAIL[422], title="Validation Failed", errors=errors), request
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) and _is_chinese(exc.detail) else None
        problem = Problem(
            exc.status_code,
            detail or DEFAULT_DETAIL.get(exc.status_code, "请求无法处理。"),
            headers=dict(exc.headers) if exc.headers else None,
        )
        return problem_response(problem, request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, DEFAULT_DETAIL[500]), request)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not unreachable(exc):
            raise exc  # a fault of ours: the 500 above
        # The database is away (restarting, failing over): not the request's fault, and the same
        # request a little later succeeds. One line, not a traceback for every request of the outage.
        log.warning("the database is unreachable on %s %s: %s: %s", request.method, request.url.path,
                    type(exc).__name__, str(exc)[:200])
        return problem_response(Problem(503, DEFAULT_DETAIL[503], headers={"Retry-After": "5"}), request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(ConnectionError, on_database_error)


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)
