"""The deputy's suggestions (代表建议): the list with each one's colour, a new one with co-signers,
and one suggestion with its timeline, the units' replies and the evaluation form.

Co-signers are found by name among the deputies of the deputy's region: identity's listing
(`GET /v1/deputies?q=`) searches it for the deputy's own token and answers names, never phones.
Searching is a button of the same form, so the draft's words and the co-signers already chosen
stay as they are, with JavaScript or without. The names of chosen co-signers come from the
region's whole list, read in pages and kept a minute.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web.context import web_of
from services.web.deputy_calls import DeputyCalls, DeputyName, Suggestion
from services.web.deputy_frame import csrf_error, form_key, read_form, render, signed_in, text
from services.web.deputy_view import (
    COLOR,
    DECISION,
    EVALUATION,
    MEETING_STAGE,
    STEP_KIND,
    SUGGESTION_KIND,
    SUGGESTION_STATUS,
    check_evaluation,
    check_suggestion,
    matching_deputies,
)
from services.web.upstreams import Unavailable, UpstreamError
from services.web.words import OUTCOME, SHANGHAI

log = logging.getLogger("minyi.web.deputy")

router = APIRouter(include_in_schema=False)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PAGE_SIZE = 20
MAX_CO_SIGNERS = 100
# Matches shown at once: a longer list is a hint to type more of the name.
MAX_MATCHES = 30
# The service's field names, as the form's.
FIELD_OF = {"title": "title", "content": "content", "kind": "kind", "co_signer_ids": "co", "lead_deputy_id": "form",
            "year": "form", "micro": "form"}
DONE = {"submitted": "建议已提交，等待人大常委会交办。交办后可以在这里看到承办单位和答复期限。",
        "evaluated": "评价已记录，谢谢您。"}


def _year() -> int:
    return datetime.now(SHANGHAI).year


async def _deputies(request: Request, calls: DeputyCalls) -> list[DeputyName]:
    """The region's deputies, to name co-signers; without identity the page shows their ids instead."""
    web = web_of(request)
    try:
        found = await web.public.get(("deputy-names", calls.session.region), calls.region_deputies)
    except (Unavailable, UpstreamError) as exc:
        log.warning("no deputy names: %s", exc)
        return []
    return list(found)  # type: ignore[call-overload]


async def _matches(calls: DeputyCalls, query: str, leave_out: set[str]) -> tuple[list[DeputyName], bool, bool]:
    """Deputies to offer as co-signers for `query`: the matches (the deputy and those chosen left
    out), whether there were more than shown, and whether identity answered at all."""
    try:
        found = await calls.find_deputies(query, MAX_MATCHES + len(leave_out) + 1)
    except (Unavailable, UpstreamError) as exc:
        log.warning("no deputies to choose co-signers from: %s", exc)
        return [], False, False
    offered = [d for d in matching_deputies(found, "", me=calls.session.deputy_id, limit=len(found))
               if d.deputy_id not in leave_out]
    return offered[:MAX_MATCHES], len(offered) > MAX_MATCHES, True


async def _unit_names(request: Request, calls: DeputyCalls) -> dict[str, str]:
    web = web_of(request)
    try:
        found = await web.public.get(("deputy-units", calls.session.region[:6]), calls.region_unit_names)
    except (Unavailable, UpstreamError) as exc:
        log.warning("no unit names: %s", exc)
        return {}
    return dict(found)  # type: ignore[call-overload]


# ---- the list ---------------------------------------------------------------------------------


@router.get("/work/deputy/suggestions")
async def suggestions(request: Request) -> Response:
    session, calls = await signed_in(request)
    params = request.query_params
    status = params.get("status", "")
    status = status if status in SUGGESTION_STATUS else ""
    color = params.get("color", "")
    color = color if color in COLOR else ""
    page_text = params.get("page", "1")
    page = max(1, min(int(page_text) if page_text.isdigit() else 1, 500))
    # One more than a page: whether there is a next page, without a count the service does not give.
    found, units = await asyncio.gather(
        calls.suggestions(status=status or None, color=color or None, limit=PAGE_SIZE + 1,
                          offset=(page - 1) * PAGE_SIZE),
        _unit_names(request, calls))

    def link(**change: str | int) -> str:
        values: dict[str, str | int] = {"status": status, "color": color, "page": 1, **change}
        return "?" + urlencode({k: v for k, v in values.items() if v not in ("", 1)})

    return render(request, session, "deputy_suggestions.html", items=found[:PAGE_SIZE], more=len(found) > PAGE_SIZE,
                  page=page, chosen_status=status, color=color, link=link, units=units, statuses=SUGGESTION_STATUS,
                  colors=COLOR, kinds=SUGGESTION_KIND)


# ---- a new suggestion ---------------------------------------------------------------------------


async def _new_page(request: Request, *, status: int = 200, title: str = "", content: str = "", kind: str = "interim",
                    micro: bool = False, chosen: list[str] | None = None, query: str = "",
                    errors: dict[str, str] | None = None, key: str | None = None) -> Response:
    session, calls = await signed_in(request)
    chosen = chosen or []
    (matches, more, listed), deputies = await asyncio.gather(
        _matches(calls, query, set(chosen)), _deputies(request, calls) if chosen else _none())
    names = {d.deputy_id: d.name for d in deputies}
    return render(request, session, "deputy_suggestion_new.html", status=status, title=title, content=content,
                  kind=kind, micro=micro, chosen=[(i, names.get(i, i)) for i in chosen], matches=matches,
                  more=more, query=query, searched=bool(query), errors=errors or {}, key=key or form_key(),
                  year=_year(), kinds=SUGGESTION_KIND, listed=listed)


