"""The congress staff's console pages for scoring (ranking, talk list, units' board, rules)
and for voter-roll reconciliation.

- `/console/scoring`: the year's ranking of the staff member's region as it stands (a preview until
  published), publishing it after a confirmation page, the talk list (约谈名单) and the units' board;
  each deputy's year behind their name; exports of the ranking and the talk list.
- `/console/scoring/rules`: the rules in force and a new version as a form; the difference against
  the version in force is shown, and saving is a second press on that page.
- `/console/elections`: the region's elections; starting a reconciliation, its progress (the page
  reloads itself without JavaScript and polls with it), the findings by kind a page at a time, and
  the list for the election committee as XLSX or CSV.

Every call carries the staff member's own token, so the pages see and do exactly what scoring and
identity allow congress staff of that region. Every action is a form POST with a CSRF token: done,
it answers 303 back to the page with a notice; refused, the page comes again with the service's
words and what was typed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.web import console_elections_view as ev
from services.web import console_scoring_rules as rules_view
from services.web import console_scoring_view as sv
from services.web import error_pages, unit_export
from services.web.console_elections_calls import ElectionCalls, Finding
from services.web.console_home import console_nav
from services.web.console_scoring_calls import ScoringCalls
from services.web.context import web_of
from services.web.deputy_view import DIMENSION, PART, points_text, source_label
from services.web.public_pages import group_board
from services.web.signed_in import require
from services.web.upstreams import Region, RegionPath, Unavailable, UpstreamError
from services.web.words import GRADE, SHANGHAI
from services.web.work_session import WorkSession

log = logging.getLogger("minyi.web.console.scoring")

router = APIRouter(include_in_schema=False)

ROLES = ("npc_staff",)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
# A rules form: 200 rules of nine fields, the settings, the token.
RULES_FORM_FIELDS = 2000
ENTRIES_PAGE = 50


def _today() -> date:
    return datetime.now(SHANGHAI).date()


async def _signed_in(request: Request) -> tuple[WorkSession, ScoringCalls]:
    session = await require(request, ROLES)
    return session, ScoringCalls(web_of(request).upstreams, session)


def _render(request: Request, session: WorkSession, template: str, *, status: int = 200,
            headers: dict[str, str] | None = None, **context: Any) -> Response:
    return web_of(request).pages.render(request, template, status=status, private=True, posts=True,
                                        headers=headers, session=session, work_nav=console_nav(request, session),
                                        **context)


async def _form(request: Request, max_fields: int = 20) -> dict[str, str]:
    data = await request.form(max_files=0, max_fields=max_fields, max_part_size=64 * 1024)
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _csrf_problem(request: Request, form: Mapping[str, str]) -> str | None:
    valid, expired = web_of(request).pages.csrf_ok(request, form.get("csrf") or None)
    if valid:
        return None
    return ("页面打开的时间太长了，为了安全请再提交一次。" if expired else
            "为了安全，请再提交一次（如果一直出现这个提示，请允许浏览器保存 Cookie）。")


def _download(data: bytes, media_type: str, name: str, ascii_name: str, extension: str) -> Response:
    day = datetime.now(SHANGHAI).strftime("%Y%m%d")
    return Response(data, media_type=media_type, headers={
        # An ASCII name for old clients, the Chinese one for every current browser.
        "Content-Disposition": f"attachment; filename=\"{ascii_name}-{day}.{extension}\"; "
                               f"filename*=UTF-8''{quote(f'{name}-{day}.{extension}')}",
        "Cache-Control": "no-store"})


def _spreadsheet(ext: str, headers: tuple[str, ...], rows: list[list[str | int]], *, sheet: str, name: str,
                 ascii_name: str) -> Response:
    if ext == "xlsx":
        return _download(unit_export.to_xlsx(headers, rows, sheet=sheet), XLSX, name, ascii_name, "xlsx")
    return _download(unit_export.to_csv(headers, rows), CSV, name, ascii_name, "csv")


# ---- regions: where a staff member may look ------------------------------------------------------


async def _region_name(request: Request, code: str) -> str | None:
    """A region's name from identity's public tree, kept a minute; None when identity does not answer."""
    if not code:
        return None
    upstreams = web_of(request).upstreams
    try:
        found = await web_of(request).public.get(("console-region", code), lambda: upstreams.region(code))
    except (UpstreamError, Unavailable) as exc:
        log.warning("no name for region %s: %s", code, exc)
        return None
    return found.name if isinstance(found, RegionPath) else None


async def _region_options(request: Request, own: str) -> list[Region]:
    """The staff member's region and those directly under it (the top ones for someone everywhere)."""
    upstreams = web_of(request).upstreams

    async def load() -> list[Region]:
        children = [r for r in await upstreams.regions(own or None) if sv.REGION_CODE.match(r.code)]
        return [Region(code=own, name=await _region_name(request, own) or own), *children] if own else children

    try:
        return await web_of(request).public.get(("console-regions", own), load)  # type: ignore[return-value]
    except (UpstreamError, Unavailable) as exc:
        log.warning("no regions under %s: %s", own, exc)
        return [Region(code=own, name=own)] if own else []


