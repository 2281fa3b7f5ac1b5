"""The forms that keep the directory: add or change a liaison station or a deputy, add a region under
the one shown, register or change a grid platform (on the platforms page, under their health).

- `/console/directory/station?region=&id=`: a new station of the region, or the station `id`;
- `/console/directory/deputy?region=&id=`: a new deputy, or the deputy `id`; the stations to tick
  are the region's, and every station the deputy is at now that the administrator may see;
- `/console/directory/region?region=`: a region directly under the one shown;
- `/console/directory/platforms?region=&edit=`: the platforms, and the form for a new one or `edit`.

Each GET shows the form; each POST (CSRF token) checks it, sends it with the administrator's token
and answers 303 to the directory with a notice, or the form again with the service's words next to
the field and what was typed kept, except the write-only values (see `console_admin_forms`).
What a service refuses outright for being outside the administrator's region (403) is its page.
An id typed for a new entry that names an existing one is said, never overwritten: the PUTs would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import console_admin_common as common
from services.web import console_admin_directory as directory
from services.web import console_admin_forms as forms
from services.web import error_pages, words
from services.web.console_admin_calls import AdminCalls, DeputyDetail, GridCategory
from services.web.console_admin_common import DIRECTORY_TABS, ROLES
from services.web.context import Web, web_of
from services.web.signed_in import require
from services.web.upstreams import UpstreamError
from services.web.work_session import WorkSession

router = APIRouter(include_in_schema=False)

# Deputy form: its fields and up to STATION_CHOICES ticked stations.
DEPUTY_MOST_FIELDS = forms.STATION_CHOICES + 20
PLATFORM_MOST_FIELDS = 60


def _focus(request: Request, session: WorkSession) -> str:
    return directory.focus_of(request.query_params.get("region"), session.region)


def _back(region: str, **notice: str) -> str:
    return urlencode({k: v for k, v in {"region": region, **notice}.items() if v})


def _missing(request: Request, what: str, region: str) -> Response:
    return error_pages.error_page(
        request, 404, f"没有找到这个{what}", "它可能已被删除，或者不在您的管辖范围内。",
        actions=(error_pages.Action(f"/console/directory?{_back(region)}", "回到名录"),))


def _refused(exc: UpstreamError, fields: tuple[str, ...], aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's refusal of the form's values, by field; its detail at the top when it names none."""
    return forms.service_errors(exc.field_errors(), fields, aliases) or {"form": exc.detail or common.NOT_SAVED}


async def saved_notice(web: Web, calls: AdminCalls, params: Mapping[str, str]) -> tuple[str, str] | None:
    """The directory's notice after a save, and the id of the row it concerns, with the names as identity
    has them now (never as a link's query claims)."""
    sid, did, code = params.get("saved_station", ""), params.get("saved_deputy", ""), params.get("saved_region", "")
    if sid and forms.ENTITY_ID.match(sid):
        name = await calls.name_of("station", sid)
        return (f"已保存联络站“{name}”。", f"s-{sid}") if name is not None else None
    if did and forms.ENTITY_ID.match(did):
        name = await calls.name_of("deputy", did)
        return (f"已保存代表“{name}”。", f"d-{did}") if name is not None else None
    if code and forms.REGION_CODE.match(code):
        place = await common.place(web, code)
        return (f"已添加地区“{place.name}”（{place.code}）。", f"region-{code}") if place is not None else None
    return None


# ---- stations ------------------------------------------------------------------------------------


async def _station_page(request: Request, session: WorkSession, *, form: forms.StationForm | None = None,
                        errors: dict[str, str] | None = None, status: int = 200) -> Response:
    region = _focus(request, session)
    calls = common.calls(request, session)
    if form is None:
        wanted = request.query_params.get("id", "")
        station = await calls.station(wanted) if forms.ENTITY_ID.match(wanted) else None
        if wanted and station is None:
            return _missing(request, "联络站", region)
        form = forms.station_form_of(station, region)
    path = await common.place(web_of(request), region)
    return common.render(request, session, "console_admin_station.html", status=status, form=form,
                         errors=errors or {}, region=region, place=path, tabs=DIRECTORY_TABS,
                         crumbs=directory.crumbs(path, session.region), kinds=words.STATION_KIND,
                         field_order=forms.STATION_FIELDS, back=_back(region))


@router.get("/console/directory/station")
async def station_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _station_page(request, session)


