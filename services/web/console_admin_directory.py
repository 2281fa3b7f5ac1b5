"""The directory pages' view models: where an administrator is looking, the region tree, stations,
deputies, handling units and the grid platforms' health. Pure: the pages fetch, these shape.

An administrator's region is a code prefix ("" for everywhere). A region asked for in the URL is
kept only when it lies inside it; anything else falls back to the administrator's own region, so a
link can never show a page the services would refuse (they refuse anyway; this keeps the page whole).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode

from services.web import words
from services.web.console_admin_calls import DeputyRow, Platform, StationRow
from services.web.upstreams import Region, RegionPath, Unit

REGION = re.compile(r"^[0-9A-Za-z-]{2,40}$")
CURSOR = re.compile(r"^[A-Za-z0-9_=-]{1,400}$")
UNIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UNIT_REGION = re.compile(r"^\d{6,12}$")
PAGE_SIZE = 20
UNITS_PAGE_SIZE = 30
MAX_Q = 50


def within(session_region: str, code: str) -> bool:
    """Whether `code` is the administrator's region or inside it."""
    return code.startswith(session_region)


def region_code_of(scope: str) -> str:
    """The region a scope names, as identity codes regions: a province's or city's scope is the
    start of its codes (`33`, `3301`), its own code is six digits (330000, 330100)."""
    return scope.ljust(6, "0") if scope.isdigit() and len(scope) < 6 else scope


def focus_of(value: str | None, session_region: str) -> str:
    """The region to show: the one asked for when it is inside the administrator's, else their own."""
    value = (value or "").strip()
    if value and REGION.match(value) and within(session_region, value):
        return value
    return session_region


def _cursor(value: str | None) -> str | None:
    return value if value and CURSOR.match(value) else None


@dataclass(frozen=True)
class DirectoryQuery:
    """What `/console/directory` shows: a region, a name filter, and where each list's page starts."""

    region: str = ""
    q: str = ""
    stations_after: str | None = None
    deputies_after: str | None = None

    def query(self, **changes: str | None) -> str:
        chosen = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [("region", chosen.region), ("q", chosen.q), ("stations_after", chosen.stations_after),
                 ("deputies_after", chosen.deputies_after)]
        return urlencode([(k, v) for k, v in pairs if v])


def read_query(params: Mapping[str, str], session_region: str) -> DirectoryQuery:
    q = (params.get("q") or "").strip()[:MAX_Q]
    return DirectoryQuery(region=focus_of(params.get("region"), session_region), q=q,
                          stations_after=_cursor(params.get("stations_after")),
                          deputies_after=_cursor(params.get("deputies_after")))


# ---- the region tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crumb:
    code: str
    name: str
    link: bool  # inside the administrator's region: a place they may open


def crumbs(path: RegionPath | None, session_region: str) -> list[Crumb]:
    """The way down to the region shown; the places above the administrator's own are named, not linked."""
    if path is None:
        return []
    places = path.path or [Region(code=path.code, name=path.name)]
    return [Crumb(r.code, r.name, within(session_region, r.code)) for r in places]


@dataclass(frozen=True)
class TreeNode:
    code: str
    name: str
    has_children: bool
    children: tuple[Region, ...] = ()


def tree(children: Sequence[Region], grandchildren: Mapping[str, Sequence[Region]]) -> list[TreeNode]:
    """The regions right under the one shown, each with the ones under it (a <details> to open)."""
    return [TreeNode(r.code, r.name, r.has_children, tuple(grandchildren.get(r.code, ()))) for r in children]


def region_names(path: RegionPath | None, nodes: Iterable[TreeNode]) -> dict[str, str]:
    """Code → name of every region the page already knows, to name a row's region instead of its code."""
    names = {r.code: r.name for r in (path.path if path else [])}
    if path is not None:
        names[path.code] = path.name
    for node in nodes:
        names[node.code] = node.name
        names.update({c.code: c.name for c in node.children})
    return names


# ---- stations and deputies -----------------------------------------------------------------------


def station_kind(kind: str) -> str:
    return words.STATION_KIND.get(kind, kind)


def deputy_level(level: str) -> str:
    return words.LEVEL.get(level, level)


def deputy_stations(deputy: DeputyRow) -> str:
    return "、".join(s.name for s in deputy.stations) or "—"


STATION_HEADERS = ("编号", "名称", "类型", "地区编码", "二维码")
DEPUTY_HEADERS = ("编号", "姓名", "级别", "地区编码", "所在联络站", "二维码")


def _has_code(code: str | None) -> str:
    # A live code files reports in its owner's name: a spreadsheet that travels says whether there is one.
    return "已发码" if code else "未发码"


def station_export(rows: Sequence[StationRow]) -> list[list[str]]:
    return [[s.id, s.name, station_kind(s.kind), s.region_code, _has_code(s.code)] for s in rows]


def deputy_export(rows: Sequence[DeputyRow]) -> list[list[str]]:
    return [[d.id, d.name, deputy_level(d.level), d.region_code, deputy_stations(d), _has_code(d.code)]
            for d in rows]


