"""The public boards anyone may open without signing in: statistics, the deputies' ranking, the
handling units' red/yellow/black board and the public suggestion replies (`/public/...`).

Everything comes from the services' public APIs and is the same for everyone, so answers are kept
a minute in the web tier's public cache. Query values are read as plain text and checked here: a
wrong one gets a Chinese error page, never FastAPI's JSON 422. Without a region the pages offer
the top of the region tree to choose from. A secondary call that fails (a region's name, the
units' names) takes away only its part of a page; the page's own figures failing is an error page.
Only a ranking scoring marks as published is shown.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from services.web import charts, error_pages, stats, words
from services.web.citizen_address import citizen_address
from services.web.context import web_of
from services.web.upstreams import BoardRow, Citizen, PublicReply, Region, RegionPath, Unavailable, UpstreamError

router = APIRouter(include_in_schema=False)

T = TypeVar("T")

REGION_CODE = re.compile(r"^\d{2,12}$")
MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_MONTHS = 36
DEFAULT_MONTHS = 12
MONTH_CHOICES = (3, 6, 12, 24, 36)
# Years offered in the chooser: this one and the few before (older ones still work by address).
YEARS_OFFERED = 5
MAX_QUERY_CHARS = 50
PAGE_SIZE = 20
# Pages are counted by offset, which suggestions takes up to 1000 for public replies: 50 pages of 20.
MAX_PAGE = 1000 // PAGE_SIZE
# The order of the units' board on the page: best first, then those on no board.
BOARD_ORDER = ("red", "yellow", "black", None)
NO_BOARD = "未上榜"


@dataclass(frozen=True)
class Board:
    key: str
    path: str
    title: str
    uses_year: bool


BOARDS = (
    Board("stats", "/public/stats", "反映办理统计", False),
    Board("deputies", "/public/deputies", "代表履职排名", True),
    Board("units", "/public/units", "承办单位红黄黑榜", True),
    Board("replies", "/public/replies", "建议答复公开", True),
)
BOARD_BY_KEY = {b.key: b for b in BOARDS}


class BadQuery(Exception):
    """A query value a person (or a mangled link) got wrong; the message says which, in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    current: bool = False
    # The region a link leads to, for the region list of the form.
    code: str = ""


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    selected: bool = False


@dataclass
class RegionView:
    """The chosen region as the page shows it: its name, the way up, and the ways down."""

    code: str
    name: str
    crumbs: list[Link] = field(default_factory=list)
    children: list[Link] = field(default_factory=list)
    # The region tree did not answer: the name is the code, and the code is typed rather than chosen.
    degraded: bool = False


@dataclass
class Frame:
    """What every public page has around its own figures."""

    board: Board
    boards: list[Link]
    region: RegionView | None
    # Without a chosen region: the top of the tree (None when the tree did not answer).
    top: list[Link] | None
    region_options: list[Option]
    year: int | None = None
    years: list[Option] = field(default_factory=list)


# ---- reading the query ----------------------------------------------------------------------------


def _given(raw: str | None) -> str | None:
    """A query value with its spaces trimmed; an empty field counts as not given."""
    text = (raw or "").strip()
    return text or None


def parse_region_code(raw: str | None) -> str | None:
    text = _given(raw)
    if text is not None and not REGION_CODE.match(text):
        raise BadQuery("地区编码应当是 2 到 12 位数字。")
    return text


def _integer(raw: str, message: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise BadQuery(message)
    return int(raw)


def parse_year(raw: str | None, default: int) -> int:
    text = _given(raw)
    if text is None:
        return default
    message = f"年份应当在 {MIN_YEAR} 到 {MAX_YEAR} 之间。"
    year = _integer(text, message)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise BadQuery(message)
    return year


def parse_months(raw: str | None) -> int:
    text = _given(raw)
    if text is None:
        return DEFAULT_MONTHS
    message = f"月数应当在 1 到 {MAX_MONTHS} 之间。"
    months = _integer(text, message)
    if not 1 <= months <= MAX_MONTHS:
        raise BadQuery(message)
    return months


def parse_page(raw: str | None) -> int:
    text = _given(raw)
    if text is None:
        return 1
    message = f"页码应当是 1 到 {MAX_PAGE} 之间的整数。"
    page = _integer(text, message)
    if not 1 <= page <= MAX_PAGE:
        raise BadQuery(message)
    return page


def parse_level(raw: str | None) -> str | None:
    text = _given(raw)
    if text is not None and text not in words.LEVEL:
        raise BadQuery("代表级别有误，请从列表中选择。")
    return text


def parse_search(raw: str | None) -> str:
    text = " ".join((raw or "").split())
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"搜索的关键词最多 {MAX_QUERY_CHARS} 个字，请缩短后再搜。")
    return text


