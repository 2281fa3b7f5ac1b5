"""The handling unit's pages (承办单位): the suggestions assigned to it, and on each one the three
meetings, the assisting units' views, the reply, the extension, the yearly look-back and the
micro-fund spending.

Everything is read and done through the suggestions service with the unit's own token, so a unit
sees only its own suggestions and can do only what the service lets it. Each form is a plain POST
carrying its own idempotency key: a success answers 303 to the suggestion's page showing the new
state; a refusal comes back as the same page with the service's words next to the field and what
was typed kept, and nothing was changed (every action is one call the service takes whole or not).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import error_pages, unit_export, unit_view
from services.web.context import web_of
from services.web.signed_in import require
from services.web.unit_calls import Suggestion, UnitCalls
from services.web.unit_view import Filters
from services.web.upstreams import Unavailable, UpstreamError
from services.web.words import SHANGHAI
from services.web.work_home import nav
from services.web.work_session import WorkSession

log = logging.getLogger("minyi.web.unit")

router = APIRouter(include_in_schema=False)

ROLES = ("unit",)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IDEM = re.compile(r"^[0-9a-f]{32}$")
_YUAN = re.compile(r"^\d{1,12}\.\d{2}$")
FORMS = ("meeting", "view", "reply", "extension", "progress", "spending")
DONE = {
    "meeting": "已登记“三见面”记录。",
    "view": "协办意见已送交主办单位。",
    "reply": "答复已提交，领衔代表现在可以评价。",
    "extension": "延期申请已提交，人大常委会批准后新的答复期限会显示在这里。",
    "extended": "已延期，新的答复期限见上方。",
    "progress": "本年度回头看进展已报送。",
    "spending": "资金使用已登记。",
}
# The service's field names, per form, as the page's field ids (`meeting-at` …); others go to the form's top.
FIELDS = {
    "meeting": ("stage", "at", "note"),
    "view": ("content",),
    "reply": ("content", "outcome", "planned_year", "public"),
    "extension": ("reason", "months"),
    "progress": ("note", "outcome"),
    "spending": ("amount", "note"),
}


def _calls(request: Request, session: WorkSession) -> UnitCalls:
    return UnitCalls(web_of(request).upstreams, session)


async def _unit_names(request: Request, calls: UnitCalls, region_code: str) -> dict[str, str]:
    """Names of the region's units, for "主办 / 协办" columns; ids stand in when the list is out of reach."""
    web = web_of(request)
    try:
        names = await web.public.get(("unit-names", region_code[:6]), lambda: calls.unit_names(region_code))
    except (Unavailable, UpstreamError) as exc:
        log.warning("no unit names: %s", exc)
        return {}
    return dict(names)  # type: ignore[call-overload]


def _work_nav(request: Request, session: WorkSession) -> list[Any]:
    return nav(request, session)  # the unit's pages are one section: "承办建议"


# ---- the list and its exports --------------------------------------------------------------------


@router.get("/work/unit")
async def unit_list(request: Request) -> Response:
    session = await require(request, ROLES)
    filters = unit_view.parse_filters(request.query_params)
    calls = _calls(request, session)
    found = await calls.list(status=filters.status, color=filters.color, year=filters.year,
                             limit=unit_view.PAGE_SIZE + 1, offset=filters.offset)
    names = await _unit_names(request, calls, session.region)
    this_year = datetime.now(SHANGHAI).year
    return web_of(request).pages.render(
        request, "unit_list.html", private=True, posts=True, session=session,
        work_nav=_work_nav(request, session), filters=filters, items=found[:unit_view.PAGE_SIZE],
        more=len(found) > unit_view.PAGE_SIZE, names=names, v=unit_view, years=range(this_year, this_year - 6, -1),
        export_query=filters.query(page=1))


async def _everything(calls: UnitCalls, filters: Filters) -> list[Suggestion]:
    found: list[Suggestion] = []
    step = 1000
    while len(found) < unit_view.EXPORT_MAX:
        batch = await calls.list(status=filters.status, color=filters.color, year=filters.year, limit=step,
                                 offset=len(found))
        found += batch
        if len(batch) < step:
            break
    return found[:unit_view.EXPORT_MAX]


def _download(data: bytes, media_type: str, extension: str) -> Response:
    day = datetime.now(SHANGHAI).strftime("%Y%m%d")
    name = f"承办建议-{day}.{extension}"
    return Response(data, media_type=media_type, headers={
        # An ASCII name for old clients, the Chinese one for every current browser.
        "Content-Disposition": f"attachment; filename=\"unit-suggestions-{day}.{extension}\"; "
                               f"filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store"})


async def _export_rows(request: Request) -> list[list[str | int]]:
    session = await require(request, ROLES)
    filters = unit_view.parse_filters(request.query_params)
    calls = _calls(request, session)
    found = await _everything(calls, filters)
    names = await _unit_names(request, calls, session.region)
    return unit_view.export_rows(found, session.unit_id, names)


