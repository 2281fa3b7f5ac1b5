"""`GET /work`: the signed-in workbench's front door, which sends each person to their role's pages.

Deputies land on their inbox, station staff on their region's open reports, units on the
suggestions assigned to them. Someone holding several of these roles chooses; congress staff and
administrators are sent to the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web.context import web_of
from services.web.signed_in import require
from services.web.work_session import CONSOLE_ROLES, WORK_ROLES, WorkSession

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Section:
    role: str
    href: str
    label: str


# The first page of each role, in the order a person holding several sees them.
SECTIONS = (
    Section("deputy", "/work/deputy", "我的反映件"),
    Section("station_staff", "/work/station", "本地区反映"),
    Section("unit", "/work/unit", "承办建议"),
)


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    current: bool


def nav(request: Request, session: WorkSession, extra: tuple[tuple[str, str, str], ...] = ()) -> list[NavItem]:
    """The workbench's links for this person: each role's sections, then `extra` (role, href, label)
    for pages within a role. The current page is marked."""
    path = request.url.path
    items = [(s.href, s.label) for s in SECTIONS if s.role in session.roles]
    items += [(href, label) for role, href, label in extra if role in session.roles]
    return [NavItem(href, label, path == href or path.startswith(href + "/")) for href, label in items]


@router.get("/work")
async def work_home(request: Request) -> Response:
    session = await require(request, WORK_ROLES | CONSOLE_ROLES)
    sections = [s for s in SECTIONS if s.role in session.roles]
    if not sections:
        return RedirectResponse("/console", status_code=303)
    if len(sections) == 1:
        return RedirectResponse(sections[0].href, status_code=303)
    return web_of(request).pages.render(request, "work_home.html", private=True, posts=True, session=session,
                                        sections=sections, work_nav=nav(request, session))
