"""The administrator's console pages: the directory, QR codes and the calendar.

- `/console/directory`: the region tree (each place a <details> holding the places under it), the
  region's stations and deputies with their stations, paged by identity, as XLSX or CSV too, with
  links to add or change each (the forms, and the grid platforms' page, are `console_admin_keep`);
  `/console/directory/units`: the handling units and a form to add or change one.
- `/console/codes`: the stations and deputies of a region with their QR codes, to issue, issue
  again or revoke; `/console/codes/sheet`: every code of a region on A4 sheets to print.
- `/console/calendar`: a year's holidays and make-up working days, loading a year, and the
  regions' own working-day limits.

Everything is read and changed through the services' APIs with the administrator's token, so the
pages show and do what the services allow that administrator, nothing wider. Every action is a form
POST answered with 303 and a notice, or the same page with the service's words next to the field and
what was typed kept; an action that throws away a printed code asks first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import console_admin_calendar as cal
from services.web import console_admin_codes as codes
from services.web import console_admin_common as common
from services.web import console_admin_directory as directory
from services.web import console_admin_forms as forms
from services.web import console_admin_keep as keep
from services.web import error_pages, unit_export
from services.web.console_admin_calls import AdminCalls, CalendarYear, ClockRule
from services.web.console_admin_common import DIRECTORY_TABS, ROLES
from services.web.console_admin_common import calls as _calls
from services.web.console_admin_common import children as _children
from services.web.console_admin_common import csrf_error as _csrf_error
from services.web.console_admin_common import now as _now
from services.web.console_admin_common import place as _place
from services.web.console_admin_common import render as _render
from services.web.console_admin_common import tree as _tree
from services.web.context import Web, web_of
from services.web.signed_in import require
from services.web.upstreams import Unavailable, UpstreamError
from services.web.work_session import WorkSession

log = logging.getLogger("minyi.web.console.admin")

router = APIRouter(include_in_schema=False)
# The forms that keep the directory (stations, deputies, regions, grid platforms) live in their own module.
router.include_router(keep.router)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _fields(request: Request, *, files: int = 0) -> tuple[dict[str, str], dict[str, bytes]]:
    """The form's text fields (the first of each name) and its files' contents by field."""
    form = await common.posted(request, files=files, file_bytes=cal.MAX_FILE_BYTES)
    return form.first, form.files


# ---- directory: regions, stations and deputies --------------------------------------------------


@router.get("/console/directory")
async def directory_page(request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    query = directory.read_query(request.query_params, session.region)
    calls = _calls(request, session)
    (path, nodes), stations, deputies, saved = await asyncio.gather(
        _tree(web, query.region),
        calls.stations(query.region, q=query.q, after=query.stations_after, limit=directory.PAGE_SIZE),
        calls.deputies(query.region, q=query.q, after=query.deputies_after, limit=directory.PAGE_SIZE),
        keep.saved_notice(web, calls, request.query_params))
    return _render(request, session, "console_admin_directory.html", query=query, place=path, nodes=nodes,
                   crumbs=directory.crumbs(path, session.region), stations=stations, deputies=deputies,
                   names=directory.region_names(path, nodes), d=directory, tabs=DIRECTORY_TABS,
                   missing=bool(query.region) and path is None, saved=saved,
                   child_rule=forms.child_rule(query.region) if path is not None or not query.region else None)


@router.get("/console/directory/export.{extension}")
async def directory_export(extension: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if extension not in ("csv", "xlsx"):
        return error_pages.not_found_page(request)
    query = directory.read_query(request.query_params, session.region)
    calls = _calls(request, session)
    if request.query_params.get("what") == "deputies":
        deputies, _ = await calls.all_deputies(query.region, query.q)
        headers, rows, sheet, name = directory.DEPUTY_HEADERS, directory.deputy_export(deputies), "代表", "deputies"
    else:
        stations, _ = await calls.all_stations(query.region, query.q)
        headers, rows, sheet, name = directory.STATION_HEADERS, directory.station_export(stations), "联络站", "stations"
    data = unit_export.to_csv(headers, rows) if extension == "csv" else unit_export.to_xlsx(headers, rows, sheet=sheet)
    filename = f"{name}-{query.region or 'all'}-{_now():%Y%m%d}.{extension}"
    return Response(data, media_type="text/csv; charset=utf-8" if extension == "csv" else XLSX, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


# ---- directory: handling units ------------------------------------------------------------------


async def _units_page(request: Request, session: WorkSession, *, form: directory.UnitForm | None = None,
                      errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web = web_of(request)
    params = request.query_params
    region = directory.focus_of(params.get("region"), session.region)
    calls = _calls(request, session)
    path, units, choices = await asyncio.gather(_place(web, region), calls.units(region), calls.units(session.region))
    page = directory.units_page(units, params.get("page"))
    if form is None:
        editing = params.get("edit", "")
        unit = next((u for u in choices if u.id == editing), None) if editing else None
        detail = await calls.unit(unit.id) if unit is not None else None
        form = directory.unit_form_of(unit, detail.parent_id if detail else None, region)
    saved = params.get("saved", "")
    return _render(request, session, "console_admin_units.html", status=status, region=region, place=path,
                   crumbs=directory.crumbs(path, session.region), page=page, form=form, errors=errors or {},
                   parents=sorted(choices, key=lambda u: (u.region_code, u.name)), tabs=DIRECTORY_TABS,
                   saved=saved if saved in page.names else "", field_order=directory.UNIT_FIELDS)


@router.get("/console/directory/units")
async def units_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _units_page(request, session)


@router.post("/console/directory/units")
async def save_unit(request: Request) -> Response:
    session = await require(request, ROLES)
    fields, _ = await _fields(request)
    form = directory.read_unit_form(fields)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _units_page(request, session, form=form, errors=errors, status=status)

    refused = _csrf_error(request, fields)
    if refused:
        return await again({"form": refused}, status=400)
    calls = _calls(request, session)
    choices = await calls.units(session.region)
    errors = directory.check_unit(form, session.region, [u.id for u in choices])
    if errors:
        return await again(errors)
    existing = await calls.unit(form.id)
    if existing is None and form.editing:
        return await again({"id": "没有找到这个承办单位，可能已被删除或不在您的管辖范围内。"}, status=404)
    if existing is not None and not form.editing:
        taken = f"编号 {form.id} 已经是“{existing.name}”的编号，请换一个；要修改它，请在列表中点“修改”。"
        return await again({"id": taken}, status=409)
    try:
        await calls.save_unit(form.id, directory.unit_body(form))
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            return await again(common.refused(exc, directory.unit_field), status=exc.status)
        raise
    back = urlencode({"region": request.query_params.get("region", form.region_code), "saved": form.id})
    return RedirectResponse(f"/console/directory/units?{back}#u-{form.id}", status_code=303)


# ---- QR codes ------------------------------------------------------------------------------------


async def _code_rows(request: Request, calls: AdminCalls, query: codes.CodesQuery) -> tuple[list[codes.CodeRow],
                                                                                             str | None]:
    base = web_of(request).settings.public_base_url
    if query.kind == "deputy":
        deputies = await calls.deputies(query.region, q=query.q, after=query.after, limit=codes.PAGE_SIZE)
        return codes.deputy_rows(deputies.items, base), deputies.next
    stations = await calls.stations(query.region, q=query.q, after=query.after, limit=codes.PAGE_SIZE)
    return codes.station_rows(stations.items, base), stations.next


@router.get("/console/codes")
async def codes_page(request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    params = request.query_params
    query = codes.read_codes_query(params, session.region)
    calls = _calls(request, session)
    (path, nodes), (rows, after) = await asyncio.gather(_tree(web, query.region), _code_rows(request, calls, query))
    done = codes.done_notice(params.get("done", ""), params.get("count", ""), query.kind)
    return _render(request, session, "console_admin_codes.html", query=query, place=path, nodes=nodes,
                   crumbs=directory.crumbs(path, session.region), rows=rows, after=after, done=done,
                   done_id=params.get("id", "") if done else "", idem=uuid.uuid4().hex, back=query.query(),
                   kinds=codes.KINDS, names=directory.region_names(path, nodes))


async def _confirm_page(request: Request, session: WorkSession, action: str, fields: Mapping[str, str], *,
                        error: str | None = None, status: int = 200) -> Response:
    # The name shown is identity's, never the form's: a form made elsewhere cannot dress one target as another.
    name = await _calls(request, session).name_of(fields["kind"], fields["id"])
    if name is None:
        return _no_target(request)
    return _render(request, session, "console_admin_codes_confirm.html", status=status, action=action,
                   kind=fields["kind"], target_id=fields["id"], name=name, old=fields.get("old", ""),
                   back=codes.safe_back(fields.get("back", "")), error=error, idem=uuid.uuid4().hex,
                   kinds=codes.KINDS)


def _forget_code(request: Request, old: str) -> None:
    # This replica's cache of scanned codes would keep leading to the owner for up to a minute.
    if codes.CODE.match(old):
        web_of(request).codes.forget(old)


def _target_ok(fields: Mapping[str, str]) -> bool:
    return fields.get("kind") in codes.KINDS and bool(codes.TARGET_ID.match(fields.get("id", "")))


def _no_target(request: Request) -> Response:
    return error_pages.error_page(request, 404, "没有找到这个联络站或代表", "请回到二维码列表重新选择。",
                                  actions=(error_pages.Action("/console/codes", "回到二维码列表"),))


def _back_to_list(fields: Mapping[str, str], **notice: str) -> Response:
    back = codes.safe_back(fields.get("back", ""))
    to = "&".join(q for q in (back, urlencode(notice)) if q)
    anchor = f"#c-{fields.get('kind')}-{fields.get('id')}" if "id" in notice else ""
    return RedirectResponse(f"/console/codes?{to}{anchor}", status_code=303)


@router.post("/console/codes/issue")
async def issue_code(request: Request) -> Response:
    session = await require(request, ROLES)
    fields, _ = await _fields(request)
    if not _target_ok(fields):
        return _no_target(request)
    refused = _csrf_error(request, fields)
    if refused:
        return await _confirm_page(request, session, "issue", fields, error=refused, status=400)
    old = fields.get("old", "")
    if old and fields.get("confirm") != "yes":
        # Issuing again voids the code already printed on posters and cards: asked first.
        return await _confirm_page(request, session, "issue", fields)
    idem = fields.get("idem", "")
    key = codes.issue_key(idem if codes.IDEM.match(idem) else uuid.uuid4().hex, fields["kind"], fields["id"])
    try:
        await _calls(request, session).issue_code(fields["kind"], fields["id"], idempotency_key=key)
    except UpstreamError as exc:
        if exc.status == 404:
            return _no_target(request)
        if exc.status == 409:
            return await _confirm_page(request, session, "issue", fields, error=exc.detail, status=409)
        raise
    _forget_code(request, old)
    return _back_to_list(fields, done="reissued" if old else "issued", id=fields["id"])


@router.post("/console/codes/revoke")
async def revoke_code(request: Request) -> Response:
    session = await require(request, ROLES)
    fields, _ = await _fields(request)
    if not _target_ok(fields):
        return _no_target(request)
    refused = _csrf_error(request, fields)
    if refused:
        return await _confirm_page(request, session, "revoke", fields, error=refused, status=400)
    if fields.get("confirm") != "yes":
        return await _confirm_page(request, session, "revoke", fields)
    try:
        await _calls(request, session).revoke_code(fields["kind"], fields["id"])
    except UpstreamError as exc:
        # No live code (revoked meanwhile, from another page): what was asked for already holds.
        if exc.status != 404:
            raise
    _forget_code(request, fields.get("old", ""))
    return _back_to_list(fields, done="revoked", id=fields["id"])


@router.post("/console/codes/issue-missing")
async def issue_missing(request: Request) -> Response:
    """A code for every station (or deputy) of the region that has none: a new township in one click."""
    session = await require(request, ROLES)
    fields, _ = await _fields(request)
    query = codes.read_codes_query(fields, session.region)
    refused = _csrf_error(request, fields)
    if refused:
        back = error_pages.Action(f"/console/codes?{query.query()}", "回到二维码列表")
        return error_pages.error_page(request, 400, "请再提交一次", refused, actions=(back,))
    calls = _calls(request, session)
    if query.kind == "deputy":
        targets = [d.id for d in (await calls.all_deputies(query.region, query.q, codes.SHEET_MAX))[0] if not d.code]
    else:
        targets = [s.id for s in (await calls.all_stations(query.region, query.q, codes.SHEET_MAX))[0] if not s.code]
    idem = fields.get("idem", "")
    idem = idem if codes.IDEM.match(idem) else uuid.uuid4().hex
    # One after another: identity locks each owner in turn, and a county's few dozen take a moment.
    for target in targets:
        await calls.issue_code(query.kind, target, idempotency_key=codes.issue_key(idem, query.kind, target))
    return _back_to_list({"back": query.query(after=None)}, done="issued_many", count=str(len(targets)),
                         kind=query.kind)


@router.get("/console/codes/sheet")
async def code_sheet(request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    params = request.query_params
    region = directory.focus_of(params.get("region_code"), session.region)
    kind = codes.sheet_kind(params.get("kind"))
    if not region:
        # Every code of the country on one sheet helps nobody: a place is chosen first.
        return _render(request, session, "console_admin_sheet.html", region=region, place=None, kind=kind,
                       pages=[], missing=[], cut=False, total=0, choices=await _children(web, ""),
                       sheet_kinds=codes.SHEET_KINDS)
    calls = _calls(request, session)
    base = web.settings.public_base_url
    path = await _place(web, region)
    rows: list[codes.CodeRow] = []
    cut = False
    if kind in ("all", "station"):
        stations, cut_s = await calls.all_stations(region, most=codes.SHEET_MAX)
        rows += codes.station_rows(stations, base)
        cut = cut or cut_s
    if kind in ("all", "deputy"):
        deputies, cut_d = await calls.all_deputies(region, most=codes.SHEET_MAX)
        rows += codes.deputy_rows(deputies, base)
        cut = cut or cut_d
    found, missing = codes.cards(rows[:codes.SHEET_MAX])
    return _render(request, session, "console_admin_sheet.html", region=region, place=path, kind=kind,
                   pages=codes.sheet_pages(found), missing=missing, cut=cut or len(rows) > codes.SHEET_MAX,
                   total=len(found), choices=[], sheet_kinds=codes.SHEET_KINDS)


# ---- the calendar and the clock rules -----------------------------------------------------------


async def _year_state(calls: AdminCalls, year: int) -> tuple[int, CalendarYear | None, str]:
    """The year's calendar, or None and why intake has none (its own words)."""
    try:
        return year, await calls.calendar(year), ""
    except UpstreamError as exc:
        if exc.status != 404:
            raise
        return year, None, exc.detail or f"{year} 年的法定节假日尚未导入。"


