"""The congress staff's console pages: overview, reports, suggestions, hotspots and the audit log.

- `/console/overview`: the region's year at a glance, each figure a link to the list it counts.
- `/console/reports`: the region's reports (masked), filtered by deputy, station, year, overdue.
- `/console/suggestions`: the year's suggestions, filtered in the URL, exported, assigned one by one
  or many at once; `/console/suggestions/{id}`: the timeline, assignment (交办, 重点督办), the
  director's meeting decision (主任会议) and the extension.
- `/console/hotspots`: hotspots and supervision topics; `/console/hotspots/{id}`: the reports side by
  side, convert into a key suggestion, close with a note, split, merge.
- `/console/audit`: the services' audit logs, one or all merged.

Everything is read and done through the services' APIs with the signed-in person's token: a
staff token covers its region, so the pages show and do what the services allow it and nothing
more. Each action is a plain form POST with a CSRF token answered with 303 and a notice, or the
same page again with the service's words next to the field and what was typed kept.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import console_staff_audit as audit_view
from services.web import console_staff_hotspots as hotspot_view
from services.web import console_staff_overview as overview
from services.web import console_staff_suggestions as suggestion_view
from services.web import error_pages, station_calls, unit_export, unit_view
from services.web.console_home import console_nav
from services.web.console_staff_calls import (
    AUDITED,
    AuditPage,
    HotspotDetail,
    StaffCalls,
    StaffSuggestion,
    failed,
    settled,
)
from services.web.console_staff_suggestions import Checked
from services.web.context import web_of
from services.web.signed_in import require
from services.web.upstreams import Stats, Unavailable, UpstreamError
from services.web.words import SHANGHAI
from services.web.work_session import WorkSession

log = logging.getLogger("minyi.web.console.staff")

router = APIRouter(include_in_schema=False)

ROLES = ("npc_staff",)
_IDEM = re.compile(r"^[0-9a-f]{32}$")
_BACK = re.compile(r"^[A-Za-z0-9_=&%.+~-]{0,600}$")
# Member reports read for a hotspot's page; a larger cluster lists the rest by id only.
MEMBERS_READ = 60
# Assignments sent to the suggestions service at once when many are assigned together.
BULK_PARALLEL = 4
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(SHANGHAI)


def _calls(request: Request, session: WorkSession) -> StaffCalls:
    return StaffCalls(web_of(request).upstreams, session)


def _render(request: Request, session: WorkSession, template: str, *, status: int = 200, **context: Any) -> Response:
    return web_of(request).pages.render(request, template, status=status, private=True, posts=True,
                                        session=session, work_nav=console_nav(request, session), **context)


async def _form(request: Request, fields: int = 40) -> FormData:
    return await request.form(max_files=0, max_fields=fields, max_part_size=64 * 1024)


def _csrf_problem(request: Request, form: FormData) -> str | None:
    token = form.get("csrf")
    valid, expired = web_of(request).pages.csrf_ok(request, token if isinstance(token, str) and token else None)
    if valid:
        return None
    return ("页面打开的时间太长了，为了安全请再提交一次。" if expired else
            "为了安全，请再提交一次（如果一直出现这个提示，请允许浏览器保存 Cookie）。")


def _key(form: FormData, prefix: str) -> str:
    """The form's idempotency key (a fresh one for a form that came without a proper one)."""
    sent = form.get("idem")
    return f"web-console-{prefix}-{sent if isinstance(sent, str) and _IDEM.match(sent) else uuid.uuid4().hex}"


def _refusal(exc: UpstreamError, name: str, fields: tuple[str, ...]) -> dict[str, str]:
    """The service's refusal next to form `name`'s fields (`assign-lead_unit_id` …), else at its top."""
    mapped: dict[str, str] = {}
    for field_name, message in exc.field_errors().items():
        base = field_name.split("[", 1)[0].split(".", 1)[0]
        mapped.setdefault(f"{name}-{base}" if base in fields else f"{name}-form", message)
    return mapped or {f"{name}-form": exc.detail or "没有办理成功，请检查后再试。"}