async def _unit_names(request: Request, calls: ScoringCalls, region_code: str) -> dict[str, str]:
    try:
        names = await web_of(request).public.get(("unit-names", region_code[:6]),
                                                 lambda: calls.unit_names(region_code))
    except (UpstreamError, Unavailable) as exc:
        log.warning("no unit names: %s", exc)
        return {}
    return dict(names)  # type: ignore[call-overload]


# ---- /console/scoring ---------------------------------------------------------------------------


@router.get("/console/scoring")
async def scoring_page(request: Request) -> Response:
    session, calls = await _signed_in(request)
    this_year = _today().year
    f = sv.parse_filters(request.query_params, session.region, this_year)
    regions = await _region_options(request, session.region)
    context: dict[str, Any] = {"f": f, "v": sv, "years": sv.years(this_year), "regions": regions,
                               "notice": sv.DONE.get(request.query_params.get("done", ""))}
    if not f.region_code:
        return _render(request, session, "console_scoring.html", ranking=None, **context)
    ranking, talks, board, names, region_name = await asyncio.gather(
        calls.ranking(f.year, f.region_code, f.level, limit=sv.PAGE_SIZE, offset=f.offset),
        calls.talks(f.year, f.region_code, f.level), calls.board(f.year, f.region_code),
        _unit_names(request, calls, f.region_code), _region_name(request, f.region_code))
    return _render(request, session, "console_scoring.html", ranking=ranking, lines=sv.rank_lines(ranking.rows),
                   last_page=sv.pages(ranking.total), talks=sv.talk_lines(talks)[:sv.TALKS_SHOWN],
                   talks_total=len(talks), board=group_board(board, names),
                   region_name=region_name or f.region_code, public_link=sv.public_link(f), **context)


async def _publish_page(request: Request, session: WorkSession, calls: ScoringCalls, f: sv.Filters, *,
                        error: str | None = None, status: int = 200) -> Response:
    ranking, region_name = await asyncio.gather(
        calls.ranking(f.year, f.region_code, f.level, limit=1, offset=0), _region_name(request, f.region_code))
    return _render(request, session, "console_scoring_publish.html", status=status, f=f, ranking=ranking,
                   region_name=region_name or f.region_code, error=error, public_link=sv.public_link(f))


@router.get("/console/scoring/publish")
async def publish_confirm(request: Request) -> Response:
    session, calls = await _signed_in(request)
    f = sv.parse_filters(request.query_params, session.region, _today().year)
    if not f.region_code:
        return RedirectResponse("/console/scoring", status_code=303)
    return await _publish_page(request, session, calls, f)