@router.get("/work/unit/suggestions.xlsx")
async def export_xlsx(request: Request) -> Response:
    rows = await _export_rows(request)
    data = unit_export.to_xlsx(unit_view.EXPORT_HEADERS, rows, sheet="承办建议")
    return _download(data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")


@router.get("/work/unit/suggestions.csv")
async def export_csv(request: Request) -> Response:
    rows = await _export_rows(request)
    return _download(unit_export.to_csv(unit_view.EXPORT_HEADERS, rows), "text/csv; charset=utf-8", "csv")


# ---- one suggestion ------------------------------------------------------------------------------


def _keys() -> dict[str, str]:
    """A fresh idempotency key for each form on the page: a resent form acts once."""
    return {name: uuid.uuid4().hex for name in FORMS}


def _notice(query: Mapping[str, str]) -> str | None:
    done = query.get("done", "")
    if done not in DONE:
        return None
    text = DONE[done]
    spent, balance = query.get("spent", ""), query.get("balance", "")
    if done == "spending" and _YUAN.match(spent) and _YUAN.match(balance):
        text = f"已登记使用 {spent} 元，微建议资金余额 {balance} 元。"
    return text


async def _detail(request: Request, session: WorkSession, s: Suggestion, *, errors: dict[str, str] | None = None,
                  values: dict[str, str] | None = None, status: int = 200, notice: str | None = None) -> Response:
    calls = _calls(request, session)
    names = await _unit_names(request, calls, s.region_code or session.region)
    role = unit_view.role_of(s, session.unit_id)
    return web_of(request).pages.render(
        request, "unit_suggestion.html", status=status, private=True, posts=True, session=session,
        work_nav=_work_nav(request, session), s=s, names=names, role=role, forms=unit_view.forms_for(s, role),
        meetings=unit_view.meetings_of(s), views=unit_view.views_of(s), progress=unit_view.progress_of(s),
        extension=unit_view.extension_of(s), outcomes=unit_view.outcome_choices(s), errors=errors or {},
        values=values or {}, keys=_keys(), notice=notice, v=unit_view,
        may_extend="npc_staff" in session.roles,
        now_local=datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M"), this_year=datetime.now(SHANGHAI).year)


def _suggestion_id(suggestion_id: str) -> str | None:
    return suggestion_id if _ID.match(suggestion_id) else None


@router.get("/work/unit/suggestions/{suggestion_id}")
async def suggestion_page(suggestion_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if _suggestion_id(suggestion_id) is None:
        return error_pages.not_found_page(request)
    s = await _calls(request, session).get(suggestion_id)
    return await _detail(request, session, s, notice=_notice(request.query_params))


# ---- actions -------------------------------------------------------------------------------------


Built = tuple[dict[str, Any], dict[str, str]]


def _meeting(form: Mapping[str, str], s: Suggestion) -> Built:
    errors: dict[str, str] = {}
    stage = form.get("stage", "")
    if stage not in unit_view.STAGES:
        errors["stage"] = "请选择是哪一次见面：办理前、办理中或办理后。"
    at = unit_view.parse_meeting_time(form.get("at", ""), datetime.now(UTC))
    if at is None:
        errors["at"] = "请填写见面的日期和时间，例如 2026-03-05 14:30。"
    note = form.get("note", "").strip()
    if not note:
        errors["note"] = "请简要记录见面的情况：和谁见面、谈了什么。"
    return {"stage": stage, "at": at.isoformat() if at else "", "note": note}, errors


def _view(form: Mapping[str, str], s: Suggestion) -> Built:
    content = form.get("content", "").strip()
    return {"content": content}, ({} if content else {"content": "请填写本单位的协办意见。"})


def _reply(form: Mapping[str, str], s: Suggestion) -> Built:
    errors: dict[str, str] = {}
    content = form.get("content", "").strip()
    if not content:
        errors["content"] = "请填写答复内容。"
    outcome = form.get("outcome", "")
    choices = {c.code: c for c in unit_view.outcome_choices(s)}
    if outcome not in choices:
        errors["outcome"] = "请选择办理结果的类别。"
    year_text = form.get("planned_year", "").strip()
    year = unit_view.planned_year(year_text)
    if year_text and year is None:
        errors["planned_year"] = "计划解决年度应为四位年份，例如 2027。"
    elif outcome in choices and choices[outcome].needs_planned_year and year is None:
        errors["planned_year"] = f"{outcome} 类答复须写明计划在哪一年解决。"
    public = form.get("public", "")
    if public not in ("yes", "no"):
        errors["public"] = "请选择答复是否向社会公开。"
    body = {"unit_id": s.lead_unit_id or "", "content": content, "outcome": outcome, "planned_year": year,
            "public": public == "yes"}
    return body, errors


def _extension(form: Mapping[str, str], s: Suggestion) -> Built:
    reason = form.get("reason", "").strip()
    months_text = form.get("months", "3")
    months = int(months_text) if months_text in ("1", "2", "3") else None
    errors: dict[str, str] = {}
    if len(reason) < 2:
        errors["reason"] = "请写明需要延期的理由。"
    if months is None:
        errors["months"] = "请选择延期 1 至 3 个月。"
    return {"reason": reason, "months": months or 3}, errors


def _progress(form: Mapping[str, str], s: Suggestion) -> Built:
    note = form.get("note", "").strip()
    outcome = form.get("outcome", "")
    errors: dict[str, str] = {}
    if not note:
        errors["note"] = "请写明本年度的办理进展。"
    if outcome and outcome not in {c.code for c in unit_view.outcome_choices(s)}:
        errors["outcome"] = "请从列表中选择办理结果。"
    body: dict[str, Any] = {"unit_id": s.lead_unit_id or "", "note": note}
    if outcome:
        body["outcome"] = outcome
    return body, errors


def _spending(form: Mapping[str, str], s: Suggestion) -> Built:
    amount = unit_view.parse_amount(form.get("amount", ""))
    note = form.get("note", "").strip()
    errors: dict[str, str] = {}
    if amount is None:
        errors["amount"] = "请填写金额（元），例如 1200 或 1200.50。"
    if len(note) < 2:
        errors["note"] = "请写明资金用在了哪里。"
    return {"amount": amount or "", "note": note}, errors


ACTIONS: dict[str, tuple[str, Callable[[Mapping[str, str], Suggestion], Built]]] = {
    "meeting": ("meetings", _meeting),
    "view": ("assisting-views", _view),
    "reply": ("replies", _reply),
    "extension": ("extension-request", _extension),
    "progress": ("progress", _progress),
    "spending": ("spending", _spending),
}


def _field_errors(name: str, exc: UpstreamError) -> dict[str, str]:
    """The service's refusal next to the fields of form `name` (`reply-outcome` …), else at the form's top."""
    mapped: dict[str, str] = {}
    for field_name, message in exc.field_errors().items():
        base = field_name.split("[", 1)[0].split(".", 1)[0]
        key = f"{name}-{base}" if base in FIELDS[name] else f"{name}-form"
        mapped.setdefault(key, message)
    return mapped or {f"{name}-form": exc.detail or "没有办理成功，请检查后再试。"}


async def _act(request: Request, suggestion_id: str, name: str) -> Response:
    session = await require(request, ROLES)
    if _suggestion_id(suggestion_id) is None:
        return error_pages.not_found_page(request)
    form_data = await request.form(max_files=0, max_fields=20, max_part_size=64 * 1024)
    form = {k: v for k, v in form_data.items() if isinstance(v, str)}
    calls = _calls(request, session)
    # Read first: a unit that may not see the suggestion gets the service's refusal as a page, not a form.
    s = await calls.get(suggestion_id)
    values = {f"{name}-{k}": v for k, v in form.items() if k not in ("csrf", "idem")}

    async def again(errors: dict[str, str], status: int = 422) -> Response:
        return await _detail(request, session, s, errors=errors, values=values, status=status)

    valid, expired = web_of(request).pages.csrf_ok(request, form.get("csrf") or None)
    if not valid:
        return await again({f"{name}-form": "页面打开的时间太长了，为了安全请再提交一次。" if expired else
                            "为了安全，请再提交一次（如果一直出现这个提示，请允许浏览器保存 Cookie）。"}, status=400)
    action, build = ACTIONS[name]
    body, errors = build(form, s)
    if errors:
        return await again({f"{name}-{k}": m for k, m in errors.items()})
    key = form.get("idem", "")
    key = f"web-unit-{key if _IDEM.match(key) else uuid.uuid4().hex}"
    extra: dict[str, str] = {}
    done = name
    if name == "extension" and "npc_staff" in session.roles:
        # Congress staff signed in here extend outright; a unit asks them to.
        action, done = "extension", "extended"
    try:
        if name == "spending":
            fund = await calls.spend(suggestion_id, body["amount"], body["note"], key)
            extra = {"spent": body["amount"], "balance": fund.balance}
        else:
            await calls.act(suggestion_id, action, body, key)
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            return await again(_field_errors(name, exc), status=exc.status)
        raise
    query = urlencode({"done": done, **extra})
    return RedirectResponse(f"/work/unit/suggestions/{suggestion_id}?{query}#{name}", status_code=303)


# The forms of a suggestion's page, each POSTed to `/work/unit/suggestions/{id}/{form}` (`FORMS`;
# the meetings' form posts to `meetings`).
POSTED = {("meetings" if name == "meeting" else name): name for name in FORMS}


@router.post("/work/unit/suggestions/{suggestion_id}/{posted}")
async def post_form(suggestion_id: str, posted: str, request: Request) -> Response:
    name = POSTED.get(posted)
    if name is None:
        return error_pages.not_found_page(request)
    return await _act(request, suggestion_id, name)
