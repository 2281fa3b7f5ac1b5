"""The station staff's pages: the region's open reports and registering a report for a citizen.

- `/work/station`: the region's reports still waiting for an answer, overdue first (intake sorts by
  the deadline that matters next, and an overdue one's has passed), who each waits on, filters in
  the URL, paged by intake; the same list as CSV or XLSX; a 催办 button per report.
- `/work/station/register`: a paper letter, a phone call or a kiosk visit typed in by the clerk,
  with the time it really came in and the scans, then `/work/station/slips/{code}`, the receipt
  slip to print for the citizen.

Every action is a form POST answered with 303 to the new state, or the same page with the problem
next to its field; each carries a key so a resend does nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import error_pages, report_form, station_calls, station_lists, station_register
from services.web.context import Web, web_of
from services.web.report_pages import read_report_form
from services.web.signed_in import require
from services.web.station_register import Registration
from services.web.upstreams import Category, Citizen, Region, Unavailable, UpstreamError
from services.web.words import SHANGHAI, group_receipt_code, normalize_typed_code
from services.web.work_home import nav
from services.web.work_session import WorkSession

log = logging.getLogger("minyi.web.station")

router = APIRouter(include_in_schema=False)

ROLES = ("station_staff",)
NAV = (("station_staff", "/work/station/register", "登记反映"),)
_REPORT_ID = re.compile(r"^[0-9a-f-]{36}$")
_IDEM = re.compile(r"^[0-9a-f]{32}$")
_BACK = re.compile(r"^[A-Za-z0-9_=&%.+-]{0,400}$")
MAX_NOTE = 200


def _now() -> datetime:
    return datetime.now(SHANGHAI)


async def _categories(web: Web) -> list[Category]:
    try:
        return await web.categories.get("all", web.upstreams.categories)
    except (Unavailable, UpstreamError):
        return []  # the category is a hint; the form works without it


# ---- the open list ------------------------------------------------------------------------------


async def _list_page(request: Request, session: WorkSession, query: Mapping[str, str], *, status: int = 200,
                     refusals: dict[str, str] | None = None, notes: dict[str, str] | None = None) -> Response:
    web = web_of(request)
    filters = station_lists.read_filters(query)
    page = await station_calls.open_reports(web.upstreams, session, filters.intake_params(), page=filters.page)
    names = await station_calls.names_of(web.upstreams, session, page.items)
    now = _now()
    categories = {c.code: c.label for c in await _categories(web)}
    rows = [{"report": r, "due": station_lists.due_state(r, now), "waits_on": station_lists.waits_on(r, names),
             "step": station_lists.step(r), "channel": station_lists.CHANNEL.get(r.channel, r.channel),
             "category": categories.get(r.category or "", "")} for r in page.items]
    pages = max(1, math.ceil(page.total / max(1, page.page_size)))
    reminded = query.get("reminded", "")
    return web.pages.render(
        request, "station_list.html", status=status, private=True, posts=True, session=session,
        work_nav=nav(request, session, NAV), filters=filters, rows=rows, total=page.total, pages=pages,
        refusals=refusals or {}, notes=notes or {}, reminded=reminded if _REPORT_ID.match(reminded) else "",
        statuses={s: station_lists.words.STATUS[s] for s in station_lists.OPEN_STATUSES},
        sorts=station_lists.SORTS, back=filters.query(), remind_key=uuid.uuid4().hex)


@router.get("/work/station")
async def open_list(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _list_page(request, session, request.query_params)


async def _export_rows(request: Request) -> list[list[str]]:
    session = await require(request, ROLES)
    web = web_of(request)
    filters = station_lists.read_filters(request.query_params)
    rows = await station_calls.all_open_reports(web.upstreams, session, filters.intake_params())
    names = await station_calls.names_of(web.upstreams, session, rows)
    categories = {c.code: c.label for c in await _categories(web)}
    return station_lists.export_rows(rows, names, _now(), categories)


def _download(data: bytes, media_type: str, extension: str) -> Response:
    name = f"open-reports-{_now():%Y%m%d-%H%M}.{extension}"
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/work/station/export.csv")
async def export_csv(request: Request) -> Response:
    return _download(station_lists.to_csv(await _export_rows(request)), "text/csv; charset=utf-8", "csv")


@router.get("/work/station/export.xlsx")
async def export_xlsx(request: Request) -> Response:
    data = station_lists.to_xlsx(await _export_rows(request))
    return _download(data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")


@router.post("/work/station/reports/{report_id}/remind")
async def remind(report_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=8 * 1024)
    back = str(form.get("back", ""))
    back = back if _BACK.match(back) else ""
    # A refusal is shown on the list the clerk came from, with its filters and page.
    query = dict(parse_qsl(back))
    if not _REPORT_ID.match(report_id):
        return error_pages.error_page(request, 404, "没有找到这条反映", "请回到列表重新选择。",
                                      actions=(error_pages.Action("/work/station", "回到本地区反映"),))
    note = str(form.get("note", "")).strip()
    valid, expired = web.pages.csrf_ok(request, str(form.get("csrf", "")) or None)
    if not valid:
        message = "页面打开的时间太长了，为了安全请再点一次“催办”。" if expired else "为了安全，请再点一次“催办”。"
        return await _list_page(request, session, query, status=400, refusals={report_id: message})
    if len(note) > MAX_NOTE:
        return await _list_page(request, session, query, status=422, notes={report_id: note},
                                refusals={report_id: f"催办说明最多 {MAX_NOTE} 字，现在有 {len(note)} 字。"})
    key = str(form.get("idem", ""))
    try:
        await station_calls.remind(web.upstreams, session, report_id, note or None,
                                   idempotency_key=f"web-remind-{key if _IDEM.match(key) else uuid.uuid4().hex}")
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await _list_page(request, session, query, status=exc.status, notes={report_id: note},
                                    refusals={report_id: exc.detail or "催办没有成功，请刷新后再试。"})
        raise
    to = "&".join(q for q in (back, f"reminded={report_id}") if q)
    return RedirectResponse(f"/work/station?{to}#r-{report_id}", status_code=303)


# ---- registering a report -----------------------------------------------------------------------


async def _regions(web: Web, session: WorkSession) -> list[Region]:
    """Where a report for a place may be registered: the clerk's region and the places right under it."""
    here = await web.upstreams.region(session.region) if session.region else None
    if here is None:
        return []
    children = await web.public.get(("regions", session.region),
                                    lambda: web.upstreams.regions(session.region))
    return [Region(code=here.code, name=f"{here.name}（全区域）"), *children]


