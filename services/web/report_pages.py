"""The report form behind every QR code (`/q/{code}`), the kiosk (`/kiosk/{code}`), and the same
form for a chosen place (`/report`).

A POST checks the form, uploads the photos and the recording to intake, files the report and
answers 303 to the receipt page. Every rendered form carries its own idempotency key, so a
double tap, a retry on a weak network or a browser's resend files one report. Whatever goes
wrong comes back as the same form with the citizen's words kept and the problem next to its field.
The form's "先看看有没有人反映过" button posts it with `action=check`: nothing is filed, and it comes
back with the common matters it probably repeats (matter_pages.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import error_pages, matter_pages, matters, report_form
from services.web.citizen_address import citizen_address
from services.web.context import Web, web_of
from services.web.matters import Found
from services.web.report_form import Draft, Upload
from services.web.upstreams import Category, Citizen, Region, RegionPath, ResolvedCode, Unavailable, UpstreamError
from services.web.words import group_receipt_code

log = logging.getLogger("minyi.web.report")

router = APIRouter(include_in_schema=False)

_CODE = re.compile(r"^[0-9A-Za-z]{4,64}$")
_REGION = re.compile(r"^\d{2,12}$")
_IDEM = re.compile(r"^[0-9a-f]{32}$")
# Field order of the error summary: the order they appear in the form.
FIELD_ORDER = ("form", "region", "content", "category", "photos", "voice", "address", "identity", "name", "phone",
               "id_number", "consent")


async def _categories(web: Web) -> list[Category]:
    """The category chips; a form without them still works, so routing being down costs only the hint."""
    try:
        return await web.categories.get("all", web.upstreams.categories)
    except (Unavailable, UpstreamError) as exc:
        log.warning("no category hints: %s", exc)
        return []


async def _target(web: Web, code: str) -> ResolvedCode | None:
    if not _CODE.match(code):
        return None
    return await web.codes.get(code, lambda: web.upstreams.resolve_code(code))


def _search_region(target: ResolvedCode | None, region: RegionPath | None) -> str | None:
    """Where the form's words are searched for repeats: the code's region, or the region chosen."""
    return matters.search_region(target.region_code if target else region.code if region else None)


def _form_page(request: Request, *, mode: str, target: ResolvedCode | None = None,
               region: RegionPath | None = None, children: list[Region] | None = None, draft: Draft | None = None,
               errors: dict[str, str] | None = None, categories: list[Category], status: int = 200,
               notice: str | None = None, similar: Found | None = None, files_dropped: bool = False) -> Response:
    draft = draft or Draft(idempotency_key=uuid.uuid4().hex)
    if errors:
        # After a refusal the form is made anew: a changed form must not reuse the key of the one refused.
        draft.idempotency_key = uuid.uuid4().hex
    return web_of(request).pages.render(
        request, "report.html", status=status, posts=True, mode=mode, target=target, region=region,
        children=children or [], draft=draft, errors=errors or {}, categories=categories, notice=notice,
        field_order=FIELD_ORDER, similar_region=_search_region(target, region), found=similar,
        files_dropped=files_dropped,
        kiosk_code=_code_of(request) if mode == "kiosk" else None,
        limits={"content": report_form.MAX_CONTENT, "photos": report_form.MAX_PHOTOS,
                "file_mb": report_form.MAX_FILE_BYTES // (1024 * 1024)},
        photo_types=report_form.PHOTO_TYPES, voice_types=report_form.VOICE_TYPES)


def _code_not_found(request: Request) -> Response:
    return error_pages.error_page(
        request, 404, "这个二维码无法识别",
        "二维码可能已经更换、失效，或者没有扫完整。您可以重新扫一次，或者按地区直接反映问题，同样会转给当地代表。",
        actions=(error_pages.Action("/report", "按地区反映问题"), error_pages.Action("/r", "查询反映进度")))


# ---- GET ----------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    return web_of(request).pages.render(request, "home.html", public=True)


@router.get("/q/{code}")
async def code_page(code: str, request: Request) -> Response:
    return await _code_form(request, code, mode="code")


@router.get("/kiosk/{code}")
async def kiosk_page(code: str, request: Request) -> Response:
    return await _code_form(request, code, mode="kiosk")


async def _code_form(request: Request, code: str, *, mode: str) -> Response:
    web = web_of(request)
    target = await _target(web, code)
    if target is None:
        return _code_not_found(request)
    return _form_page(request, mode=mode, target=target, categories=await _categories(web))


@router.get("/report")
async def region_page(request: Request, region: str | None = None) -> Response:
    web = web_of(request)
    if region and not _REGION.match(region):
        return error_pages.error_page(request, 400, "地区编码有误", "请从列表中重新选择地区。",
                                      actions=(error_pages.Action("/report", "重新选择地区"),))
    chosen = await web.upstreams.region(region) if region else None
    if region and chosen is None:
        return error_pages.error_page(request, 404, "没有找到这个地区", "请从列表中重新选择地区。",
                                      actions=(error_pages.Action("/report", "重新选择地区"),))
    children = await web.public.get(("regions", region or ""), lambda: web.upstreams.regions(region))
    if chosen is None or chosen.parent_code is None:
        # A province is too wide for any one deputy: choose at least a city first.
        return web.pages.render(request, "choose_region.html", public=True, region=chosen, children=children)
    return _form_page(request, mode="region", region=chosen, children=children, categories=await _categories(web))


# ---- POST ---------------------------------------------------------------------------------------


async def read_report_form(request: Request) -> tuple[dict[str, Any], list[Upload]] | None:
    """A report form's fields (the first of each name) and its photos and voice; None when the body is
    not a readable form. Citizens' and clerks' forms alike."""
    try:
        form = await request.form(max_files=report_form.MAX_PHOTOS + 3, max_fields=40, max_part_size=64 * 1024)
    except MultiPartException:
        return None
    fields: dict[str, Any] = {}
    uploads: list[Upload] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in ("photos", "voice") or not value.filename:
                continue
            data = await value.read(report_form.MAX_FILE_BYTES + 1)
            if data:
                uploads.append(Upload(name, value.filename[-100:], value.content_type or "application/octet-stream",
                                      data))  # type: ignore[arg-type]
        elif name not in fields:
            fields[name] = value
    await form.close()
    return fields, uploads


def _same_origin(request: Request) -> bool:
    """A browser names the page that sent a POST; a page of another site may not send this form."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _submit(request: Request, *, mode: str, target: ResolvedCode | None,
                  region: RegionPath | None) -> Response:
    web = web_of(request)
    categories = await _categories(web)
    read = await read_report_form(request)
    if read is None:
        return _form_page(request, mode=mode, target=target, region=region, categories=categories, status=400,
                          errors={"form": "表单内容不完整，可能是网络中断了，请重新填写后提交。"})
    fields, uploads = read
    draft = report_form.read_draft(fields, uploads)
    if not _IDEM.match(draft.idempotency_key):
        draft.idempotency_key = uuid.uuid4().hex
    if fields.get("action") == "check":
        return await _check(request, mode=mode, target=target, region=region, draft=draft, categories=categories)

    def again(errors: dict[str, str], status: int = 422) -> Response:
        if draft.uploads and not {"photos", "voice"} & errors.keys():
            errors = {**errors, "photos": "为了安全，照片和语音需要重新选择一次。"}
        return _form_page(request, mode=mode, target=target, region=region, draft=draft, errors=errors,
                          categories=categories, status=status)

    valid, expired = web.pages.csrf_ok(request, fields.get("csrf") if isinstance(fields.get("csrf"), str) else None)
    if not _same_origin(request) or not valid:
        message = ("页面打开的时间太长了，为了安全请再点一次提交。" if expired else
                   "为了安全，请再点一次提交（如果一直出现这个提示，请允许浏览器保存 Cookie）。")
        return again({"form": message}, status=400)
    errors = report_form.check(draft, categories={c.code for c in categories} if categories else None)
    if errors:
        return again(errors)

    citizen = Citizen(citizen_address(request))
    key = draft.idempotency_key
    attachment_ids: list[str] = []
    for number, upload in enumerate(draft.uploads, start=1):
        digest = hashlib.sha256(upload.data).hexdigest()[:24]
        try:
            attachment = await web.upstreams.upload(upload.filename, upload.data, upload.media_type,
                                                    idempotency_key=f"web-{key}-{digest}", citizen=citizen)
        except UpstreamError as exc:
            if exc.status == 429:
                return error_pages.flood_page(request, exc.retry_after)
            if exc.status in (413, 415, 422):
                what = "语音" if upload.field == "voice" else f"第 {number} 张照片"
                reason = exc.detail or "文件无法使用"
                return again({upload.field: f"{what}无法上传：{reason}"})
            raise
        attachment_ids.append(attachment.id)

    body = report_form.report_body(
        draft, channel="kiosk" if mode == "kiosk" else "h5", code=_code_of(request) if target else None,
        region_code=region.code if region else None, attachment_ids=attachment_ids)
    try:
        created = await web.upstreams.submit_report(body, idempotency_key=f"web-{key}", citizen=citizen)
    except UpstreamError as exc:
        if exc.status == 429:
            return error_pages.flood_page(request, exc.retry_after)
        if exc.status == 422:
            mapped: dict[str, str] = {}
            for name, message in exc.field_errors().items():
                mapped.setdefault(report_form.field_of(name), message)
            return again(mapped or {"form": exc.detail})
        if exc.status == 409:
            return again({"form": "这份表单已经提交过了。如果还要反映另一件事，请再点一次提交。"}, status=409)
        raise
    receipt = group_receipt_code(created.receipt_code)
    location = f"/r/{receipt}?new=1" + (f"&kiosk={_code_of(request)}" if mode == "kiosk" else "")
    return RedirectResponse(location, status_code=303)


