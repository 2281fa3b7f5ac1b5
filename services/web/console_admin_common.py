"""What every administrator's console page shares: the role gate, the calls with the administrator's
token, rendering with the CSRF token and the console's links, reading a form, and the region tree
(public, cached a minute per replica, and forgotten here when this replica adds a region)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from services.web import console_admin_directory as directory
from services.web import console_admin_forms as forms
from services.web.console_admin_calls import AdminCalls
from services.web.console_home import console_nav
from services.web.context import Web, web_of
from services.web.upstreams import Region, RegionPath, UpstreamError
from services.web.words import SHANGHAI
from services.web.work_session import WorkSession

ROLES = ("admin",)
CSRF_EXPIRED = "页面打开的时间太长了，为了安全请再提交一次。"
CSRF_BROKEN = "为了安全，请再提交一次（如果一直出现这个提示，请允许浏览器保存 Cookie）。"
NOT_SAVED = "保存没有成功，请检查后再试。"
# Places under the one shown whose own places are read for the tree: a province's cities, not more.
TREE_MAX = 60
DIRECTORY_TABS = (("/console/directory", "地区、联络站和代表"), ("/console/directory/units", "承办单位"),
                  ("/console/directory/platforms", "网格平台"))
# Largest upload of the calendar's file field, read whole and checked by the calendar's own rules.
MAX_PART_BYTES = 64 * 1024


def calls(request: Request, session: WorkSession) -> AdminCalls:
    return AdminCalls(web_of(request).upstreams, session)


def refused(exc: UpstreamError, field_of: Callable[[str], str], *, top: str = "form",
            fallback: str = NOT_SAVED) -> dict[str, str]:
    """A service's refusal of a form's values by the form's fields, the first message for each; when it names
    no field, its detail (or `fallback`) on `top`, so the person always sees why."""
    return forms.errors_by_field(exc.field_errors(), field_of) or {top: exc.detail or fallback}


def render(request: Request, session: WorkSession, template: str, *, status: int = 200, **context: Any) -> Response:
    """An administrator's page: private, with the CSRF token its forms carry and the console's links."""
    return web_of(request).pages.render(request, template, status=status, private=True, posts=True,
                                        session=session, work_nav=console_nav(request, session), **context)


def csrf_error(request: Request, fields: Mapping[str, Any]) -> str | None:
    token = fields.get("csrf")
    valid, expired = web_of(request).pages.csrf_ok(request, token if isinstance(token, str) and token else None)
    return None if valid else CSRF_EXPIRED if expired else CSRF_BROKEN


@dataclass
class Posted:
    """A form as sent: the first value of each text field, every value of each, and the files' contents."""

    first: dict[str, str] = field(default_factory=dict)
    every: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


async def posted(request: Request, *, files: int = 0, most: int = 20, file_bytes: int = MAX_PART_BYTES) -> Posted:
    """The form, bounded: `most` fields (a deputy's station checkboxes need more than the usual 20)."""
    try:
        form = await request.form(max_files=files, max_fields=most, max_part_size=MAX_PART_BYTES)
    except MultiPartException:
        return Posted()
    out = Posted()
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if value.filename:
                out.files[name] = await value.read(file_bytes + 1)
        else:
            out.first.setdefault(name, value)
            out.every.setdefault(name, []).append(value)
    await form.close()
    return out


def now() -> datetime:
    return datetime.now(SHANGHAI)


# ---- the region tree, shared by the directory, the codes pages and the forms ----------------------


async def children(web: Web, code: str) -> list[Region]:
    code = directory.region_code_of(code)
    found = await web.public.get(("regions", code), lambda: web.upstreams.regions(code or None))
    return list(found)  # type: ignore[call-overload]


async def place(web: Web, code: str) -> RegionPath | None:
    if not code:
        return None
    code = directory.region_code_of(code)
    found = await web.public.get(("region-path", code), lambda: web.upstreams.region(code))
    return found  # type: ignore[return-value]


async def tree(web: Web, focus: str) -> tuple[RegionPath | None, list[directory.TreeNode]]:
    path, under = await asyncio.gather(place(web, focus), children(web, focus))
    opened = [c for c in under if c.has_children][:TREE_MAX]
    below = await asyncio.gather(*(children(web, c.code) for c in opened))
    return path, directory.tree(under, {c.code: b for c, b in zip(opened, below, strict=True)})


def forget_region(web: Web, code: str, parent: RegionPath | None) -> None:
    """A region was just added under `parent`: this replica's tree shows it at once, not a minute later.

    The parent's list of places gains it; the grandparent's list says whether the parent has places
    under it; a look-up of the new code may have been cached as missing.
    """
    web.public.forget(("region-path", code))
    web.public.forget(("regions", parent.code if parent else ""))
    if parent is not None:
        web.public.forget(("regions", parent.parent_code or ""))
        web.public.forget(("region-path", parent.code))