def this_year() -> int:
    """The year in Beijing: on New Year's Eve at 23:00 UTC it is already next year there."""
    return datetime.now(words.SHANGHAI).year


def link(path: str, params: Mapping[str, str | int | None]) -> str:
    """`path?query` with the values that are set, in the order given."""
    kept = {name: str(value) for name, value in params.items() if value is not None and value != ""}
    return f"{path}?{urlencode(kept)}" if kept else path


def _bad_query(request: Request, board: Board, exc: BadQuery) -> Response:
    return error_pages.error_page(
        request, 400, "查询条件有误", f"{exc.message}请回到“{board.title}”页重新选择。",
        actions=(error_pages.Action(board.path, f"回到{board.title}"), error_pages.Action("/", "返回首页")))


# ---- the region around the figures ----------------------------------------------------------------


async def _cached(request: Request, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
    """A public answer from the minute-long cache, loaded once when it is missing or stale."""
    return cast(T, await web_of(request).public.get(key, load))


def _linkable(regions: Sequence[Region]) -> list[Region]:
    # Grids have codes like "330106001001-G01": no board is kept for them, so they are not offered.
    return [r for r in regions if REGION_CODE.match(r.code)]


async def _regions(request: Request, parent: str | None) -> list[Region]:
    upstreams = web_of(request).upstreams
    return await _cached(request, ("regions", parent or ""), lambda: upstreams.regions(parent))


async def _region_path(request: Request, code: str) -> RegionPath | None:
    upstreams = web_of(request).upstreams
    return await _cached(request, ("region", code), lambda: upstreams.region(code))


class UnknownRegion(Exception):
    """The region tree has no such code."""


async def _region_view(request: Request, code: str, href: Callable[[str | None], str]) -> RegionView:
    try:
        place = await _region_path(request, code)
    except (UpstreamError, Unavailable):
        # The figures do not need the name: show them under the code rather than not at all.
        return RegionView(code=code, name=f"地区 {code}", degraded=True)
    if place is None:
        raise UnknownRegion(code)
    crumbs = [Link("全部地区", href(None))]
    crumbs += [Link(step.name, href(step.code), current=step.code == code, code=step.code)
               for step in place.path if REGION_CODE.match(step.code)]
    try:
        below = _linkable(await _regions(request, code))
    except (UpstreamError, Unavailable):
        below = []
    return RegionView(code=code, name=place.name, crumbs=crumbs,
                      children=[Link(r.name, href(r.code), code=r.code) for r in below])


async def _top(request: Request, href: Callable[[str | None], str]) -> list[Link] | None:
    try:
        return [Link(r.name, href(r.code), code=r.code) for r in _linkable(await _regions(request, None))]
    except (UpstreamError, Unavailable):
        return None


def _region_options(region: RegionView | None, top: list[Link] | None) -> list[Option]:
    """The choices of the region list in the form: this region and the ones under it, or the top."""
    if region is not None:
        here = [Option(region.code, f"{region.name}（当前）", selected=True)]
        return here + [Option(c.code, c.label) for c in region.children]
    return [Option(t.code, t.label) for t in top or []]


def _year_options(chosen: int) -> list[Option]:
    now = this_year()
    years = sorted({*range(now, now - YEARS_OFFERED, -1), chosen}, reverse=True)
    return [Option(str(y), f"{y}年", selected=y == chosen) for y in years]


async def _frame(request: Request, board: Board, code: str | None, year: int | None,
                 page_params: Mapping[str, str | int | None]) -> Frame:
    """The board links, the region and the chooser; raises UnknownRegion for a code not in the tree."""
    default_year = this_year()
    kept_year = year if year is not None and year != default_year else None

    def href(region_code: str | None) -> str:
        return link(board.path, {"region_code": region_code, **page_params})

    boards = [Link(b.title, link(b.path, {"region_code": code, "year": kept_year if b.uses_year else None}),
                   current=b is board) for b in BOARDS]
    region = await _region_view(request, code, href) if code else None
    top = None if region is not None else await _top(request, href)
    return Frame(board=board, boards=boards, region=region, top=top,
                 region_options=_region_options(region, top), year=year,
                 years=_year_options(year) if year is not None else [])


def _unknown_region(request: Request, board: Board) -> Response:
    return error_pages.error_page(
        request, 404, "没有找到这个地区", "地区目录里没有这个地区编码，可能是链接输错了。请重新选择地区。",
        actions=(error_pages.Action(board.path, "重新选择地区"), error_pages.Action("/", "返回首页")))


def _render(request: Request, template: str, frame: Frame, **context: object) -> Response:
    return web_of(request).pages.render(request, template, public=True, frame=frame, **context)


# ---- /public/stats ---------------------------------------------------------------------------------


def _month_options(chosen: int) -> list[Option]:
    choices = sorted({*MONTH_CHOICES, chosen})
    return [Option(str(m), f"近 {m} 个月", selected=m == chosen) for m in choices]


def _stats_charts(rows: Sequence[stats.MonthRow]) -> dict[str, object]:
    labels = [r.short_label for r in rows]
    groups = [r.year_label for r in rows]
    received = charts.bar_chart(
        "chart-received", labels, [r.received for r in rows], groups=groups,
        title="每月收到的群众反映（件）", description=stats.received_summary(rows))
    on_time = charts.rate_chart(
        "chart-on-time", labels,
        [charts.Series("2个工作日内受理", [r.ack.value for r in rows]),
         charts.Series("7个工作日内答复", [r.reply.value for r in rows])],
        groups=groups, title="按时受理和按时答复的比例", description=stats.rates_summary(rows))
    return {"received_chart": received, "on_time_chart": on_time}


@router.get("/public/stats")
async def stats_page(request: Request, region_code: str | None = None, months: str | None = None) -> Response:
    board = BOARD_BY_KEY["stats"]
    try:
        code, count = parse_region_code(region_code), parse_months(months)
    except BadQuery as exc:
        return _bad_query(request, board, exc)
    try:
        frame = await _frame(request, board, code, None,
                             {"months": count if count != DEFAULT_MONTHS else None})
    except UnknownRegion:
        return _unknown_region(request, board)
    context: dict[str, object] = {"months": count, "month_options": _month_options(count),
                                  "min_sample": stats.MIN_SAMPLE}
    if code is not None:
        upstreams = web_of(request).upstreams
        figures = await _cached(request, ("stats", code, count), lambda: upstreams.stats(code, count))
        rows = stats.monthly_table(figures.months)
        context.update(rows=rows, total=stats.total_row(figures.months), generated_at=figures.generated_at,
                       period=stats.period_label(rows), **_stats_charts(rows))
    return _render(request, "public_stats.html", frame, **context)


# ---- /public/deputies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedDeputy:
    rank: int
    name: str
    points: str
    stars: int
    star_groups: list[str]


def _level_options(chosen: str | None) -> list[Option]:
    return [Option("", "全部级别", selected=chosen is None),
            *(Option(key, label, selected=key == chosen) for key, label in words.LEVEL.items())]


@router.get("/public/deputies")
async def deputies_page(request: Request, region_code: str | None = None, year: str | None = None,
                        level: str | None = None) -> Response:
    board = BOARD_BY_KEY["deputies"]
    now = this_year()
    try:
        code, chosen_year, chosen_level = parse_region_code(region_code), parse_year(year, now), parse_level(level)
    except BadQuery as exc:
        return _bad_query(request, board, exc)
    params = {"year": chosen_year if chosen_year != now else None, "level": chosen_level}
    try:
        frame = await _frame(request, board, code, chosen_year, params)
    except UnknownRegion:
        return _unknown_region(request, board)
    context: dict[str, object] = {"level": chosen_level, "level_label": words.LEVEL.get(chosen_level or "", ""),
                                  "level_options": _level_options(chosen_level)}
    if code is not None:
        upstreams = web_of(request).upstreams
        ranking = await _cached(request, ("ranking", chosen_year, code, chosen_level),
                                lambda: upstreams.ranking(chosen_year, code, chosen_level,
                                                          citizen=Citizen(citizen_address(request))))
        published = ranking.published_at is not None
        # Until congress staff publish it, a ranking is a working figure: none of its rows may show.
        rows = [RankedDeputy(r.rank, r.name or "（未登记姓名）", stats.points_text(r.total), r.stars,
                             stats.star_groups(r.stars)) for r in ranking.rows] if published else []
        context.update(published=published, published_at=ranking.published_at, rows=rows)
    return _render(request, "public_deputies.html", frame, **context)


# ---- /public/units ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitLine:
    name: str
    on_time: str
    satisfaction: str
    replies: int
    evaluations: int


@dataclass(frozen=True)
class BoardGroup:
    key: str
    label: str
    rule: str
    lines: list[UnitLine]


BOARD_RULES = {
    "red": "按时答复率不低于 95%，并且满意率不低于 90%",
    "yellow": "按时答复率低于 80%，或者满意率低于 70%（未到黑榜）",
    "black": "按时答复率低于 60%，或者满意率低于 50%",
    None: "介于黄榜和红榜之间，或者答复件数太少、还不足以评价",
}


def _rate_text(rate: float | None) -> str:
    return "—" if rate is None else words.percent(rate, 1)


def group_board(rows: Sequence[BoardRow], names: Mapping[str, str]) -> list[BoardGroup]:
    """The units sorted into 红榜, 黄榜, 黑榜 and 未上榜, the better rates first within each."""
    def order(row: BoardRow) -> tuple[float, float, str]:
        return (-(row.on_time_rate or 0.0), -(row.satisfaction_rate or 0.0), names.get(row.unit_id, row.unit_id))

    groups = []
    for key in BOARD_ORDER:
        members = sorted((r for r in rows if (r.board if r.board in words.BOARD else None) == key), key=order)
        lines = [UnitLine(names.get(r.unit_id) or r.unit_id, _rate_text(r.on_time_rate),
                          _rate_text(r.satisfaction_rate), r.replies, r.evaluations) for r in members]
        groups.append(BoardGroup(key or "none", words.BOARD.get(key or "", NO_BOARD), BOARD_RULES[key], lines))
    return groups


async def _unit_names(request: Request, code: str) -> dict[str, str] | None:
    """Unit id → name; None when suggestions did not answer (the board then shows ids)."""
    upstreams = web_of(request).upstreams
    try:
        units = await _cached(request, ("units", code), lambda: upstreams.units(code))
    except (UpstreamError, Unavailable):
        return None
    return {u.id: u.name for u in units}


@router.get("/public/units")
async def units_page(request: Request, region_code: str | None = None, year: str | None = None) -> Response:
    board = BOARD_BY_KEY["units"]
    now = this_year()
    try:
        code, chosen_year = parse_region_code(region_code), parse_year(year, now)
    except BadQuery as exc:
        return _bad_query(request, board, exc)
    params = {"year": chosen_year if chosen_year != now else None}
    try:
        frame = await _frame(request, board, code, chosen_year, params)
    except UnknownRegion:
        return _unknown_region(request, board)
    context: dict[str, object] = {}
    if code is not None:
        upstreams = web_of(request).upstreams

        async def load() -> tuple[datetime, list[BoardRow]]:
            # Scoring works the board out when asked, so the time of asking is the time of the figures.
            return datetime.now(words.SHANGHAI), await upstreams.board(chosen_year, code,
                                                                       citizen=Citizen(citizen_address(request)))

        as_of, rows = await _cached(request, ("board", chosen_year, code), load)
        names = await _unit_names(request, code)
        context.update(groups=group_board(rows, names or {}), names_missing=names is None and bool(rows),
                       unit_count=len(rows), as_of=as_of)
    return _render(request, "public_units.html", frame, **context)


# ---- /public/replies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyItem:
    title: str
    unit: str
    outcome: str
    text: str
    replied_at: str | None


def outcome_text(reply: PublicReply) -> str:
    label = words.OUTCOME.get(reply.outcome or "") or reply.outcome_label
    if not label:
        return "—"
    return f"{reply.outcome} 类：{label}" if reply.outcome in words.OUTCOME else label


def _reply_item(reply: PublicReply) -> ReplyItem:
    return ReplyItem(title=reply.title, unit=reply.unit or "（承办单位未登记）", outcome=outcome_text(reply),
                     text=reply.reply.strip(), replied_at=reply.replied_at)


@router.get("/public/replies")
async def replies_page(request: Request, region_code: str | None = None, year: str | None = None,
                       q: str | None = None, page: str | None = None) -> Response:
    board = BOARD_BY_KEY["replies"]
    now = this_year()
    try:
        code, chosen_year = parse_region_code(region_code), parse_year(year, now)
        search, number = parse_search(q), parse_page(page)
    except BadQuery as exc:
        return _bad_query(request, board, exc)
    kept_year = chosen_year if chosen_year != now else None
    # Region links start the list over at page 1 but keep what was searched for.
    try:
        frame = await _frame(request, board, code, chosen_year, {"year": kept_year, "q": search})
    except UnknownRegion:
        return _unknown_region(request, board)
    context: dict[str, object] = {"q": search, "page": number, "max_chars": MAX_QUERY_CHARS}
    if code is not None:
        upstreams = web_of(request).upstreams
        offset = (number - 1) * PAGE_SIZE
        # One more than a page: whether it came tells if there is a next page, without counting all.
        found = await _cached(request, ("replies", chosen_year, code, search, number),
                              lambda: upstreams.public_replies(chosen_year, code, search, PAGE_SIZE + 1, offset))

        def page_link(to: int) -> str:
            return link(board.path, {"region_code": code, "year": kept_year, "q": search,
                                     "page": to if to > 1 else None})

        context.update(
            replies=[_reply_item(r) for r in found[:PAGE_SIZE]],
            prev_href=page_link(number - 1) if number > 1 else None,
            next_href=page_link(number + 1) if len(found) > PAGE_SIZE and number < MAX_PAGE else None)
    return _render(request, "public_replies.html", frame, **context)