async def _check(request: Request, *, mode: str, target: ResolvedCode | None, region: RegionPath | None,
                 draft: Draft, categories: list[Category]) -> Response:
    """The form as it was sent, with the matters it probably repeats above its submit button. Nothing is
    filed or changed, so no token is asked for; files cannot be given back to a file field."""
    found = await matter_pages.find_repeats(
        request, region_code=_search_region(target, region), content=draft.content, address=draft.address,
        lat=draft.lat, lon=draft.lon, kiosk=_code_of(request) if mode == "kiosk" else None)
    return _form_page(request, mode=mode, target=target, region=region, draft=draft, categories=categories,
                      similar=found, files_dropped=bool(draft.uploads))


def _code_of(request: Request) -> str:
    return str(request.path_params["code"])


@router.post("/q/{code}")
async def submit_by_code(code: str, request: Request) -> Response:
    return await _submit_code(request, code, mode="code")


@router.post("/kiosk/{code}")
async def submit_at_kiosk(code: str, request: Request) -> Response:
    return await _submit_code(request, code, mode="kiosk")


async def _submit_code(request: Request, code: str, *, mode: str) -> Response:
    target = await _target(web_of(request), code)
    if target is None:
        return _code_not_found(request)
    return await _submit(request, mode=mode, target=target, region=None)


@router.post("/report")
async def submit_by_region(request: Request, region: str | None = None) -> Response:
    web = web_of(request)
    if not region or not _REGION.match(region):
        return error_pages.error_page(request, 400, "请先选择地区", "请先选择问题所在的地区，再填写反映。",
                                      actions=(error_pages.Action("/report", "选择地区"),))
    chosen = await web.upstreams.region(region)
    if chosen is None or chosen.parent_code is None:
        return error_pages.error_page(request, 400, "请先选择地区", "请选择到市、区县或更小的地区，再填写反映。",
                                      actions=(error_pages.Action("/report", "选择地区"),))
    return await _submit(request, mode="region", target=None, region=chosen)
