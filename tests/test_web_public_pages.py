"""The public boards rendered by the web app over stand-in service answers (httpx.MockTransport).

The transports answer as the services' public APIs do, so these tests check what the pages make
of the answers: headings, the unpublished ranking, the thresholds, the region chooser, Chinese
error pages for bad query values, and a section that degrades when a secondary call fails. The
end-to-end tests against the real services live elsewhere.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.web import public_pages
from services.web.service import build_app
from shared.settings import Settings

REGIONS: dict[str, list[dict[str, Any]]] = {
    "": [{"code": "330000", "name": "演示省", "has_children": True}],
    "330000": [{"code": "330100", "name": "演示市", "has_children": True}],
    "330100": [{"code": "330106", "name": "演示区", "has_children": True}],
    "330106": [{"code": "330106001", "name": "北山街道", "has_children": True},
               {"code": "330106109", "name": "三墩镇", "has_children": False},
               {"code": "330106001001-G01", "name": "宝石社区第一网格", "has_children": False}],
}
PATHS = {
    "330000": [("330000", "演示省")],
    "330100": [("330000", "演示省"), ("330100", "演示市")],
    "330106": [("330000", "演示省"), ("330100", "演示市"), ("330106", "演示区")],
}
MONTHS = [
    {"month": "2026-10", "received": 30, "ack_decided": 28, "ack_on_time": 26, "reply_decided": 25,
     "reply_on_time": 20, "rated": 12, "satisfied": 11, "closed": 22, "open_overdue": 3},
    {"month": "2026-11", "received": 8, "ack_decided": 8, "ack_on_time": 8, "reply_decided": 6,
     "reply_on_time": 6, "rated": 2, "satisfied": 2, "closed": 5, "open_overdue": 0},
]


def problem(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"type": "about:blank", "title": "error", "status": status, "detail": detail},
                          headers={"content-type": "application/problem+json"})


@dataclass
class Services:
    """What the stand-in services answer, and the calls they saw."""

    calls: list[httpx.Request] = field(default_factory=list)
    published_at: str | None = "2027-01-05T10:00:00+08:00"
    units_down: bool = False
    scoring_down: bool = False
    regions_down: bool = False
    replies: list[dict[str, Any]] = field(default_factory=list)

    def identity(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.regions_down:
            return httpx.Response(503, text="down")
        path = request.url.path
        if path == "/v1/public/regions":
            return httpx.Response(200, json=REGIONS.get(request.url.params.get("parent_code", ""), []))
        code = path.rsplit("/", 1)[-1]
        if code not in PATHS:
            return problem(404, "地区不存在。")
        steps = PATHS[code]
        parent = steps[-2][0] if len(steps) > 1 else None
        return httpx.Response(200, json={"code": code, "name": steps[-1][1], "parent_code": parent,
                                         "path": [{"code": c, "name": n} for c, n in steps]})

    def intake(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        assert request.url.path == "/v1/public/stats"
        return httpx.Response(200, json={"region_code": request.url.params["region_code"],
                                         "generated_at": "2026-12-05T06:30:00+00:00", "months": MONTHS})

    def scoring(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.scoring_down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/v1/rankings":
            rows = [{"deputy_id": "d1", "name": "王丽娟", "total": 112.5, "rank": 1, "stars": 10},
                    {"deputy_id": "d2", "name": "陈志强", "total": 38.0, "rank": 2, "stars": 3}]
            headers = {"Minyi-Published-At": self.published_at} if self.published_at else {}
            return httpx.Response(200, json=rows, headers=headers)
        assert request.url.path == "/v1/units/board"
        return httpx.Response(200, json=[
            {"unit_id": "u-traffic", "on_time_rate": 0.98, "satisfaction_rate": 0.95, "board": "red",
             "replies": 40, "evaluations": 20},
            {"unit_id": "u-housing", "on_time_rate": 0.5, "satisfaction_rate": None, "board": "black",
             "replies": 10, "evaluations": 0},
            {"unit_id": "u-water", "on_time_rate": 0.75, "satisfaction_rate": 0.8, "board": "yellow",
             "replies": 12, "evaluations": 5},
            {"unit_id": "u-new", "on_time_rate": 0.9, "satisfaction_rate": 0.85, "board": None,
             "replies": 3, "evaluations": 1},
        ])

    def suggestions(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path == "/v1/public/units":
            if self.units_down:
                return httpx.Response(503, text="down")
            return httpx.Response(200, json=[{"id": "u-traffic", "name": "演示区交通运输局", "region_code": "330106"},
                                             {"id": "u-housing", "name": "演示区住房和城乡建设局",
                                              "region_code": "330106"}])
        assert request.url.path == "/v1/public/replies"
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        return httpx.Response(200, json={"items": self.replies[offset:offset + limit], "next": None})


def reply(number: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"s{number}", "title": f"关于第{number}号路口加装红绿灯的建议", "year": 2026,
            "region_code": "330106", "unit": "演示区交通运输局", "outcome": "A", "outcome_label": None,
            "status": "replied", "reply": "您好：\n已经列入今年计划。\n谢谢。",
            "replied_at": "2026-06-01T09:00:00+08:00", **extra}


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def client(tmp_path: Path, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
        return httpx.MockTransport(handler)

    app = build_app(Settings(home=tmp_path, dev_secrets=True), transports={
        "identity": mock(services.identity), "intake": mock(services.intake), "scoring": mock(services.scoring),
        "suggestions": mock(services.suggestions), "routing": mock(lambda r: httpx.Response(404))})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http:
        yield http
    await app.state.web.upstreams.close()


def text_of(html: str) -> str:
    """The page's words without tags, spaces folded: what a reader sees."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def assert_page(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "application/json" not in response.headers["content-type"]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    # The policy forbids inline styles and scripts: none may be in the markup.
    assert "style=" not in html
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    return html


