"""Common matters (共性事项) for citizens: the search for repeats while a report is being written, the
public page of a matter (`/matters/{id}`) and the me-too form on it (附议).

A matter is what routing made of many citizens' reports about one problem in one place; its page
shows what and where, how many and what became of it, never a report's words or anyone's name.
Saying "me too" adds a supporter to the matter's first report at intake, anonymously unless the
citizen chooses to give a name and phone number as on the report form. The search answers the
report form's "先看看有没有人反映过" button without JavaScript (report_pages.py) and, as an HTML
fragment, the form's script while the citizen types (`POST /matters/similar`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import error_pages, matter_calls, matters
from services.web.citizen_address import citizen_address
from services.web.context import web_of
from services.web.matter_calls import Matter
from services.web.matters import Found, SupportDraft
from services.web.upstreams import Citizen, RegionPath, Unavailable, UpstreamError

log = logging.getLogger("minyi.web.matters")

router = APIRouter(include_in_schema=False)

_IDEM = re.compile(r"^[0-9a-f]{32}$")
# The fragment's form: a report's text at most, and a few short fields around it.
_SEARCH_FORM_BYTES = 64 * 1024


def install(app: FastAPI, secret: bytes) -> None:
    app.state.matter_thanks = matters.Thanks(secret)


def _thanks(request: Request) -> matters.Thanks:
    return request.app.state.matter_thanks  # type: ignore[no-any-return]


# ---- the search for repeats ---------------------------------------------------------------------


async def find_repeats(request: Request, *, region_code: str | None, content: str, address: str = "",
                       lat: str = "", lon: str = "", kiosk: str | None = None) -> Found:
    """The matters the citizen's unsent words probably repeat, or a sentence saying why none are shown."""
    region = matters.search_region(region_code)
    if not matters.worth_searching(content):
        return Found(problem=matters.TOO_SHORT)
    if region is None:
        return Found(problem=matters.NOT_NOW)
    try:
        found = await matter_calls.similar(
            web_of(request).upstreams, region_code=region, content=matters.search_text(content, address),
            point=matters.coordinates(lat, lon), citizen=Citizen(citizen_address(request)))
    except UpstreamError as exc:
        if exc.status == 429:
            return Found(problem=matters.TOO_OFTEN)
        log.warning("search for repeats refused: %s", exc)
        return Found(problem=matters.NOT_NOW)
    except Unavailable as exc:
        # Finding repeats only helps; the report can be filed without it.
        log.warning("search for repeats: %s", exc)
        return Found(problem=matters.NOT_NOW)
    return Found(matches=matters.match_views(found, kiosk))


@router.post("/matters/similar")
async def similar_fragment(request: Request) -> Response:
    """The list of likely repeats as an HTML fragment for the report form's script. While typing
    (`auto`) only matches are shown: "none found" after every pause would be noise to a screen reader."""
    web = web_of(request)
    try:
        form = await request.form(max_files=0, max_fields=12, max_part_size=_SEARCH_FORM_BYTES)
    except MultiPartException:
        return web.pages.render(request, "similar.html", status=400, private=True, found=None)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    auto = fields.get("auto") == "1"
    valid, _ = web.pages.csrf_ok(request, fields.get("csrf") or None)
    if not valid:
        found: Found | None = None if auto else Found(problem="页面打开的时间太长了，请刷新页面后再查找。")
        return web.pages.render(request, "similar.html", status=400, private=True, found=found)
    content = fields.get("content", "")[: matters.MAX_SEARCH_CHARS]
    if auto and not matters.worth_searching(content):
        return web.pages.render(request, "similar.html", private=True, found=None)
    found = await find_repeats(request, region_code=fields.get("region"), content=content,
                               address=fields.get("address", "")[:200], lat=fields.get("lat", "")[:20],
                               lon=fields.get("lon", "")[:20], kiosk=matters.kiosk_code(fields.get("kiosk")))
    if auto and not found.matches:
        found = None
    return web.pages.render(request, "similar.html", private=True, found=found)


# ---- a matter's page ------------------------------------------------------------------------------


async def _resolve(request: Request, hotspot_id: str) -> Matter | None:
    """The matter, or the one it was merged into (a merged matter lives on in that one)."""
    upstreams = web_of(request).upstreams
    wanted = hotspot_id
    for _ in range(matters.MAX_MERGE_HOPS):
        if not matters.MATTER_ID.match(wanted):
            return None
        try:
            found = await matter_calls.matter(upstreams, wanted, citizen=Citizen(citizen_address(request)))
        except UpstreamError as exc:
            if exc.status in (400, 422):
                return None
            raise
        if found is None or not found.merged_into:
            return found
        wanted = found.merged_into
    return None


def _not_found(request: Request) -> Response:
    return error_pages.error_page(
        request, 404, "没有找到这个共性事项",
        "地址可能输错了，或者这个事项已经不存在。您可以按地区反映问题，或者用回执码查询进度。")