async def _or_empty(load: Awaitable[T], empty: T, what: str) -> T:
    """A name list the page can do without (ids stand in): empty when the service cannot give it now."""
    try:
        return await load
    except (Unavailable, UpstreamError) as exc:
        log.warning("no %s: %s", what, exc)
        return empty


async def _unit_names(request: Request, calls: StaffCalls, region: str) -> dict[str, str]:
    names = await _or_empty(web_of(request).public.get(("unit-names", region[:6]), lambda: calls.unit_names(region)),
                            {}, "unit names")
    return dict(names)  # type: ignore[call-overload]


async def _deputy_names(calls: StaffCalls) -> dict[str, str]:
    return {d.id: d.name for d in await _or_empty(calls.directory("deputies"), [], "deputy names")}


async def _target_names(calls: StaffCalls) -> dict[tuple[str, str], str]:
    """(kind, id) → name of the region's deputies and stations, two directory reads however many rows."""
    deputies, stations = await asyncio.gather(_or_empty(calls.directory("deputies"), [], "deputy names"),
                                              _or_empty(calls.directory("stations"), [], "station names"))
    return {**{("deputy", d.id): d.name for d in deputies}, **{("station", s.id): s.name for s in stations}}


async def _categories(request: Request) -> dict[str, str]:
    web = web_of(request)
    found = await _or_empty(web.categories.get("all", web.upstreams.categories), [], "categories")
    return {c.code: c.label for c in found}


def _raise_unexpected(results: list[Any]) -> None:
    """A dashboard shows what it could read; anything but a service's refusal or silence is a bug."""
    for result in results:
        if isinstance(result, BaseException) and not failed(result):
            raise result


# ---- overview ------------------------------------------------------------------------------------


@router.get("/console/overview")
async def overview_page(request: Request) -> Response:
    session = await require(request, ROLES)
    calls = _calls(request, session)
    now = _now()
    year_text = request.query_params.get("year", "")
    year = int(year_text) if year_text.isdigit() and 2000 <= int(year_text) <= now.year else now.year
    months = overview.months_for(year, now)
    web = web_of(request)

    async def stats() -> Stats | None:
        if months is None:
            return None
        # Intake's public figures: the public statistics board caches the same answer under the same key.
        return await web.public.get(("stats", session.region, months),  # type: ignore[return-value]
                                    lambda: calls.stats(session.region, months))

    results, names = await asyncio.gather(settled(
        stats(), calls.target_stats(session.region, year),
        calls.report_total({"open": "true", "overdue": "true"}), calls.counts(year),
        calls.hotspots(state="open", days=365), calls.topics("open"), calls.fund(session.region, year),
        _unit_names(request, calls, session.region)), _target_names(calls))
    _raise_unexpected(results)
    figures, targets, overdue, counts, hotspots, topics, fund, units = (None if failed(r) else r for r in results)
    deputies, stations = overview.target_rows(targets.targets, names, year) if targets is not None else ([], [])
    return _render(
        request, session, "console_staff_overview.html", year=year, years=suggestion_view.years(now.year),
        reports=overview.report_figures(figures.months, year) if figures is not None else None,
        stats_missing=months is None, overdue=overdue, targets=targets, by_deputy=deputies, by_station=stations,
        counts=counts, colors=overview.color_figures(counts) if counts else [],
        statuses=overview.status_figures(counts) if counts else [],
        units=overview.unit_figures(counts, units or {}) if counts else [],
        hotspots=hotspots, topics=topics, fund=fund, o=overview,
        unavailable=[what for what, r in zip(
            ("群众反映统计", "按代表和联络站的统计", "超期反映", "建议统计", "共性事项", "监督议题", "微建议资金",
             "承办单位名称"), results, strict=True) if failed(r)])


