"""What every deputy page shares: the role gate, the workbench links, the answer's frame, the form
checks (CSRF, idempotency keys) and the deputy's calls."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from services.web.context import web_of
from services.web.deputy_calls import DeputyCalls
from services.web.signed_in import require
from services.web.work_home import NavItem, nav
from services.web.work_session import WorkSession

DEPUTY = ("deputy",)
# The deputy's sections besides the inbox (which the workbench lists for every deputy).
EXTRA_NAV = (("deputy", "/work/deputy/suggestions", "我的建议"), ("deputy", "/work/deputy/year", "履职积分"))
_KEY = re.compile(r"^[0-9a-f]{32}$")
# A suggestion's text may be 20,000 characters: 60 KB in UTF-8, within the web tier's 64 KB form limit.
FORM_PART_BYTES = 64 * 1024
CSRF_MESSAGE = "页面打开的时间太长了，为了安全请再提交一次。"
CSRF_BROKEN = "为了安全，请再提交一次（如果一直出现这个提示，请允许浏览器保存 Cookie）。"


async def signed_in(request: Request, roles: tuple[str, ...] = DEPUTY) -> tuple[WorkSession, DeputyCalls]:
    session = await require(request, roles)
    return session, DeputyCalls(web_of(request).upstreams, session)


def deputy_nav(request: Request, session: WorkSession) -> list[NavItem]:
    """The workbench's links, with only the most specific one marked as the current page (a report
    belongs to the inbox)."""
    items = nav(request, session, EXTRA_NAV)
    path = request.url.path
    current = [i for i in items if i.current] or [i for i in items
                                                   if i.href == "/work/deputy" and path.startswith("/work/reports/")]
    best = max(current, key=lambda i: len(i.href), default=None)
    return [replace(i, current=i is best) for i in items]


def render(request: Request, session: WorkSession, template: str, *, status: int = 200, **context: Any) -> Response:
    """A deputy's page: private (never kept by any cache) and with the CSRF token its forms carry."""
    return web_of(request).pages.render(request, template, status=status, private=True, posts=True,
                                        session=session, work_nav=deputy_nav(request, session), **context)


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=200, max_part_size=FORM_PART_BYTES)


def csrf_error(request: Request, form: FormData) -> str | None:
    """None when the form's CSRF token is good; otherwise what to tell the person."""
    valid, expired = web_of(request).pages.csrf_ok(request, str(form.get("csrf", "")) or None)
    if valid:
        return None
    return CSRF_MESSAGE if expired else CSRF_BROKEN


def form_key(form: FormData | None = None) -> str:
    """The form's idempotency key (a resend of the same form acts once), or a new one for a new form."""
    key = str(form.get("idem", "")) if form is not None else ""
    return key if _KEY.match(key) else uuid.uuid4().hex


def text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""