@router.post("/console/scoring/publish")
async def publish(request: Request) -> Response:
    session, calls = await _signed_in(request)
    form = await _form(request)
    f = sv.parse_filters(form, session.region, _today().year)
    if not f.region_code:
        return RedirectResponse("/console/scoring", status_code=303)
    problem = _csrf_problem(request, form)
    if problem:
        return await _publish_page(request, session, calls, f, error=problem, status=400)
    # What the confirmation named is what is published: a region or year that did not survive
    # the filters' checks is refused, never replaced by the staff member's own.
    if form.get("region_code") != f.region_code or form.get("year") != str(f.year) \
            or (form.get("level") or None) != f.level:
        return await _publish_page(request, session, calls, f, status=400,
                                   error="要发布的地区、年度或代表级别有误，请回到排名页重新进入。")
    try:
        await calls.publish(f.year, f.region_code, f.level)
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            return await _publish_page(request, session, calls, f, error=exc.detail or "没有发布成功，请稍后再试。",
                                       status=exc.status)
        raise
    return RedirectResponse(f"/console/scoring?{f.query(page=1, done='published')}", status_code=303)


@router.get("/console/scoring/ranking.{ext}")
async def ranking_export(ext: str, request: Request) -> Response:
    session, calls = await _signed_in(request)
    f = sv.parse_filters(request.query_params, session.region, _today().year)
    if ext not in ("xlsx", "csv") or not f.region_code:
        return error_pages.not_found_page(request)
    ranking, region_name = await asyncio.gather(calls.whole_ranking(f.year, f.region_code, f.level, sv.EXPORT_MAX),
                                                _region_name(request, f.region_code))
    return _spreadsheet(ext, sv.RANKING_HEADERS, sv.ranking_rows(ranking.rows), sheet="履职积分排名",
                        name=sv.export_name("履职积分排名", f, region_name), ascii_name=f"ranking-{f.year}")


@router.get("/console/scoring/talks.{ext}")
async def talks_export(ext: str, request: Request) -> Response:
    session, calls = await _signed_in(request)
    f = sv.parse_filters(request.query_params, session.region, _today().year)
    if ext not in ("xlsx", "csv") or not f.region_code:
        return error_pages.not_found_page(request)
    talks, region_name = await asyncio.gather(calls.talks(f.year, f.region_code, f.level),
                                              _region_name(request, f.region_code))
    return _spreadsheet(ext, sv.TALK_HEADERS, sv.talk_rows(talks), sheet="约谈名单",
                        name=sv.export_name("约谈名单", f, region_name), ascii_name=f"talks-{f.year}")


