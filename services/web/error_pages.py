"""Errors as pages: a person never sees JSON, a stack trace or an English status line.

Each page says what happened and what to do next, in Chinese: a wrong address offers the report
page and the receipt lookup, a flood limit says when to try again, a service that did not answer
offers to try again (a report form keeps its key, so sending it again cannot file it twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web.context import web_of
from services.web.signed_in import NotAllowed, SignInNeeded, forget, here
from services.web.upstreams import Unavailable, UpstreamError
from services.web.work_session import login_path

log = logging.getLogger("minyi.web")


@dataclass(frozen=True)
class Action:
    href: str
    label: str


HOME_ACTIONS = (Action("/report", "按地区反映问题"), Action("/r", "查询反映进度"))


def error_page(request: Request, status: int, title: str, message: str, *,
               actions: tuple[Action, ...] = HOME_ACTIONS, retry_after: int | None = None,
               retry: bool = False) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return web_of(request).pages.render(
        request, "error.html", status=status, headers=headers, title=title, message=message,
        actions=actions, retry_after=retry_after, retry=retry, status_code=status)


def not_found_page(request: Request) -> Response:
    return error_page(request, 404, "没有找到这个页面",
                      "地址可能输错了，或者页面已经不存在。您可以按地区反映问题，或者用回执码查询进度。")


def flood_page(request: Request, retry_after: int | None) -> Response:
    wait = retry_after or 60
    return error_page(request, 429, "操作太频繁了",
                      f"为了防止恶意提交，同一网络短时间内只能提交有限次数。请 {wait} 秒后再试，您填写的内容不会丢失"
                      f"（请不要关闭页面，稍后再点一次提交）。", retry_after=wait, actions=())


def unavailable_page(request: Request, *, posting: bool = False) -> Response:
    message = ("系统暂时没有响应，您的反映还没有提交成功。请稍等片刻，返回上一页再点一次提交；"
               "同一份表单重复提交也只会登记一次。") if posting else "系统暂时没有响应，请稍等片刻再刷新页面。"
    return error_page(request, 503, "暂时无法完成", message, retry_after=30, retry=not posting)


ROLE_NAMES = {"deputy": "人大代表", "station_staff": "联络站工作人员", "unit": "承办单位",
              "npc_staff": "人大常委会工作人员", "admin": "系统管理员"}


def sign_in_again(request: Request, next_path: str) -> Response:
    """To the sign-in, and back to `next_path` after; the session this browser had is ended."""
    forget(request)
    return RedirectResponse(login_path(next_path), status_code=303, headers={"Cache-Control": "no-store"})


def came_from(request: Request) -> str:
    """The page a form was sent from (its Referer, when it is this site's), else the workbench.
    A POST cannot be repeated after signing in; the person comes back to the form instead."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/work"
    return (referer.path + (f"?{referer.query}" if referer.query else "")) or "/work"


def not_allowed_page(request: Request, roles: tuple[str, ...]) -> Response:
    who = "、".join(ROLE_NAMES.get(r, r) for r in roles)
    return error_page(request, 403, "没有权限打开这个页面",
                      f"这个页面供{who}使用。如果您有这个身份，请退出后用相应的账号登录。",
                      actions=(Action("/work", "回到我的工作台"),))


def upstream_failure(request: Request, exc: Exception, *, posting: bool = False) -> Response:
    """The page for a service's refusal or silence that the handler did not turn into a form message."""
    if isinstance(exc, UpstreamError):
        if exc.status == 401:
            # The token the session carried is no longer taken (expired, revoked, keys rotated).
            return sign_in_again(request, here(request) if request.method == "GET" else came_from(request))
        if exc.status == 403:
            return error_page(request, 403, "没有权限", exc.detail or "您的账号无权查看或办理这一项。",
                              actions=(Action("/work", "回到我的工作台"),))
        if exc.status == 429:
            return flood_page(request, exc.retry_after)
        if exc.status == 404:
            return not_found_page(request)
        if exc.status < 500:
            return error_page(request, 400 if exc.status != 409 else 409, "无法完成这一步",
                              exc.detail or "提交的内容有误，请返回检查后再试。")
    if isinstance(exc, Unavailable):
        log.warning("page %s: %s", _route(request), exc)
    return unavailable_page(request, posting=posting)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return not_found_page(request)
        if exc.status_code == 405:
            return error_page(request, 405, "无法这样打开这个页面", "请从首页或二维码重新进入。")
        return error_page(request, exc.status_code, "无法完成这一步", "请返回上一页再试一次。")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_page(request, 400, "地址或参数有误", "请检查网址，或者从首页重新进入。")

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        return sign_in_again(request, exc.next_path)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return not_allowed_page(request, exc.roles)

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, exc: UpstreamError) -> Response:
        return upstream_failure(request, exc, posting=request.method == "POST")

    @app.exception_handler(Unavailable)
    async def upstream_unavailable(request: Request, exc: Unavailable) -> Response:
        return upstream_failure(request, exc, posting=request.method == "POST")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("page %s failed", _route(request))
        return error_page(request, 500, "页面出错了", "系统出了点问题，我们会尽快处理。请稍后再试。", retry=True)