# ---- grid platforms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformHealth:
    platform: Platform
    state: str  # ok | waiting | failing
    label: str
    detail: str
    transport: str


TRANSPORT = {"http": "HTTP 接口", "nats": "消息总线（NATS）", "open311": "Open311（GeoReport v2）"}


def concerns(platform: Platform, region: str) -> bool:
    """A platform serving part of the region, or a wider region holding it."""
    return any(p.startswith(region) or region.startswith(p) for p in platform.region_prefixes)


def health(platform: Platform, now: datetime) -> PlatformHealth:
    """How the platform is doing, in words: sending normally, waiting to try again, or failing now."""
    transport = TRANSPORT.get(platform.transport, platform.transport)
    if platform.failures <= 0:
        detail = f"{platform.queued} 件工单等待发送" if platform.queued else "没有积压的工单"
        return PlatformHealth(platform, "ok", "正常", detail, transport)
    retry_at = words.parse_time(platform.retry_at)
    queued = f"，{platform.queued} 件工单等待发送" if platform.queued else ""
    if retry_at is not None and retry_at > now:
        return PlatformHealth(platform, "waiting", f"连续失败 {platform.failures} 次",
                              f"暂停发送，{words.datetime_cn(retry_at)} 再试{queued}", transport)
    return PlatformHealth(platform, "failing", f"连续失败 {platform.failures} 次", f"正在重新发送{queued}", transport)


_ORDER = {"failing": 0, "waiting": 1, "ok": 2}


def platform_rows(platforms: Iterable[Platform], region: str, now: datetime) -> list[PlatformHealth]:
    """The region's platforms, the ones in trouble first."""
    rows = [health(p, now) for p in platforms if not region or concerns(p, region)]
    return sorted(rows, key=lambda h: (_ORDER[h.state], h.platform.name, h.platform.id))


# ---- handling units ----------------------------------------------------------------------------


@dataclass
class UnitForm:
    """The unit form as typed: kept whole when it comes back with a problem."""

    id: str = ""
    name: str = ""
    region_code: str = ""
    parent_id: str = ""
    editing: bool = False


UNIT_FIELDS = ("form", "id", "name", "region_code", "parent_id")


def read_unit_form(form: Mapping[str, str]) -> UnitForm:
    return UnitForm(id=form.get("id", "").strip(), name=" ".join(form.get("name", "").split()),
                    region_code=form.get("region_code", "").strip(), parent_id=form.get("parent_id", "").strip(),
                    editing=form.get("editing") == "1")


def unit_form_of(unit: Unit | None, parent_id: str | None, region: str) -> UnitForm:
    if unit is None:
        # A new unit is most often of the region being looked at.
        return UnitForm(region_code=region if UNIT_REGION.match(region) else "")
    return UnitForm(id=unit.id, name=unit.name, region_code=unit.region_code, parent_id=parent_id or "",
                    editing=True)


def check_unit(form: UnitForm, session_region: str, parents: Iterable[str]) -> dict[str, str]:
    """Chinese messages by field; empty when the form may be sent to the service."""
    errors: dict[str, str] = {}
    if not form.id:
        errors["id"] = "请填写单位编号。"
    elif not UNIT_ID.match(form.id):
        errors["id"] = "单位编号只能用字母、数字、短横线和下划线，最多 64 个字符。"
    if not form.name:
        errors["name"] = "请填写单位名称。"
    elif len(form.name) > 200:
        errors["name"] = f"单位名称最多 200 个字，现在有 {len(form.name)} 个字。"
    if not UNIT_REGION.match(form.region_code):
        errors["region_code"] = "地区编码是 6 到 12 位数字，例如 330106。"
    elif not within(session_region, form.region_code):
        errors["region_code"] = "这个地区不在您的管辖范围内。"
    if form.parent_id:
        if form.parent_id == form.id:
            errors["parent_id"] = "上级单位不能是它自己。"
        elif form.parent_id not in set(parents):
            errors["parent_id"] = "请从列表中选择上级单位。"
    return errors


def unit_body(form: UnitForm) -> dict[str, str | None]:
    return {"name": form.name, "region_code": form.region_code, "parent_id": form.parent_id or None}


def unit_field(service_field: str) -> str:
    """The form's field for a field the service named (`body.name`, `name` …); the form's top otherwise."""
    name = service_field.rsplit(".", 1)[-1]
    return name if name in UNIT_FIELDS else "form"


@dataclass(frozen=True)
class UnitsPage:
    items: list[Unit]
    page: int
    pages: int
    total: int
    names: dict[str, str] = field(default_factory=dict)


def units_page(units: Sequence[Unit], page_text: str | None) -> UnitsPage:
    ordered = sorted(units, key=lambda u: (u.region_code, u.name, u.id))
    pages = max(1, -(-len(ordered) // UNITS_PAGE_SIZE))
    page = int(page_text) if page_text and page_text.isdigit() else 1
    page = min(max(page, 1), pages)
    start = (page - 1) * UNITS_PAGE_SIZE
    return UnitsPage(ordered[start:start + UNITS_PAGE_SIZE], page, pages, len(ordered),
                     {u.id: u.name for u in ordered})