def section(html: str, ident: str) -> str:
    found = re.search(rf'<section[^>]*id="{ident}".*?</section>', html, re.S)
    assert found is not None, ident
    return found.group(0)


def board_links(html: str) -> set[str]:
    nav = re.search(r'<nav class="pub-boards".*?</nav>', html, re.S)
    assert nav is not None
    return {urlsplit(h).path for h in re.findall(r'href="([^"]+)"', nav.group(0))}


ALL_BOARDS = {"/public/stats", "/public/deputies", "/public/units", "/public/replies"}


# ---- every board ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(ALL_BOARDS))
async def test_without_region_the_top_regions_are_offered(client: httpx.AsyncClient, services: Services,
                                                          path: str) -> None:
    html = assert_page(await client.get(path))
    assert "<h1>" in html
    assert "请先选择地区" in html
    assert f'href="{path}?region_code=330000"' in html
    assert board_links(html) == ALL_BOARDS
    assert '<link rel="stylesheet" href="/static/public.' in html
    # No figures are asked for before a region is chosen.
    assert all(c.url.path.startswith("/v1/public/regions") for c in services.calls)


@pytest.mark.parametrize(("path", "query", "said"), [
    ("/public/stats", "region_code=abc", "地区编码"),
    ("/public/stats", "region_code=1", "地区编码"),
    ("/public/stats", "region_code=330106&months=0", "月数"),
    ("/public/stats", "region_code=330106&months=37", "月数"),
    ("/public/stats", "region_code=330106&months=x", "月数"),
    ("/public/deputies", "region_code=330106&year=1999", "年份"),
    ("/public/deputies", "region_code=330106&year=二〇二六", "年份"),
    ("/public/deputies", "region_code=330106&level=mayor", "代表级别"),
    ("/public/units", "year=2101", "年份"),
    ("/public/replies", "region_code=330106&page=0", "页码"),
    ("/public/replies", "region_code=330106&page=-1", "页码"),
    ("/public/replies", "region_code=330106&q=" + "字" * 51, "关键词"),
])
async def test_bad_query_values_get_a_chinese_400_page(client: httpx.AsyncClient, services: Services, path: str,
                                                       query: str, said: str) -> None:
    html = assert_page(await client.get(f"{path}?{query}"), 400)
    assert "查询条件有误" in html
    assert said in text_of(html)
    assert not services.calls


async def test_an_unknown_region_is_a_404_page(client: httpx.AsyncClient) -> None:
    html = assert_page(await client.get("/public/units?region_code=999999"), 404)
    assert "没有找到这个地区" in html
    assert 'href="/public/units"' in html


