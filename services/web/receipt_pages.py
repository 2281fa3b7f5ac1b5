"""Following a report by its receipt code (`/r`, `/r/{code}`) and rating the answer.

Whoever holds the receipt code sees what intake shows the citizen: status, the public timeline,
the answer. The code is forgiving as typed (case, spaces, dashes); a typo is caught by its check
character and said to be a typo, not "no such report". Rating 1 or 2 stars needs a reason and
sends the report back to the deputy; the page says so before the citizen chooses.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import error_pages
from services.web.citizen_address import citizen_address
from services.web.context import web_of
from services.web.upstreams import Citizen, Receipt, UpstreamError
from services.web.words import group_receipt_code, normalize_typed_code

router = APIRouter(include_in_schema=False)

RECEIPT_LENGTH = 12
_KIOSK = re.compile(r"^[0-9A-Za-z]{4,64}$")
_IDEM = re.compile(r"^[0-9a-f]{32}$")
MAX_COMMENT = 500


def _lookup_page(request: Request, *, typed: str = "", error: str | None = None, status: int = 200) -> Response:
    return web_of(request).pages.render(request, "lookup.html", status=status, typed=typed, error=error,
                                        private=True)


def _kiosk_code(request: Request) -> str | None:
    value = request.query_params.get("kiosk", "")
    return value if _KIOSK.match(value) else None


def _receipt_page(request: Request, code: str, receipt: Receipt, *, status: int = 200,
                  errors: dict[str, str] | None = None, stars: int | None = None, comment: str = "") -> Response:
    kiosk = _kiosk_code(request)
    return web_of(request).pages.render(
        request, "receipt.html", status=status, private=True, posts=receipt.can_rate, code=code, receipt=receipt,
        new=request.query_params.get("new") == "1", rated=request.query_params.get("rated") == "1",
        kiosk=kiosk, errors=errors or {}, stars=stars, comment=comment, rating_key=uuid.uuid4().hex,
        follow_url=f"{request.url.scheme}://{request.url.netloc}/r/{code}",
        rating_action=f"/r/{code}/rating" + (f"?{urlencode({'kiosk': kiosk})}" if kiosk else ""))


@router.get("/r")
async def lookup(request: Request, code: str | None = None) -> Response:
    if code is None:
        return _lookup_page(request)
    typed = code.strip()[:40]
    bare = normalize_typed_code(typed)
    if not bare:
        return _lookup_page(request, typed=typed, error="请输入回执码。", status=422)
    if len(bare) != RECEIPT_LENGTH:
        return _lookup_page(request, typed=typed, status=422,
                            error=f"回执码是 {RECEIPT_LENGTH} 位字母和数字，您输入了 {len(bare)} 位，请核对。")
    return RedirectResponse(f"/r/{group_receipt_code(bare)}", status_code=303)


async def _fetch(request: Request, code: str) -> Receipt | Response:
    bare = normalize_typed_code(code)
    if len(bare) != RECEIPT_LENGTH:
        return _lookup_page(request, typed=code[:40], status=404, error="回执码的位数不对，请核对后重新输入。")
    try:
        receipt = await web_of(request).upstreams.receipt(bare, citizen=Citizen(citizen_address(request)))
    except UpstreamError as exc:
        if exc.status == 422:
            return _lookup_page(request, typed=group_receipt_code(bare), status=422,
                                error="回执码有误，可能有字符输错了，请对照回执再输入一次。")
        raise
    if receipt is None:
        return _lookup_page(request, typed=group_receipt_code(bare), status=404,
                            error="没有找到这个回执码对应的反映，请核对后重新输入。")
    return receipt


@router.get("/r/{code}")
async def follow(code: str, request: Request) -> Response:
    found = await _fetch(request, code)
    if not isinstance(found, Receipt):
        return found
    grouped = group_receipt_code(code)
    if grouped != code:
        # One address per report, whatever way it was typed.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/r/{grouped}{query}", status_code=301)
    return _receipt_page(request, grouped, found)


@router.post("/r/{code}/rating")
async def rate(code: str, request: Request) -> Response:
    web = web_of(request)
    found = await _fetch(request, code)
    if not isinstance(found, Receipt):
        return found
    grouped = group_receipt_code(code)
    form = await request.form(max_files=0, max_fields=10, max_part_size=8 * 1024)
    stars_text = str(form.get("stars", ""))
    comment = str(form.get("comment", "")).strip()
    key = str(form.get("idem", ""))
    stars = int(stars_text) if stars_text.isdigit() and 1 <= int(stars_text) <= 5 else None

    def again(errors: dict[str, str], status: int = 422) -> Response:
        return _receipt_page(request, grouped, found, status=status, errors=errors, stars=stars, comment=comment)

    valid, expired = web.pages.csrf_ok(request, str(form.get("csrf", "")) or None)
    if not valid:
        return again({"rating": "页面打开的时间太长了，为了安全请再提交一次评价。" if expired else
                      "为了安全，请再提交一次评价（如果一直出现这个提示，请允许浏览器保存 Cookie）。"}, status=400)
    if not found.can_rate:
        return again({"rating": "现在还不能评价：答复之后才能评价，每次答复只能评价一次。"}, status=409)
    errors: dict[str, str] = {}
    if stars is None:
        errors["stars"] = "请选择 1 到 5 颗星。"
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"意见最多 {MAX_COMMENT} 字，现在有 {len(comment)} 字。"
    elif stars is not None and stars <= 2 and not comment:
        errors["comment"] = "选择 1 星或 2 星时，请写一下哪里不满意，代表会据此重新办理。"
    if errors:
        return again(errors)
    assert stars is not None
    try:
        await web.upstreams.rate(normalize_typed_code(grouped), stars, comment or None,
                                 idempotency_key=f"web-{key if _IDEM.match(key) else uuid.uuid4().hex}",
                                 citizen=Citizen(citizen_address(request)))
    except UpstreamError as exc:
        if exc.status == 429:
            return error_pages.flood_page(request, exc.retry_after)
        if exc.status in (409, 422):
            return again({"rating": exc.detail or "评价没有成功，请刷新页面后再试。"}, status=exc.status)
        raise
    kiosk = _kiosk_code(request)
    query = urlencode({"rated": "1", **({"kiosk": kiosk} if kiosk else {})})
    return RedirectResponse(f"/r/{grouped}?{query}", status_code=303)