@router.get("/console/scoring/deputies/{deputy_id}")
async def deputy_score(deputy_id: str, request: Request) -> Response:
    session, calls = await _signed_in(request)
    if not sv.DEPUTY_ID.match(deputy_id):
        return error_pages.not_found_page(request)
    f = sv.parse_filters(request.query_params, session.region, _today().year)
    score = await calls.score(deputy_id, f.year)
    entries = sorted(score.entries, key=lambda e: (e.at, e.id), reverse=True)
    last = max(1, -(-len(entries) // ENTRIES_PAGE))
    page = min(f.page, last)
    return _render(request, session, "console_scoring_deputy.html", f=f, score=score, page=page, last_page=last,
                   entries=entries[(page - 1) * ENTRIES_PAGE:page * ENTRIES_PAGE], total_entries=len(entries),
                   years=sv.years(_today().year), dimensions=DIMENSION, parts=PART, grades=GRADE,
                   points=points_text, source=source_label, back=f"/console/scoring?{f.query(page=1)}")


# ---- /console/scoring/rules ---------------------------------------------------------------------


def _rules_region(own: str, asked: str) -> str:
    """The region whose rules are shown: the one asked for when it is the staff member's or inside it."""
    return asked if sv.within(own, asked) else own


async def _rules_page(request: Request, session: WorkSession, calls: ScoringCalls, region: str,
                      form: rules_view.RulesForm | None = None, *, errors: dict[str, str] | None = None,
                      changes: list[rules_view.Change] | None = None, previewed: str = "",
                      scheduled: str | None = None, notice: str | None = None, status: int = 200) -> Response:
    current, regions = await asyncio.gather(calls.rules(region), _region_options(request, session.region))
    tomorrow = (_today() + timedelta(days=1)).isoformat()
    if form is None:
        form = rules_view.form_of(current.model_dump(), tomorrow)
    in_force = rules_view.in_force_words(region, current.region_code, current.version, current.effective_from)
    order = ["effective_from", "rules", *(f"rule-{r.index}-{n}" for r in form.rows for n in rules_view.RULE_FIELDS),
             *(f"grading-{k}" for k in rules_view.GRADING), *(f"dim-{d}" for d in DIMENSION),
             *(f"board-{k}" for k in rules_view.BOARD)]
    return _render(request, session, "console_scoring_rules.html", status=status, region=region, regions=regions,
                   current=current, in_force=in_force, form=form, errors=errors or {}, order=order,
                   changes=changes, previewed=previewed, scheduled=scheduled, notice=notice, tomorrow=tomorrow,
                   r=rules_view, dimensions=DIMENSION, parts=PART)


@router.get("/console/scoring/rules")
async def rules_page(request: Request) -> Response:
    session, calls = await _signed_in(request)
    region = _rules_region(session.region, request.query_params.get("region_code", ""))
    version = request.query_params.get("version", "")
    notice = (f"已保存为第 {version} 版，到施行日期起计分按新规则。" if request.query_params.get("done") == "saved"
              and version.isdigit() else None)
    return await _rules_page(request, session, calls, region, notice=notice)


@router.post("/console/scoring/rules")
async def rules_post(request: Request) -> Response:
    session, calls = await _signed_in(request)
    data = await _form(request, max_fields=RULES_FORM_FIELDS)
    region = _rules_region(session.region, data.get("region_code", ""))
    form = rules_view.typed_form(data)

    async def again(errors: dict[str, str], status: int = 422, **more: Any) -> Response:
        return await _rules_page(request, session, calls, region, form, errors=errors, status=status, **more)

    if data.get("region_code", "") != region:
        return await again({"form": "要修改规则的地区有误，请从规则页重新进入。"}, status=400)
    problem = _csrf_problem(request, data)
    if problem:
        return await again({"form": problem}, status=400)
    parsed = rules_view.parse(form, _today())
    if parsed.doc is None:
        return await again(parsed.errors)
    current, on_the_day = await asyncio.gather(calls.rules(region), calls.rules(region, parsed.doc["effective_from"]))
    changes = rules_view.diff(current.model_dump(), parsed.doc)
    scheduled = None
    if (on_the_day.region_code, on_the_day.version) != (current.region_code, current.version):
        scheduled = (f"注意：{on_the_day.effective_from} 起已排定施行第 {on_the_day.version} 版规则，"
                     "下面的变更是相对于现行版本的。")
    digest = rules_view.digest(region, parsed.doc)
    if data.get("action") != "save" or data.get("previewed") != digest:
        # The first press shows the difference; a form changed after its preview is shown again.
        errors = {"form": "表单在预览之后有改动，请核对下面的变更后再确认保存。"} \
            if data.get("action") == "save" else {}
        return await again(errors, status=200, changes=changes, previewed=digest, scheduled=scheduled)
    try:
        saved = await calls.put_rules(region, parsed.doc)
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            errors = {}
            for name, message in exc.field_errors().items():
                errors.setdefault(rules_view.field_of(name, parsed.rows_of), message)
            return await again(errors or {"form": exc.detail or "没有保存成功，请检查后再试。"}, status=exc.status,
                               changes=changes, previewed=digest, scheduled=scheduled)
        raise
    query = urlencode({"region_code": region, "done": "saved", "version": saved.version})
    return RedirectResponse(f"/console/scoring/rules?{query}", status_code=303)


# ---- /console/elections -------------------------------------------------------------------------


def _election_calls(request: Request, session: WorkSession) -> ElectionCalls:
    return ElectionCalls(web_of(request).upstreams, session)


@router.get("/console/elections")
async def elections_page(request: Request) -> Response:
    session = await require(request, ROLES)
    after = request.query_params.get("after") or None
    found = await _election_calls(request, session).elections(after, ev.LIST_SIZE)
    rows = [(e, ev.state_of(e.reconciliation) if e.reconciliation else None) for e in found.items]
    codes = sorted({e.region_code for e in found.items})
    names = dict(zip(codes, await asyncio.gather(*(_region_name(request, c) for c in codes)), strict=True))
    return _render(request, session, "console_elections.html", rows=rows, next=found.next, after=after, v=ev,
                   names=names)


async def _election_page(request: Request, session: WorkSession, election_id: str, *, error: str | None = None,
                         status: int = 200) -> Response:
    calls = _election_calls(request, session)
    election = await calls.election(election_id)
    if election is None:
        return error_pages.not_found_page(request)
    f = ev.parse_filters(request.query_params)
    found, region_name = await asyncio.gather(calls.findings(election_id, f.kind, f.page),
                                              _region_name(request, election.region_code))
    state = ev.state_of(found) if found else None
    running = state is not None and state.status == "running"
    return _render(
        request, session, "console_elections_one.html", status=status, election=election, found=found,
        region_name=region_name, state=state, running=running, f=f, v=ev,
        tabs=ev.kind_tabs(found.counts if found else {}, f.kind),
        last_page=ev.pages(found.total_items, found.page_size) if found else 1, error=error,
        notice=ev.notice(request.query_params.get("done", ""), state),
        export_query=ev.Filters(kind=f.kind).query())


@router.get("/console/elections/{election_id}")
async def election_page(election_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if not ev.valid_id(election_id):
        return error_pages.not_found_page(request)
    return await _election_page(request, session, election_id)


@router.post("/console/elections/{election_id}/reconciliation")
async def start_reconciliation(election_id: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if not ev.valid_id(election_id):
        return error_pages.not_found_page(request)
    form = await _form(request)
    problem = _csrf_problem(request, form)
    if problem:
        return await _election_page(request, session, election_id, error=problem, status=400)
    try:
        await _election_calls(request, session).start(election_id)
    except UpstreamError as exc:
        if exc.status in (403, 409, 422):
            return await _election_page(request, session, election_id, status=exc.status,
                                        error=exc.detail or "没有发起成功，请稍后再试。")
        raise
    return RedirectResponse(f"/console/elections/{election_id}?done=started", status_code=303)


@router.get("/console/elections/{election_id}/progress")
async def reconciliation_progress(election_id: str, request: Request) -> Response:
    """For the page's script: the state of the latest reconciliation, no names (see ElectionCalls.progress)."""
    session = await require(request, ROLES)
    if not ev.valid_id(election_id):
        return error_pages.not_found_page(request)
    found = await _election_calls(request, session).progress(election_id)
    return JSONResponse(ev.progress_answer(found), headers={"Cache-Control": "no-store"})


@router.get("/console/elections/{election_id}/findings.{ext}")
async def findings_export(election_id: str, ext: str, request: Request) -> Response:
    session = await require(request, ROLES)
    if not ev.valid_id(election_id) or ext not in ("xlsx", "csv"):
        return error_pages.not_found_page(request)
    f = ev.parse_filters(request.query_params)
    calls = _election_calls(request, session)
    found: list[Finding] = []
    for page in range(1, ev.EXPORT_MAX_PAGES + 1):
        batch = await calls.findings(election_id, f.kind, page)
        if batch is None or batch.status != "done":
            return error_pages.error_page(request, 409, "核对还没有完成", "核对完成后才能导出名单，请稍后再试。",
                                          actions=(error_pages.Action(f"/console/elections/{election_id}",
                                                                      "回到核对页面"),))
        found += batch.items
        if len(batch.items) < batch.page_size:
            break
    return _spreadsheet(ext, ev.EXPORT_HEADERS, ev.export_rows(found), sheet="选民登记核对结果",
                        name=ev.export_name(election_id, f.kind), ascii_name=f"reconciliation-{election_id}")