async def test_region_breadcrumbs_and_sub_regions(client: httpx.AsyncClient) -> None:
    html = assert_page(await client.get("/public/units?region_code=330106&year=2025"))
    crumbs = re.search(r'<nav class="pub-crumbs".*?</nav>', html, re.S)
    assert crumbs is not None
    assert "演示省" in crumbs.group(0) and "演示市" in crumbs.group(0)
    assert '<span aria-current="page">演示区</span>' in crumbs.group(0)
    # Sub-regions keep the year; grids (not a board's region code) are not offered.
    assert 'href="/public/units?region_code=330106001&amp;year=2025"' in html
    assert "三墩镇" in html
    assert "网格" not in html
    # The other boards keep the region and the year where they use one.
    assert 'href="/public/deputies?region_code=330106&amp;year=2025"' in html
    assert 'href="/public/stats?region_code=330106"' in html


async def test_the_region_tree_down_leaves_the_figures(client: httpx.AsyncClient, services: Services) -> None:
    services.regions_down = True
    html = assert_page(await client.get("/public/units?region_code=330106"))
    assert "暂时无法读取地区名称" in html
    assert "演示区交通运输局" in html
    # The region is then typed, not chosen from a list that could not be read.
    assert 'name="region_code" type="text"' in html


async def test_answers_are_cached_for_everyone(client: httpx.AsyncClient, services: Services) -> None:
    for _ in range(3):
        assert_page(await client.get("/public/stats?region_code=330106"))
    assert sum(1 for c in services.calls if c.url.path == "/v1/public/stats") == 1


async def test_a_service_down_is_a_chinese_page(client: httpx.AsyncClient, services: Services) -> None:
    services.scoring_down = True
    html = assert_page(await client.get("/public/deputies?region_code=330106"), 503)
    assert "暂时无法完成" in html


# ---- /public/stats -------------------------------------------------------------------------------


async def test_stats_table_charts_and_method(client: httpx.AsyncClient, services: Services) -> None:
    html = assert_page(await client.get("/public/stats?region_code=330106&months=6"))
    text = text_of(html)
    assert "群众反映办理情况" in text
    called = next(c for c in services.calls if c.url.path == "/v1/public/stats")
    assert parse_qs(called.url.query.decode()) == {"region_code": ["330106"], "months": ["6"]}
    # Dated in Beijing time: 06:30 UTC is 14:30 there.
    assert "数据截至 2026年12月5日 14:30" in text
    assert "2026年10月" in text and "2026年11月" in text
    assert "<caption" in html and '<th scope="col">' in html and '<th scope="row">2026年10月</th>' in html
    # 26 of 28 taken up in time: a rate; 6 answered of 6 is below the minimum sample.
    assert "92.9%" in text
    assert "样本不足" in text
    assert "统计口径" in text
    assert "超过期限还没有受理的也算在内" in text
    assert "不足 10 件" in text
    assert "3 件超期" in text
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        assert root.get("aria-labelledby")
    bars = ET.fromstring(svgs[0]).findall(".//{http://www.w3.org/2000/svg}rect[@class='pub-bar']")
    assert len(bars) == len(MONTHS)
    assert 'value="6" selected' in html


async def test_stats_without_months_asks_for_twelve(client: httpx.AsyncClient, services: Services) -> None:
    assert_page(await client.get("/public/stats?region_code=330106"))
    called = next(c for c in services.calls if c.url.path == "/v1/public/stats")
    assert called.url.params["months"] == "12"


# ---- /public/deputies ----------------------------------------------------------------------------


async def test_published_ranking(client: httpx.AsyncClient, services: Services) -> None:
    html = assert_page(await client.get("/public/deputies?region_code=330106&year=2026&level=county"))
    text = text_of(html)
    assert "代表履职积分排名" in text
    called = next(c for c in services.calls if c.url.path == "/v1/rankings")
    assert parse_qs(called.url.query.decode()) == {"year": ["2026"], "region_code": ["330106"], "level": ["county"]}
    assert "2027年1月5日" in text and "公布" in text
    for heading in ("名次", "姓名", "积分", "星级"):
        assert re.search(rf'<th scope="col"[^>]*>{heading}</th>', html)
    assert "王丽娟" in text and "112.5" in text and "38" in text
    assert "<span>★★★☆☆</span><span>☆☆☆☆☆</span>" in html
    assert '<span class="pub-sr">3 星</span>' in html
    assert "基本分最高 100 分" in text and "总积分 ÷ 10" in text
    assert "县（区）人大代表" in text