@router.post("/console/directory/station")
async def save_station(request: Request) -> Response:
    session = await require(request, ROLES)
    posted = await common.posted(request)
    form = forms.read_station_form(posted.first)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _station_page(request, session, form=form, errors=errors, status=status)

    refused = common.csrf_error(request, posted.first)
    if refused:
        return await again({"form": refused}, status=400)
    errors = forms.check_station(form, session.region)
    if errors:
        return await again(errors)
    calls = common.calls(request, session)
    existing = await calls.station(form.id)
    if existing is None and form.editing:
        return await again({"id": "没有找到这个联络站，可能已被删除或不在您的管辖范围内。"}, status=404)
    if existing is not None and not form.editing:
        return await again({"id": forms.taken("联络站", form.id, existing.name)}, status=409)
    try:
        saved = await calls.save_station(form.id, forms.station_body(form))
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await again(_refused(exc, forms.STATION_FIELDS), status=exc.status)
        raise
    return RedirectResponse(f"/console/directory?{_back(saved.region_code, saved_station=saved.id)}#s-{saved.id}",
                            status_code=303)


# ---- deputies ------------------------------------------------------------------------------------


async def _deputy_page(request: Request, session: WorkSession, *, form: forms.DeputyForm | None = None,
                       current: DeputyDetail | None = None, errors: dict[str, str] | None = None,
                       status: int = 200) -> Response:
    region = _focus(request, session)
    calls = common.calls(request, session)
    if form is None:
        wanted = request.query_params.get("id", "")
        current = await calls.deputy(wanted) if forms.ENTITY_ID.match(wanted) else None
        if wanted and current is None:
            return _missing(request, "代表", region)
        form = forms.deputy_form_of(current, region)
    elif form.editing and current is None and forms.ENTITY_ID.match(form.id):
        current = await calls.deputy(form.id)
    (listed, more), path = await asyncio.gather(calls.all_stations(region, most=forms.STATION_CHOICES),
                                                common.place(web_of(request), region))
    shown = {s.id for s in listed}
    elsewhere = [s for s in (current.station_ids if current else []) if s not in shown]
    found = await asyncio.gather(*(calls.station(s) for s in elsewhere))
    choices, hidden = forms.station_choices(listed, dict(zip(elsewhere, found, strict=True)))
    return common.render(request, session, "console_admin_deputy.html", status=status, form=form,
                         errors=errors or {}, region=region, place=path, tabs=DIRECTORY_TABS,
                         crumbs=directory.crumbs(path, session.region), levels=words.LEVEL, choices=choices,
                         more=more, hidden=hidden, phone_masked=current.phone_masked if current else None,
                         field_order=forms.DEPUTY_FIELDS, back=_back(region))


@router.get("/console/directory/deputy")
async def deputy_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _deputy_page(request, session)


@router.post("/console/directory/deputy")
async def save_deputy(request: Request) -> Response:
    session = await require(request, ROLES)
    posted = await common.posted(request, most=DEPUTY_MOST_FIELDS)
    form = forms.read_deputy_form(posted.first, posted.every)
    calls = common.calls(request, session)
    current: DeputyDetail | None = None

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _deputy_page(request, session, form=form, current=current, errors=errors, status=status)

    refused = common.csrf_error(request, posted.first)
    if refused:
        return await again({"form": refused}, status=400)
    # Identity's record as it is now, not as the form remembers it: whether a phone is on file, the
    # stations the administrator may not see, what the form does not show.
    current = await calls.deputy(form.id) if forms.ENTITY_ID.match(form.id) else None
    if current is None and form.editing:
        return await again({"id": "没有找到这位代表，可能已被删除或不在您的管辖范围内。"}, status=404)
    if current is not None and not form.editing:
        taken = forms.taken("代表", form.id, current.name)
        current = None  # not the deputy this form is about: its stations and phone are not shown
        return await again({"id": taken}, status=409)
    errors = forms.check_deputy(form, session.region, phone_on_file=bool(current and current.phone_masked))
    if errors:
        return await again(errors)
    dropped = [s for s in (current.station_ids if current else []) if s not in form.station_ids]
    visible = await asyncio.gather(*(calls.station(s) for s in dropped))
    kept = [s for s, seen in zip(dropped, visible, strict=True) if seen is None]
    try:
        saved = await calls.save_deputy(form.id, forms.deputy_body(form, current, kept))
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await again(_refused(exc, forms.DEPUTY_FIELDS), status=exc.status)
        raise
    return RedirectResponse(f"/console/directory?{_back(saved.region_code, saved_deputy=saved.id)}#d-{saved.id}",
                            status_code=303)


# ---- regions -------------------------------------------------------------------------------------