async def _rule_names(web: Web, rules: list[ClockRule]) -> dict[str, str]:
    async def name(prefix: str) -> tuple[str, str]:
        try:
            place = await _place(web, prefix)
        except (Unavailable, UpstreamError):
            place = None
        return prefix, place.name if place else ""

    return dict(await asyncio.gather(*(name(r.region_prefix) for r in rules)))


def _chosen_year(text: str | None) -> int:
    this_year = _now().year
    year = int(text) if text and text.isdigit() else this_year
    return year if cal.MIN_YEAR <= year <= cal.MAX_YEAR else this_year


async def _calendar_page(request: Request, session: WorkSession, *, form: cal.CalendarForm | None = None,
                         rule_form: cal.RuleForm | None = None, errors: dict[str, str] | None = None,
                         rule_errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web = web_of(request)
    params = request.query_params
    calls = _calls(request, session)
    year = _chosen_year(form.year if form is not None and errors and "year" not in errors else params.get("year"))
    this_year = _now().year
    years = sorted({*range(this_year - 1, this_year + 3), year})
    states, rules = await asyncio.gather(asyncio.gather(*(_year_state(calls, y) for y in years)),
                                         calls.clock_rules())
    by_year = {y: (found, why) for y, found, why in states}
    shown, why = by_year[year]
    holidays = cal.parse_iso_days(shown.holidays) if shown else []
    workdays = cal.parse_iso_days(shown.workdays) if shown else []
    if rule_form is None:
        wanted = params.get("rule", "")
        rule_form = cal.rule_form_of(next((r for r in rules if r.region_prefix == wanted), None), session.region)
    loaded = params.get("loaded") == "1" and shown is not None and shown.source == "loaded"
    recomputed = params.get("recomputed", "")
    saved_rule = params.get("saved_rule", "")
    return _render(
        request, session, "console_admin_calendar.html", status=status, year=year, years=years, by_year=by_year,
        shown=shown, why=why, holidays=holidays, workdays=workdays, months=cal.month_grids(year, holidays, workdays),
        holiday_spans=cal.spans(holidays), workday_spans=cal.spans(workdays), weekdays=cal.WEEKDAYS,
        form=form or cal.CalendarForm(year=str(year if shown is None else year + 1)), errors=errors or {},
        rules=rules, rule_names=await _rule_names(web, rules), rule_form=rule_form, rule_errors=rule_errors or {},
        loaded=loaded, recomputed=int(recomputed) if recomputed.isdigit() else 0,
        saved_rule=saved_rule if any(r.region_prefix == saved_rule for r in rules) else "",
        calendar_fields=cal.CALENDAR_FIELDS, rule_fields=cal.RULE_FIELDS,
        defaults=(cal.DEFAULT_ACK_DAYS, cal.DEFAULT_REPLY_DAYS))


@router.get("/console/calendar")
async def calendar_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _calendar_page(request, session)


@router.post("/console/calendar")
async def load_calendar(request: Request) -> Response:
    session = await require(request, ROLES)
    fields, uploads = await _fields(request, files=1)
    form = cal.read_calendar_form(fields)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _calendar_page(request, session, form=form, errors=errors, status=status)

    refused = _csrf_error(request, fields)
    if refused:
        return await again({"form": refused}, status=400)
    data = uploads.get("file")
    if data:
        if form.holidays.strip() or form.workdays.strip():
            return await again({"file": "请只用一种方式：选择文件，或者在下面填写日期，不要同时使用。"})
        from_file, problem = cal.from_file(data)
        if from_file is None:
            return await again({"file": problem or "文件无法读取。"})
        form.holidays, form.workdays = from_file.holidays, from_file.workdays
    load, errors = cal.check_calendar(form)
    if load is None:
        return await again(errors)
    try:
        done = await _calls(request, session).load_calendar(
            load.year, [d.isoformat() for d in load.holidays], [d.isoformat() for d in load.workdays])
    except UpstreamError as exc:
        if exc.status in (409, 422):
            refusal = common.refused(exc, cal.calendar_field, top="year", fallback="导入没有成功，请检查后再试。")
            return await again(refusal, status=exc.status)
        raise
    query = urlencode({"year": load.year, "loaded": 1, "recomputed": done.recomputed})
    return RedirectResponse(f"/console/calendar?{query}#year-shown", status_code=303)


@router.post("/console/calendar/rules")
async def save_rule(request: Request) -> Response:
    session = await require(request, ROLES)
    fields, _ = await _fields(request)
    form = cal.read_rule_form(fields)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _calendar_page(request, session, rule_form=form, rule_errors=errors, status=status)

    refused = _csrf_error(request, fields)
    if refused:
        return await again({"form": refused}, status=400)
    values, errors = cal.check_rule(form, session.region)
    if values is None:
        return await again(errors)
    try:
        await _calls(request, session).save_clock_rule(form.region_prefix, values)
    except UpstreamError as exc:
        if exc.status in (403, 422):
            return await again(common.refused(exc, cal.rule_field, top="region_prefix"), status=exc.status)
        raise
    year = request.query_params.get("year", "")
    query = urlencode({**({"year": year} if year.isdigit() else {}), "saved_rule": form.region_prefix})
    return RedirectResponse(f"/console/calendar?{query}#rules", status_code=303)