async def test_an_unpublished_ranking_shows_no_names(client: httpx.AsyncClient, services: Services) -> None:
    services.published_at = None
    html = assert_page(await client.get("/public/deputies?region_code=330106"))
    assert "本年度排名尚未公布" in html
    assert "王丽娟" not in html and "陈志强" not in html
    assert "<table" not in html


# ---- /public/units -------------------------------------------------------------------------------


async def test_units_board_grouped_with_words_and_thresholds(client: httpx.AsyncClient) -> None:
    html = assert_page(await client.get("/public/units?region_code=330106&year=2026"))
    text = text_of(html)
    assert "承办单位红黄黑榜" in text
    assert re.search(r"数据截至 \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", text)
    red, yellow, black, none = (section(html, f"board-{key}") for key in ("red", "yellow", "black", "none"))
    assert "演示区交通运输局" in red and "98.0%" in red and "95.0%" in red
    assert "演示区住房和城乡建设局" in black and "50.0%" in black
    # No evaluation yet: no satisfaction rate to show.
    assert "—" in black
    # A unit without a name in the directory is shown by its id.
    assert "u-water" in yellow
    assert "u-new" in none
    # Best first on the page, each board named in words next to its colour.
    assert html.index('id="board-red"') < html.index('id="board-yellow"') < html.index('id="board-black"')
    for label in ("红榜", "黄榜", "黑榜", "未上榜"):
        assert label in text
    for threshold in ("低于 60%", "低于 50%", "低于 80%", "低于 70%", "不低于 95%", "不低于 90%", "答复件数太少"):
        assert threshold in text


async def test_units_names_missing_degrade_to_ids(client: httpx.AsyncClient, services: Services) -> None:
    services.units_down = True
    html = assert_page(await client.get("/public/units?region_code=330106"))
    assert "暂时无法读取承办单位的名称" in html
    assert "u-traffic" in html and "演示区交通运输局" not in html


# ---- /public/replies -----------------------------------------------------------------------------


async def test_replies_first_page_links_to_the_next(client: httpx.AsyncClient, services: Services) -> None:
    services.replies = [reply(n) for n in range(1, 26)]
    html = assert_page(await client.get("/public/replies?region_code=330106&year=2026&q=红绿灯"))
    called = next(c for c in services.calls if c.url.path == "/v1/public/replies")
    assert parse_qs(called.url.query.decode()) == {"year": ["2026"], "region_code": ["330106"], "limit": ["21"],
                                                   "offset": ["0"], "q": ["红绿灯"]}
    assert html.count('class="pub-reply"') == 20
    assert "已解决或列入本年度计划解决" in html
    assert "演示区交通运输局" in html and "2026年6月1日" in html
    # Line breaks of the reply reach the page for CSS to keep.
    assert "您好：\n已经列入今年计划。\n谢谢。" in html
    assert 'rel="next"' in html and 'rel="prev"' not in html
    found = re.search(r'href="([^"]+)" rel="next"', html)
    assert found is not None
    next_href = found.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(next_href).query) == {"region_code": ["330106"], "q": ["红绿灯"], "page": ["2"],
                                                   **({"year": ["2026"]} if public_pages.this_year() != 2026 else {})}


async def test_replies_last_page_links_back_only(client: httpx.AsyncClient, services: Services) -> None:
    services.replies = [reply(n) for n in range(1, 26)]
    html = assert_page(await client.get("/public/replies?region_code=330106&page=2"))
    assert html.count('class="pub-reply"') == 5
    assert 'rel="prev"' in html and 'rel="next"' not in html
    assert "第 2 页" in html


async def test_replies_outcome_label_given_and_nothing_found(client: httpx.AsyncClient, services: Services) -> None:
    services.replies = [reply(1, outcome=None, outcome_label="已办理完毕")]
    html = assert_page(await client.get("/public/replies?region_code=330106"))
    assert "已办理完毕" in html
    services.replies = []
    html = assert_page(await client.get("/public/replies?region_code=330106&q=不存在的词"))
    assert "没有找到包含“不存在的词”的答复" in html