async def _none() -> list[DeputyName]:
    return []


@router.get("/work/deputy/suggestions/new")
async def new_suggestion(request: Request) -> Response:
    return await _new_page(request, query=request.query_params.get("q", "")[:20])


@router.post("/work/deputy/suggestions/new")
async def submit_suggestion(request: Request) -> Response:
    session, calls = await signed_in(request)
    form = await read_form(request)
    title, content, kind = text(form, "title"), text(form, "content"), text(form, "kind")
    micro = form.get("micro") == "1"
    chosen = list(dict.fromkeys(str(v) for v in form.getlist("co") if isinstance(v, str) and _ID.match(v)))
    chosen = [c for c in chosen if c != session.deputy_id][:MAX_CO_SIGNERS]
    query = text(form, "q")[:20]
    key = form_key(form)

    async def again(errors: dict[str, str] | None = None, status: int = 200, new_key: bool = False) -> Response:
        return await _new_page(request, status=status, title=title, content=content, kind=kind, micro=micro,
                               chosen=chosen, query=query, errors=errors, key=None if new_key else key)

    if form.get("action") == "search":
        return await again()
    if (problem := csrf_error(request, form)) is not None:
        return await again({"form": problem}, 400)
    errors = check_suggestion(title, content, kind)
    if errors:
        return await again(errors, 422)
    body = {"title": title, "content": content, "lead_deputy_id": session.deputy_id, "co_signer_ids": chosen,
            "year": _year(), "kind": kind, "micro": micro}
    try:
        created = await calls.submit_suggestion(body, idempotency_key=f"web-{key}")
    except UpstreamError as exc:
        if exc.status in (409, 422):
            mapped: dict[str, str] = {}
            for name, message in exc.field_errors().items():
                target = FIELD_OF.get(name.split("[")[0])
                if target:
                    mapped.setdefault(target, message)
            # A refused form that is changed is a new form: it gets a new key.
            return await again(mapped or {"form": exc.detail or "建议没有提交成功，请检查后再试。"}, exc.status,
                               new_key=True)
        raise
    return RedirectResponse(f"/work/deputy/suggestions/{created.id}?done=submitted", status_code=303)


# ---- one suggestion -----------------------------------------------------------------------------


def _checked(suggestion_id: str) -> None:
    if not _ID.match(suggestion_id) or suggestion_id == "new":
        raise StarletteHTTPException(404)


async def _suggestion_page(request: Request, suggestion_id: str, *, status: int = 200,
                           errors: dict[str, str] | None = None, result: str = "", comment: str = "",
                           key: str | None = None) -> Response:
    session, calls = await signed_in(request)
    found, deputies, units = await asyncio.gather(calls.suggestion(suggestion_id), _deputies(request, calls),
                                                  _unit_names(request, calls))
    names = {d.deputy_id: d.name for d in deputies}
    return render(request, session, "deputy_suggestion.html", status=status, s=found, names=names, units=units,
                  statuses=SUGGESTION_STATUS, colors=COLOR, kinds=SUGGESTION_KIND, steps=STEP_KIND,
                  evaluations=EVALUATION, stages=MEETING_STAGE, decisions=DECISION, outcomes=OUTCOME,
                  can_evaluate=_can_evaluate(found, session.deputy_id), errors=errors or {}, result=result,
                  comment=comment, key=key or form_key(),
                  notice=DONE.get(request.query_params.get("done", "")) if not errors else None)


def _can_evaluate(s: Suggestion, deputy_id: str | None) -> bool:
    return s.status == "replied" and s.lead_deputy_id == deputy_id


@router.get("/work/deputy/suggestions/{suggestion_id}")
async def suggestion_page(suggestion_id: str, request: Request) -> Response:
    _checked(suggestion_id)
    return await _suggestion_page(request, suggestion_id)


@router.post("/work/deputy/suggestions/{suggestion_id}/evaluation")
async def evaluate(suggestion_id: str, request: Request) -> Response:
    _checked(suggestion_id)
    _, calls = await signed_in(request)
    form = await read_form(request)
    result, comment, key = text(form, "result"), text(form, "comment"), form_key(form)
    if (problem := csrf_error(request, form)) is not None:
        return await _suggestion_page(request, suggestion_id, status=400, errors={"result": problem}, result=result,
                                      comment=comment, key=key)
    errors = check_evaluation(result, comment)
    if errors:
        return await _suggestion_page(request, suggestion_id, status=422, errors=errors, result=result,
                                      comment=comment)
    try:
        await calls.evaluate(suggestion_id, result, comment or None, idempotency_key=f"web-{key}")
    except UpstreamError as exc:
        if exc.status in (409, 422):
            fields = exc.field_errors()
            mapped = {k: v for k, v in fields.items() if k in ("result", "comment")}
            return await _suggestion_page(request, suggestion_id, status=exc.status, result=result, comment=comment,
                                          errors=mapped or {"result": exc.detail or "评价没有成功，请刷新页面后再试。"})
        raise
    return RedirectResponse(f"/work/deputy/suggestions/{suggestion_id}?done=evaluated", status_code=303)