async def _region_page(request: Request, session: WorkSession, *, form: forms.RegionForm | None = None,
                       errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web = web_of(request)
    parent = _focus(request, session)
    path, under = await asyncio.gather(common.place(web, parent), common.children(web, parent))
    if parent and path is None:
        return _missing(request, "地区", session.region)
    return common.render(request, session, "console_admin_region.html", status=status,
                         form=form or forms.RegionForm(), errors=errors or {}, region=parent, place=path,
                         crumbs=directory.crumbs(path, session.region), tabs=DIRECTORY_TABS, under=under,
                         rule=forms.child_rule(parent), field_order=forms.REGION_FIELDS, back=_back(parent))


@router.get("/console/directory/region")
async def region_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _region_page(request, session)


@router.post("/console/directory/region")
async def add_region(request: Request) -> Response:
    session = await require(request, ROLES)
    posted = await common.posted(request)
    form = forms.read_region_form(posted.first)
    web = web_of(request)
    parent = _focus(request, session)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _region_page(request, session, form=form, errors=errors, status=status)

    refused = common.csrf_error(request, posted.first)
    if refused:
        return await again({"form": refused}, status=400)
    path = await common.place(web, parent)
    if parent and path is None:
        return _missing(request, "地区", session.region)
    errors = forms.check_region(form, parent, session.region)
    if errors:
        return await again(errors)
    # Read past the cache: identity's PUT renames a region that exists, and this form only adds.
    existing = await web.upstreams.region(form.code)
    if existing is not None:
        return await again({"code": f"编码 {form.code} 已经是“{existing.name}”的编码，请换一个。"}, status=409)
    try:
        await common.calls(request, session).save_region(form.code, form.name, parent or None)
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await again(_refused(exc, forms.REGION_FIELDS, {"parent_code": "code"}), status=exc.status)
        raise
    common.forget_region(web, form.code, path)
    return RedirectResponse(f"/console/directory?{_back(parent, saved_region=form.code)}#region-{form.code}",
                            status_code=303)


# ---- grid platforms ------------------------------------------------------------------------------


async def _grid_categories(web: Web, calls: AdminCalls) -> list[GridCategory]:
    found = await web.public.get(("grid-categories",), calls.grid_categories)
    return list(found)  # type: ignore[call-overload]


async def _platforms_page(request: Request, session: WorkSession, *, form: forms.PlatformForm | None = None,
                          errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web = web_of(request)
    params = request.query_params
    region = _focus(request, session)
    calls = common.calls(request, session)
    path, platforms, categories = await asyncio.gather(common.place(web, region), calls.platforms(),
                                                       _grid_categories(web, calls))
    codes = [c.code for c in categories]
    if form is None:
        wanted = params.get("edit", "")
        platform = next((p for p in platforms if p.id == wanted and forms.editable(p, session.region)), None)
        form = forms.platform_form_of(platform, region, codes)
    saved = params.get("saved", "")
    saved_name = next((p.name for p in platforms if p.id == saved), "")
    return common.render(request, session, "console_admin_platforms.html", status=status, region=region,
                         place=path, crumbs=directory.crumbs(path, session.region), tabs=DIRECTORY_TABS,
                         rows=directory.platform_rows(platforms, region, common.now()), form=form,
                         errors=errors or {}, categories=categories, transports=directory.TRANSPORT,
                         field_order=forms.PLATFORM_FIELDS, saved=saved if saved_name else "", saved_name=saved_name,
                         may_edit={p.id for p in platforms if forms.editable(p, session.region)},
                         min_secret=forms.MIN_SECRET, max_api_key=forms.MAX_API_KEY)


@router.get("/console/directory/platforms")
async def platforms_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _platforms_page(request, session)


@router.post("/console/directory/platforms")
async def save_platform(request: Request) -> Response:
    session = await require(request, ROLES)
    posted = await common.posted(request, most=PLATFORM_MOST_FIELDS)
    form, keys = forms.read_platform_form(posted.first, posted.every)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _platforms_page(request, session, form=form, errors=errors, status=status)

    refused = common.csrf_error(request, posted.first)
    if refused:
        return await again({"form": refused}, status=400)
    calls = common.calls(request, session)
    grid = {c.code: c.label for c in await _grid_categories(web_of(request), calls)}
    errors = forms.check_platform(form, keys, session.region, grid)
    if errors:
        return await again(errors)
    existing = await calls.platform(form.id)
    if existing is None and form.editing:
        return await again({"id": "没有找到这个网格平台，可能不在您的管辖范围内。"}, status=404)
    if existing is not None and not form.editing:
        return await again({"id": forms.taken("网格平台", form.id, existing.name)}, status=409)
    try:
        saved = await calls.save_platform(form.id, forms.platform_body(form, keys, grid))
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await again(common.refused(exc, forms.platform_field), status=exc.status)
        raise
    back = _back(_focus(request, session), saved=saved.id)
    return RedirectResponse(f"/console/directory/platforms?{back}#p-{saved.id}", status_code=303)