async def _picker(web: Web, session: WorkSession) -> station_calls.Picker | None:
    """The region's stations and deputies to choose from; None when identity cannot list them now
    (the pasted code and the region still work)."""
    try:
        found = await web.public.get(("station-picker", session.region),
                                     lambda: station_calls.picker(web.upstreams, session))
    except (Unavailable, UpstreamError) as exc:
        log.warning("no stations and deputies to pick from: %s", exc)
        return None
    return found  # type: ignore[return-value]


async def _register_page(request: Request, session: WorkSession, *, reg: Registration | None = None,
                         errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web = web_of(request)
    if reg is None:
        code = station_register.code_of(request.query_params.get("code", "")) or ""
        reg = Registration(draft=report_form.Draft(idempotency_key=uuid.uuid4().hex, anonymous=False),
                           received_at=station_register.default_received_at(_now()), target_code=code,
                           region_code=session.region)
    errors = errors or {}
    if reg.draft.uploads and errors and not {"photos", "voice"} & errors.keys():
        errors = {**errors, "photos": "为了安全，扫描件和录音需要重新选择一次。"}
    target = None
    code = station_register.chosen_code(reg)
    if code and "target" not in errors:
        target = await web.codes.get(code, lambda: web.upstreams.resolve_code(code))
    return web.pages.render(
        request, "station_register.html", status=status, posts=True, private=True, session=session,
        work_nav=nav(request, session, NAV), reg=reg, draft=reg.draft, errors=errors,
        field_order=station_register.FIELD_ORDER, channels=station_register.CHANNELS, target=target,
        regions=await _regions(web, session), categories=await _categories(web),
        picker=await _picker(web, session),
        limits={"photos": report_form.MAX_PHOTOS, "file_mb": report_form.MAX_FILE_BYTES // (1024 * 1024),
                "content": report_form.MAX_CONTENT},
        photo_types=report_form.PHOTO_TYPES, voice_types=report_form.VOICE_TYPES)


@router.get("/work/station/register")
async def register_form(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _register_page(request, session)


@router.post("/work/station/register")
async def register(request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    read = await read_report_form(request)
    if read is None:
        return await _register_page(request, session, status=400,
                                    errors={"form": "表单内容不完整，可能是网络中断了，请重新填写后提交。"})
    fields, uploads = read
    reg = station_register.read(fields, uploads)
    if not _IDEM.match(reg.draft.idempotency_key):
        reg.draft.idempotency_key = uuid.uuid4().hex

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _register_page(request, session, reg=reg, errors=errors, status=status)

    valid, expired = web.pages.csrf_ok(request, fields.get("csrf") if isinstance(fields.get("csrf"), str) else None)
    if not valid:
        return await again({"form": "页面打开的时间太长了，为了安全请再点一次提交。" if expired else
                            "为了安全，请再点一次提交（如果一直出现这个提示，请允许浏览器保存 Cookie）。"}, status=400)
    categories = await _categories(web)
    choices = {r.code for r in await _regions(web, session)}
    errors = station_register.check(reg, now=_now(), region_choices=choices,
                                    categories={c.code for c in categories} if categories else None)
    code = station_register.chosen_code(reg)
    if code and not errors and await web.codes.get(code, lambda: web.upstreams.resolve_code(code)) is None:
        errors["target"] = "这个二维码无效或已停用，请核对，或者留空按地区登记。"
    if errors:
        return await again(errors)

    key = reg.draft.idempotency_key
    attachment_ids: list[str] = []
    for number, upload in enumerate(reg.draft.uploads, start=1):
        digest = hashlib.sha256(upload.data).hexdigest()[:24]
        try:
            attachment = await station_calls.upload_scan(web.upstreams, session, upload.filename, upload.data,
                                                         upload.media_type, idempotency_key=f"web-{key}-{digest}")
        except UpstreamError as exc:
            if exc.status in (413, 415, 422):
                what = "录音" if upload.field == "voice" else f"第 {number} 个扫描件"
                return await again({upload.field: f"{what}无法上传：{exc.detail or '文件无法使用'}"})
            raise
        attachment_ids.append(attachment.id)
    try:
        created = await station_calls.register(
            web.upstreams, session, station_register.body(reg, code=code, attachment_ids=attachment_ids),
            idempotency_key=f"web-{key}")
    except UpstreamError as exc:
        if exc.status == 422:
            mapped: dict[str, str] = {}
            for name, message in exc.field_errors().items():
                mapped.setdefault(station_register.field_of(name), message)
            return await again(mapped or {"form": exc.detail})
        if exc.status == 403:
            return await again({"target": exc.detail or "该地区不在您的管辖范围内，不能代为登记。"}, status=403)
        if exc.status == 409:
            return await again({"form": "这份登记已经提交过了。如果还要登记另一件，请从“登记反映”重新开始。"},
                               status=409)
        raise
    return RedirectResponse(f"/work/station/slips/{group_receipt_code(created.receipt_code)}?new=1",
                            status_code=303)


@router.get("/work/station/slips/{code}")
async def slip(code: str, request: Request) -> Response:
    session = await require(request, ROLES)
    web = web_of(request)
    bare = normalize_typed_code(code)
    receipt = None
    if len(bare) == 12:
        try:
            receipt = await web.upstreams.receipt(bare, citizen=Citizen())
        except UpstreamError as exc:
            if exc.status != 422:
                raise
    if receipt is None:
        return error_pages.error_page(request, 404, "没有找到这张回执", "请核对回执码，或回到列表查看。",
                                      actions=(error_pages.Action("/work/station", "回到本地区反映"),))
    grouped = group_receipt_code(bare)
    # The slip leaves the building: it carries the public address, not the intranet one the clerk uses.
    base = web.settings.public_base_url.rstrip("/")
    return web.pages.render(
        request, "station_slip.html", private=True, posts=True, session=session, work_nav=nav(request, session, NAV),
        code=grouped, receipt=receipt, new=request.query_params.get("new") == "1",
        follow_url=f"{base}/r/{grouped}", lookup_url=f"{base}/r")