async def _region(request: Request, code: str) -> RegionPath | None:
    """The matter's place by name; without it the page still says everything else."""
    web = web_of(request)
    if not re.fullmatch(r"\d{2,12}", code):
        return None
    try:
        return await web.public.get(("region-path", code), lambda: web.upstreams.region(code))  # type: ignore[return-value]
    except (UpstreamError, Unavailable) as exc:
        log.warning("matter's region %s: %s", code, exc)
        return None


async def _page(request: Request, matter: Matter, *, kiosk: str | None, draft: SupportDraft | None = None,
                errors: dict[str, str] | None = None, thanked: int | None = None, status: int = 200) -> Response:
    draft = draft or SupportDraft(idempotency_key=uuid.uuid4().hex, kiosk=kiosk)
    if errors:
        # A form refused is made anew: its next sending must not reuse the key of the one refused.
        draft.idempotency_key = uuid.uuid4().hex
    region = await _region(request, matters.search_region(matter.region_code) or "")
    report_region = matters.search_region(matter.region_code)
    return web_of(request).pages.render(
        request, "matter.html", status=status, posts=True, matter=matter, kiosk=kiosk, draft=draft,
        errors=errors or {}, field_order=matters.SUPPORT_FIELDS,
        notice=matters.thanks_text(thanked) if thanked is not None else None,
        # Routing hears of a support after intake counted it: the page must not say fewer than the thanks.
        supporters=max(matter.supporters, thanked or 0),
        title=matters.title(matter.places, matter.keywords), state=matters.state_label(matter.state),
        supportable=matter.state in matters.SUPPORTABLE and bool(matter.report_id),
        place=matters.place_name(region.path if region else []),
        report_href=f"/report?region={report_region}" if report_region else "/report",
        action=f"/matters/{matter.id}/support" + (f"?{urlencode({'kiosk': kiosk})}" if kiosk else ""))


@router.get("/matters/{hotspot_id}")
async def matter_page(hotspot_id: str, request: Request) -> Response:
    kiosk = matters.kiosk_code(request.query_params.get("kiosk"))
    found = await _resolve(request, hotspot_id)
    if found is None:
        return _not_found(request)
    if found.id != hotspot_id:
        return RedirectResponse(matters.matter_href(found.id, kiosk), status_code=303)
    thanked = _thanks(request).open(request.query_params.get("thanks"), found.id)
    return await _page(request, found, kiosk=kiosk, thanked=thanked)


@router.post("/matters/{hotspot_id}/support")
async def support(hotspot_id: str, request: Request) -> Response:
    web = web_of(request)
    try:
        form: Mapping[str, Any] = await request.form(max_files=0, max_fields=12, max_part_size=8 * 1024)
    except MultiPartException:
        form = {}
    draft = matters.read_support({k: v for k, v in form.items() if isinstance(v, str)})
    kiosk = draft.kiosk or matters.kiosk_code(request.query_params.get("kiosk"))
    draft.kiosk = kiosk
    found = await _resolve(request, hotspot_id)
    if found is None:
        return _not_found(request)

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _page(request, found, kiosk=kiosk, draft=draft, errors=errors, status=status)

    valid, expired = web.pages.csrf_ok(request, str(form.get("csrf", "")) or None)
    if not valid:
        return await again({"form": "页面打开的时间太长了，为了安全请再点一次附议。" if expired else
                            "为了安全，请再点一次附议（如果一直出现这个提示，请允许浏览器保存 Cookie）。"}, status=400)
    if found.state not in matters.SUPPORTABLE or not found.report_id:
        return await again({"form": "这个事项已经办结，不再接受附议。如果问题还在，请重新反映。"}, status=409)
    errors = matters.check_support(draft)
    if errors:
        return await again(errors)
    key = draft.idempotency_key if _IDEM.match(draft.idempotency_key) else uuid.uuid4().hex
    try:
        done = await matter_calls.support(web.upstreams, found.report_id, matters.support_body(draft),
                                          idempotency_key=f"web-support-{key}",
                                          citizen=Citizen(citizen_address(request)))
    except UpstreamError as exc:
        if exc.status == 429:
            wait = exc.retry_after or 60
            return await again({"form": f"操作太频繁了，请 {wait} 秒后再点一次附议。您填写的内容已保留。"}, status=429)
        if exc.status == 409:
            return await again({"form": exc.detail or "您已经附议过这个事项了，谢谢您。"}, status=409)
        if exc.status == 422:
            mapped: dict[str, str] = {}
            for name, message in exc.field_errors().items():
                mapped.setdefault(matters.support_error_field(name), message)
            return await again(mapped or {"form": exc.detail or "附议没有成功，请检查后再试。"})
        if exc.status == 404:
            return _not_found(request)
        raise
    query = {"thanks": _thanks(request).seal(found.id, done.supporters), **({"kiosk": kiosk} if kiosk else {})}
    return RedirectResponse(f"/matters/{found.id}?{urlencode(query)}", status_code=303)