@router.get("/console/reports")
async def reports_page(request: Request) -> Response:
    session = await require(request, ROLES)
    calls = _calls(request, session)
    web = web_of(request)
    filters = overview.parse_report_filters(request.query_params)
    page = await calls.reports(filters.intake_params(), page=filters.page, page_size=overview.REPORTS_PAGE)
    results = await settled(station_calls.names_of(web.upstreams, session, page.items), calls.directory("deputies"),
                            calls.directory("stations"), _categories(request))
    _raise_unexpected(results)
    names, deputies, stations, categories = (None if failed(r) else r for r in results)
    pages = max(1, -(-page.total // overview.REPORTS_PAGE))
    return _render(request, session, "console_staff_reports.html", filters=filters, page=page, pages=pages,
                   names=names or {}, deputies=deputies or [], stations=stations or [], categories=categories or {},
                   years=suggestion_view.years(_now().year), o=overview, now=_now())


# ---- suggestions: the list, exports, assigning many ---------------------------------------------


async def _list_page(request: Request, session: WorkSession, query: Mapping[str, str], *, status: int = 200,
                     errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                     refused: dict[str, str] | None = None, chosen: tuple[str, ...] = (),
                     notice: str | None = None) -> Response:
    calls = _calls(request, session)
    this_year = _now().year
    filters = suggestion_view.parse_filters(query, this_year)
    found, units, deputies = await asyncio.gather(
        calls.suggestions(filters.params(), limit=suggestion_view.PAGE_SIZE + 1, offset=filters.offset),
        _unit_names(request, calls, session.region), _deputy_names(calls))
    if notice is None and query.get("done") == "assigned":
        notice = suggestion_view.bulk_notice(query.get("n", ""))
    titles = {s.id: s.title for s in found}
    # A refused one may have left the list's filter (assigned meanwhile): its title is read on its own.
    missing = [i for i in (refused or {}) if i not in titles]
    for i, got in zip(missing, await settled(*(calls.suggestion(i) for i in missing)), strict=True):
        titles[i] = i if isinstance(got, BaseException) else got.title
    return _render(
        request, session, "console_staff_suggestions.html", status=status, filters=filters,
        items=found[:suggestion_view.PAGE_SIZE], more=len(found) > suggestion_view.PAGE_SIZE, units=units,
        deputies=deputies, years=suggestion_view.years(this_year), sv=suggestion_view, v=unit_view,
        errors=errors or {}, values=values or {}, refused=refused or {}, titles=titles, chosen=chosen, notice=notice,
        back=filters.query(), idem=uuid.uuid4().hex, export_query=filters.query(page=1))


@router.get("/console/suggestions")
async def suggestions_page(request: Request) -> Response:
    session = await require(request, ROLES)
    return await _list_page(request, session, request.query_params)


async def _export_rows(request: Request) -> list[list[str | int]]:
    session = await require(request, ROLES)
    calls = _calls(request, session)
    filters = suggestion_view.parse_filters(request.query_params, _now().year)
    found: list[StaffSuggestion] = []
    step = 1000
    while len(found) < suggestion_view.EXPORT_MAX:
        batch = await calls.suggestions(filters.params(), limit=step, offset=len(found))
        found += batch
        if len(batch) < step:
            break
    units, deputies = await asyncio.gather(_unit_names(request, calls, session.region), _deputy_names(calls))
    return suggestion_view.export_rows(found[:suggestion_view.EXPORT_MAX], units, deputies)


def _download(data: bytes, media_type: str, extension: str) -> Response:
    day = _now().strftime("%Y%m%d")
    name = f"代表建议-{day}.{extension}"
    return Response(data, media_type=media_type, headers={
        # An ASCII name for old clients, the Chinese one for every current browser.
        "Content-Disposition": f"attachment; filename=\"suggestions-{day}.{extension}\"; "
                               f"filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store"})


@router.get("/console/suggestions.xlsx")
async def suggestions_xlsx(request: Request) -> Response:
    rows = await _export_rows(request)
    data = unit_export.to_xlsx(suggestion_view.EXPORT_HEADERS, rows, sheet="代表建议")
    return _download(data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")


@router.get("/console/suggestions.csv")
async def suggestions_csv(request: Request) -> Response:
    rows = await _export_rows(request)
    return _download(unit_export.to_csv(suggestion_view.EXPORT_HEADERS, rows), "text/csv; charset=utf-8", "csv")


ASSIGN_FIELDS = ("lead_unit_id", "assisting_unit_ids", "supervisor", "key")


@router.post("/console/suggestions/assignment")
async def assign_many(request: Request) -> Response:
    """交办 many at once: the ticked suggestions, each to the same units. Each goes to the service on
    its own (a suggestion assigned meanwhile is refused alone); the page says which were not."""
    session = await require(request, ROLES)
    form = await _form(request, fields=suggestion_view.BULK_MAX + 60)
    back = form.get("back")
    back = back if isinstance(back, str) and _BACK.match(back) else ""
    query = dict(parse_qsl(back))
    ids, id_problem = suggestion_view.chosen_ids(form)
    calls = _calls(request, session)
    checked = suggestion_view.check_assignment(form, await _unit_names(request, calls, session.region))

    async def again(errors: dict[str, str], status: int, refused: dict[str, str] | None = None,
                    notice: str | None = None) -> Response:
        return await _list_page(request, session, query, status=status, errors=errors, values=checked.values,
                                refused=refused, chosen=tuple(ids), notice=notice)

    if (problem := _csrf_problem(request, form)) is not None:
        return await again({"bulk-form": problem}, 400)
    errors = {f"bulk-{k}": m for k, m in checked.errors.items()}
    if id_problem:
        errors["bulk-ids"] = id_problem
    if errors:
        return await again(errors, 422)
    key = _key(form, "assign")
    gate = asyncio.Semaphore(BULK_PARALLEL)

    async def one(suggestion_id: str) -> tuple[str, str | None]:
        async with gate:
            try:
                await calls.act(suggestion_id, "assignment", checked.body, f"{key}-{suggestion_id}")
            except UpstreamError as exc:
                if exc.status in (403, 404, 409, 422):
                    return suggestion_id, exc.detail or "没有交办成功。"
                raise
        return suggestion_id, None

    results = await asyncio.gather(*(one(i) for i in ids))
    outcome = suggestion_view.Outcome([i for i, m in results if m is None], {i: m for i, m in results if m})
    if outcome.refused:
        # What went through stays done; the page lists the rest with the service's words, still ticked.
        ids = list(outcome.refused)
        status = 409 if outcome.assigned else 422
        return await again({} if outcome.assigned else {"bulk-form": outcome.summary}, status,
                           refused=outcome.refused, notice=outcome.summary if outcome.assigned else None)
    to = "&".join(q for q in (back, urlencode({"done": "assigned", "n": len(outcome.assigned)})) if q)
    return RedirectResponse(f"/console/suggestions?{to}", status_code=303)


# ---- one suggestion ------------------------------------------------------------------------------

DONE = {
    "assign": "已交办，承办单位会在工作台看到这件建议。",
    "decision": "主任会议的决定已登记。",
    "extension": "已延期，新的答复期限见上方。",
    "converted": "已由监督议题转为建议，请交办并确定是否重点督办。",
}
FORMS: dict[str, tuple[str, Callable[..., Checked], tuple[str, ...]]] = {
    # posted path → (the service's action, the form's check, its fields)
    "assignment": ("assignment", suggestion_view.check_assignment, ASSIGN_FIELDS),
    "decision": ("director-decision", suggestion_view.check_decision, ("decision", "note")),
    "extension": ("extension", suggestion_view.check_extension, ("reason", "months")),
}
FORM_NAMES = {"assignment": "assign", "decision": "decision", "extension": "extension"}


async def _detail(request: Request, session: WorkSession, s: StaffSuggestion, *, status: int = 200,
                  errors: dict[str, str] | None = None, values: dict[str, dict[str, Any]] | None = None,
                  notice: str | None = None) -> Response:
    calls = _calls(request, session)
    units, deputies = await asyncio.gather(_unit_names(request, calls, s.region_code or session.region),
                                           _deputy_names(calls))
    return _render(
        request, session, "console_staff_suggestion.html", status=status, s=s, units=units, deputies=deputies,
        sv=suggestion_view, v=unit_view, meetings=unit_view.meetings_of(s), views=unit_view.views_of(s),
        extension=unit_view.extension_of(s), errors=errors or {}, values=values or {}, notice=notice,
        keys={name: uuid.uuid4().hex for name in FORM_NAMES.values()}, decisions=suggestion_view.DECISIONS,
        this_year=_now().year)


def _valid_id(ident: str) -> bool:
    return bool(suggestion_view.ID.match(ident))


@router.get("/console/suggestions/{suggestion_id}")
async def suggestion_page(suggestion_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if not _valid_id(suggestion_id):
        return error_pages.not_found_page(request)
    s = await _calls(request, session).suggestion(suggestion_id)
    return await _detail(request, session, s, notice=DONE.get(request.query_params.get("done", "")))


@router.post("/console/suggestions/{suggestion_id}/{posted}")
async def suggestion_action(suggestion_id: str, posted: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if posted not in FORMS or not _valid_id(suggestion_id):
        return error_pages.not_found_page(request)
    action, check, fields = FORMS[posted]
    name = FORM_NAMES[posted]
    form = await _form(request)
    calls = _calls(request, session)
    # Read first: a suggestion the service does not show this person is its refusal as a page, not a form.
    s = await calls.suggestion(suggestion_id)
    checked = check(form, await _unit_names(request, calls, s.region_code or session.region)) \
        if posted == "assignment" else check(form)

    async def again(errors: dict[str, str], status: int) -> Response:
        return await _detail(request, session, s, status=status, errors=errors, values={name: checked.values})

    if (problem := _csrf_problem(request, form)) is not None:
        return await again({f"{name}-form": problem}, 400)
    if checked.errors:
        return await again({f"{name}-{k}": m for k, m in checked.errors.items()}, 422)
    try:
        await calls.act(suggestion_id, action, checked.body, _key(form, name))
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            return await again(_refusal(exc, name, fields), exc.status)
        raise
    return RedirectResponse(f"/console/suggestions/{suggestion_id}?done={name}#{name}", status_code=303)


# ---- hotspots and supervision topics -------------------------------------------------------------


@router.get("/console/hotspots")
async def hotspots_page(request: Request) -> Response:
    session = await require(request, ROLES)
    calls = _calls(request, session)
    filters = hotspot_view.parse_filters(request.query_params)
    hotspots, topics, categories = await asyncio.gather(
        calls.hotspots(state=filters.state, days=filters.days), calls.topics(filters.topics), _categories(request))
    shown, more = hotspot_view.page_of(hotspots, filters.page)
    shown_topics, more_topics = hotspot_view.page_of(topics, filters.topic_page)
    return _render(request, session, "console_staff_hotspots.html", filters=filters, hotspots=shown,
                   hotspot_total=len(hotspots), more=more, topics=shown_topics, topic_total=len(topics),
                   more_topics=more_topics, categories=categories, hv=hotspot_view)


HOTSPOT_DONE = {
    "closed": "已关闭，关闭理由会告诉反映这个问题的群众。",
    "split": "已拆分：勾选的反映组成了这个新的事项。",
    "merged": "已合并：另一个事项的反映都并入了这里。",
}
HOTSPOT_FORMS = ("conversion", "closure", "split", "merge")


async def _hotspot_page(request: Request, session: WorkSession, detail: HotspotDetail, *, status: int = 200,
                        errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                        notice: str | None = None) -> Response:
    calls = _calls(request, session)
    read = [m.report_id for m in detail.members[:MEMBERS_READ]]
    results = await settled(calls.topics(None), calls.report_briefs(read), calls.directory("deputies"),
                            calls.hotspots(state="open", days=365), _categories(request))
    _raise_unexpected(results)
    topics, briefs, deputies, others, categories = (None if failed(r) else r for r in results)
    topic = hotspot_view.topic_of(topics or [], detail.id)
    category = (categories or {}).get(detail.category, detail.category)
    return _render(
        request, session, "console_staff_hotspot.html", status=status, h=detail, topic=topic,
        topics_missing=topics is None, category=category,
        members=hotspot_view.members(detail, briefs or {}, overview.REPORT_STATUS),
        unread=detail.members[MEMBERS_READ:], deputies=deputies or [], deputies_missing=deputies is None,
        others=[o for o in (others or []) if o.id != detail.id], categories=categories or {},
        errors=errors or {}, values=values or {}, notice=notice, hv=hotspot_view, idem=uuid.uuid4().hex,
        draft_title=hotspot_view.draft_title(detail, category),
        draft_content=hotspot_view.draft_content(detail, category), this_year=_now().year)


@router.get("/console/hotspots/{hotspot_id}")
async def hotspot_page(hotspot_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if not _valid_id(hotspot_id):
        return error_pages.not_found_page(request)
    detail = await _calls(request, session).hotspot(hotspot_id)
    return await _hotspot_page(request, session, detail, notice=HOTSPOT_DONE.get(request.query_params.get("done", "")))


@router.post("/console/hotspots/{hotspot_id}/{posted}")
async def hotspot_action(hotspot_id: str, posted: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if posted not in HOTSPOT_FORMS or not _valid_id(hotspot_id):
        return error_pages.not_found_page(request)
    form = await _form(request, fields=hotspot_view.MAX_SPLIT + 20)
    calls = _calls(request, session)
    detail = await calls.hotspot(hotspot_id)
    if posted == "conversion":
        deputies = {d.id: d.name for d in await _or_empty(calls.directory("deputies"), [], "deputies")}
        checked = hotspot_view.check_conversion(form, deputies)
        fields: tuple[str, ...] = ("title", "content", "lead_deputy_id", "year")
    elif posted == "closure":
        checked, fields = hotspot_view.check_closure(form), ("note",)
    elif posted == "split":
        checked, fields = hotspot_view.check_split(form, detail), ("report_ids", "note")
    else:
        checked, fields = hotspot_view.check_merge(form, hotspot_id), ("hotspot_id", "note")

    async def again(errors: dict[str, str], status: int) -> Response:
        return await _hotspot_page(request, session, detail, status=status, errors=errors,
                                   values={f"{posted}-{k}": v for k, v in checked.values.items()})

    if (problem := _csrf_problem(request, form)) is not None:
        return await again({f"{posted}-form": problem}, 400)
    if checked.errors:
        return await again({f"{posted}-{k}": m for k, m in checked.errors.items()}, 422)
    try:
        if posted == "conversion":
            suggestion_id = await calls.convert(hotspot_id, checked.body, _key(form, "convert"))
            return RedirectResponse(f"/console/suggestions/{suggestion_id}?done=converted", status_code=303)
        if posted == "closure":
            topics = await calls.topics(None)
            topic = hotspot_view.topic_of(topics, hotspot_id)
            if topic is not None and topic.status == "open":
                # The topic's closure closes the hotspot too, and tells the citizens why.
                await calls.close_topic(hotspot_id, checked.body["note"])
            else:
                await calls.correct(hotspot_id, "closure", checked.body)
            return RedirectResponse(f"/console/hotspots/{hotspot_id}?done=closed", status_code=303)
        if posted == "split":
            new = await calls.correct(hotspot_id, "split", checked.body)
            return RedirectResponse(f"/console/hotspots/{new.id}?done=split", status_code=303)
        await calls.correct(hotspot_id, "merge", checked.body)
        return RedirectResponse(f"/console/hotspots/{hotspot_id}?done=merged", status_code=303)
    except UpstreamError as exc:
        if exc.status in (403, 404, 409, 422):
            return await again(_refusal(exc, posted, fields), exc.status)
        raise


# ---- the audit log -------------------------------------------------------------------------------


@router.get("/console/audit")
async def audit_page(request: Request) -> Response:
    session = await require(request, ROLES)
    calls = _calls(request, session)
    filters, errors = audit_view.parse_filters(request.query_params)
    cursor = audit_view.parse_cursor(filters.cursor, AUDITED) or {}
    services = audit_view.wanted(cursor, filters.services)
    params = {**filters.params(), "limit": audit_view.PAGE_SIZE}

    async def read(service: str) -> AuditPage:
        before = audit_view.before_of(cursor, service)
        return await calls.audit(service, {**params, **({"before": before} if before else {})})

    # A filter typed wrong reads nothing: the page says what to correct rather than show an unfiltered log.
    asked = [] if errors else services
    results = await settled(*(read(s) for s in asked))
    _raise_unexpected(results)
    pages = {s: r for s, r in zip(asked, results, strict=True) if not failed(r)}
    rows, following = audit_view.merge(pages, cursor)
    missing = [audit_view.SERVICE[s] for s, r in zip(asked, results, strict=True) if failed(r)]
    return _render(request, session, "console_staff_audit.html", filters=filters, errors=errors, rows=rows,
                   next_query=filters.query(cursor=audit_view.cursor_text(following)) if following else None,
                   missing=missing, av=audit_view, services=AUDITED)
