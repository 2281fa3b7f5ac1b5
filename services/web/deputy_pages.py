"""The deputy's pages: the inbox of reports, one report, suggestions, the year's points.

- `/work/deputy`: reports aimed at the deputy or their stations, by next deadline, each coloured
  with words (超期, 即将到期, 正常), counts per state, filters in the URL, paged; the same list as
  XLSX and CSV (`/work/deputy/reports.xlsx`, `.csv`).
- `/work/reports/{id}`: the report, its photos and voice note (fetched through this tier with the
  deputy's token), timeline, grid ticket, masked reporter; 受理, 答复 with reply templates, and
  "显示联系方式", which asks for a reason and shows the contact once, on a page no cache keeps.
- Suggestions and the year's points: `deputy_suggestion_pages`, `deputy_year_pages`.

Every action is a form POST answered with 303 back to the report and a notice, or with the page
again and the service's own words next to the field. Nothing here adds access: intake answers for
the deputy's token, and its 403 or 404 is the page the deputy sees.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import deputy_export, deputy_suggestion_pages, deputy_year_pages
from services.web.context import Web, web_of
from services.web.deputy_calls import OPEN_STATUSES, Reporter
from services.web.deputy_frame import csrf_error, form_key, read_form, render, signed_in, text
from services.web.deputy_view import (
    ACTOR,
    CHANNEL,
    MAX_ROWS,
    PAGE_SIZE,
    REPLY_TEMPLATES,
    SORTS,
    STATUS_FILTERS,
    TARGET_KIND,
    all_counts,
    counts_to_ask,
    due_mark,
    pages_of,
    read_filter,
    template_text,
    ticket_state,
)
from services.web.upstreams import Unavailable, UpstreamError
from services.web.words import SHANGHAI

log = logging.getLogger("minyi.web.deputy")

router = APIRouter(include_in_schema=False)
router.include_router(deputy_suggestion_pages.router)
router.include_router(deputy_year_pages.router)

# Station staff handle reports too; intake decides which, so the report page is theirs as well.
HANDLERS = ("deputy", "station_staff")
_ID = re.compile(r"^[0-9a-f-]{36}$")
MAX_REPLY = 5000
DONE = {"acknowledged": "已受理。请在答复期限前答复群众，答复后群众凭回执码就能看到。",
        "replied": "答复已发出。群众凭回执码可以看到您的答复，并可以评价。"}


async def _category_labels(web: Web) -> dict[str, str]:
    """Category codes in words; without routing the page shows the codes, not an error."""
    try:
        return {c.code: c.label for c in await web.categories.get("all", web.upstreams.categories)}
    except (Unavailable, UpstreamError) as exc:
        log.warning("no category labels: %s", exc)
        return {}


def _now() -> datetime:
    return datetime.now(SHANGHAI)


# ---- the inbox ----------------------------------------------------------------------------------


@router.get("/work/deputy")
async def inbox(request: Request) -> Response:
    session, calls = await signed_in(request)
    view = read_filter(request.query_params)
    given, ask = counts_to_ask(view)
    page, asked, categories = await asyncio.gather(calls.inbox(view.params, view.offset, PAGE_SIZE),
                                                   calls.counts(ask), _category_labels(web_of(request)))
    counts = all_counts({given: page.total} if given else {}, asked)
    now = _now()
    rows = [(item, due_mark(item.status, item.due_at, item.acknowledged_at is not None, now)) for item in page.items]
    return render(request, session, "deputy_inbox.html", view=view, rows=rows, total=page.total,
                  pages=pages_of(page.total), counts=counts, filters=STATUS_FILTERS, categories=categories,
                  channels=CHANNEL, targets=TARGET_KIND, sorts=SORTS)


async def _export(request: Request, kind: str) -> Response:
    _, calls = await signed_in(request)
    view = read_filter(request.query_params)
    page, categories = await asyncio.gather(calls.inbox(view.params, 0, MAX_ROWS),
                                            _category_labels(web_of(request)))
    now = _now()
    table = deputy_export.rows(page.items, categories, now)
    name = f"群众意见-{STATUS_FILTERS[view.status]}-{now:%Y%m%d}.{kind}"
    headers = {"Content-Disposition": f"attachment; filename=\"reports.{kind}\"; filename*=UTF-8''{quote(name)}",
               "Cache-Control": "no-store"}
    if kind == "csv":
        return Response(deputy_export.as_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(deputy_export.as_xlsx(table), headers=headers,
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@router.get("/work/deputy/reports.xlsx")
async def export_xlsx(request: Request) -> Response:
    return await _export(request, "xlsx")


@router.get("/work/deputy/reports.csv")
async def export_csv(request: Request) -> Response:
    return await _export(request, "csv")


# ---- one report ---------------------------------------------------------------------------------


async def _report_page(request: Request, report_id: str, *, status: int = 200, errors: dict[str, str] | None = None,
                       reply_text: str | None = None, reason: str = "", shown: Reporter | None = None,
                       reply_key: str | None = None) -> Response:
    session, calls = await signed_in(request, HANDLERS)
    report, categories = await asyncio.gather(calls.report(report_id), _category_labels(web_of(request)))
    chosen = request.query_params.get("template")
    if reply_text is None:
        reply_text = template_text(chosen)
    done = request.query_params.get("done", "")
    return render(
        request, session, "deputy_report.html", status=status, report=report,
        mark=due_mark(report.status, report.due_at, report.acknowledged_at is not None, _now()),
        ticket=ticket_state(report.ticket_id, report.timeline), categories=categories, channels=CHANNEL,
        targets=TARGET_KIND, actors=ACTOR, templates=REPLY_TEMPLATES, chosen=chosen, reply_text=reply_text,
        reply_key=reply_key or form_key(), errors=errors or {}, reason=reason, shown=shown,
        notice=DONE.get(done) if not errors else None,
        photos=[a for a in report.attachments if a.kind == "photo"],
        voices=[a for a in report.attachments if a.kind != "photo"],
        can_ack=report.acknowledged_at is None and report.status in OPEN_STATUSES,
        can_reply=report.status in OPEN_STATUSES, max_reply=MAX_REPLY)


def _checked_id(report_id: str) -> None:
    if not _ID.match(report_id):
        raise StarletteHTTPException(404)


def _back(report_id: str, done: str) -> Response:
    return RedirectResponse(f"/work/reports/{report_id}?done={done}", status_code=303)


@router.get("/work/reports/{report_id}")
async def report_page(report_id: str, request: Request) -> Response:
    _checked_id(report_id)
    return await _report_page(request, report_id)


@router.post("/work/reports/{report_id}/acknowledge")
async def acknowledge(report_id: str, request: Request) -> Response:
    _checked_id(report_id)
    _, calls = await signed_in(request, HANDLERS)
    form = await read_form(request)
    if (problem := csrf_error(request, form)) is not None:
        return await _report_page(request, report_id, status=400, errors={"acknowledge": problem})
    try:
        await calls.acknowledge(report_id)
    except UpstreamError as exc:
        if exc.status in (409, 422):
            return await _report_page(request, report_id, status=exc.status,
                                      errors={"acknowledge": exc.detail or "现在不能受理这条反映。"})
        raise
    return _back(report_id, "acknowledged")


@router.post("/work/reports/{report_id}/reply")
async def reply(report_id: str, request: Request) -> Response:
    _checked_id(report_id)
    _, calls = await signed_in(request, HANDLERS)
    form = await read_form(request)
    content = text(form, "content")
    key = form_key(form)

    async def again(errors: dict[str, str], status: int) -> Response:
        # A changed answer is a new answer: it gets a new key, so the refused one cannot be replayed for it.
        return await _report_page(request, report_id, status=status, errors=errors, reply_text=content,
                                  reply_key=form_key())

    if (problem := csrf_error(request, form)) is not None:
        return await _report_page(request, report_id, status=400, errors={"content": problem}, reply_text=content,
                                  reply_key=key)
    if not content:
        return await again({"content": "请填写答复内容，可以先选一个答复模板再修改。"}, 422)
    if len(content) > MAX_REPLY:
        return await again({"content": f"答复最多 {MAX_REPLY} 字，现在有 {len(content)} 字。"}, 422)
    try:
        await calls.reply(report_id, content, idempotency_key=f"web-{key}")
    except UpstreamError as exc:
        if exc.status == 422:
            return await again({"content": next(iter(exc.field_errors().values()), "") or exc.detail
                                or "答复内容有误，请检查后再发。"}, 422)
        if exc.status == 409:
            return await again({"content": exc.detail or "这条反映现在不能答复（可能已经答复或办结）。"}, 409)
        raise
    return _back(report_id, "replied")


@router.post("/work/reports/{report_id}/reporter")
async def unmask(report_id: str, request: Request) -> Response:
    """The reporter's contact in clear, once: on this answer only, which no cache keeps; the reason goes
    to intake's audit log with who asked."""
    _checked_id(report_id)
    _, calls = await signed_in(request, HANDLERS)
    form = await read_form(request)
    reason = text(form, "reason")
    if (problem := csrf_error(request, form)) is not None:
        return await _report_page(request, report_id, status=400, errors={"reason": problem}, reason=reason)
    if len(reason) < 2 or len(reason) > 200:
        return await _report_page(request, report_id, status=422, reason=reason, errors={
            "reason": "请写明为什么需要联系方式（2 到 200 字），例如：电话核实问题地点。"})
    try:
        shown = await calls.unmask(report_id, reason)
    except UpstreamError as exc:
        if exc.status in (404, 422, 409):
            message = next(iter(exc.field_errors().values()), "") or exc.detail or "无法显示联系方式。"
            return await _report_page(request, report_id, status=exc.status, errors={"reason": message}, reason=reason)
        raise
    return await _report_page(request, report_id, shown=shown)


@router.get("/work/reports/{report_id}/attachments/{attachment_id}")
async def attachment(report_id: str, attachment_id: str, request: Request) -> Response:
    """A photo or voice note of the report, fetched with the person's own token: the service is never
    linked directly, and the file is never kept by a cache."""
    _checked_id(report_id)
    _checked_id(attachment_id)
    _, calls = await signed_in(request, HANDLERS)
    data, media_type = await calls.attachment(report_id, attachment_id)
    kind = media_type.split(";")[0].strip().lower()
    if not kind.startswith(("image/", "audio/")):
        kind = "application/octet-stream"
    return Response(data, media_type=kind, headers={"Cache-Control": "private, no-store",
                                                    "Content-Disposition": "inline"})

