"""`GET /console`: the console of congress staff (人大常委会、代表工委) and administrators.

Staff run the platform here: the region's figures, suggestions and their assignment, hotspots and
supervision topics, the ranking and the units' board, voter-roll reconciliation, the audit log.
Administrators keep the directory, the QR codes and the calendar. Each section's pages live in
their own module (`console_staff_pages`, `console_scoring_pages`, `console_admin_pages`); this one
is the front door and the navigation they share.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from services.web.context import web_of
from services.web.signed_in import require
from services.web.work_home import NavItem
from services.web.work_session import CONSOLE_ROLES, WorkSession

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Section:
    role: str
    href: str
    label: str
    about: str


# In the order they are shown; a person holding both roles sees both lists.
SECTIONS = (
    Section("npc_staff", "/console/overview", "概览", "本地区反映、办理时效、满意度、共性事项和建议办理情况"),
    Section("npc_staff", "/console/suggestions", "代表建议", "按年度、状态、承办单位查看，交办、重点督办、往年结转"),
    Section("npc_staff", "/console/hotspots", "共性事项", "群众反映集中的问题，转为监督议题和重点督办建议或办结"),
    Section("npc_staff", "/console/scoring", "履职积分", "积分排名预览与发布、约谈名单、承办单位红黄黑榜、积分规则"),
    Section("npc_staff", "/console/elections", "选民登记核对", "与户籍、社保、流动人口信息比对，查看和导出核对结果"),
    Section("npc_staff", "/console/audit", "审计日志", "谁在什么时候做了什么、查看了什么"),
    Section("admin", "/console/directory", "名录", "行政区划、联络站、代表、承办单位、网格平台"),
    Section("admin", "/console/codes", "二维码", "生成、作废、打印联络站和代表的二维码"),
    Section("admin", "/console/calendar", "工作日历", "法定节假日和调休、各地区的办理时限规则"),
)


def sections_of(session: WorkSession) -> list[Section]:
    return [s for s in SECTIONS if s.role in session.roles]


def console_nav(request: Request, session: WorkSession) -> list[NavItem]:
    """The console's links for this person, the current one marked."""
    path = request.url.path
    return [NavItem(s.href, s.label, path == s.href or path.startswith(s.href + "/")) for s in sections_of(session)]


@router.get("/console")
async def console_home(request: Request) -> Response:
    session = await require(request, CONSOLE_ROLES)
    return web_of(request).pages.render(request, "console_home.html", private=True, posts=True, session=session,
                                        sections=sections_of(session), work_nav=console_nav(request, session))
