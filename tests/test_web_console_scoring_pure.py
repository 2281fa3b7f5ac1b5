"""The console's scoring and election pages: their pure logic, and the pages over stand-in services.

The pure parts: filters kept in the URL, the talk list's order, the rules as a form and back, the
difference against the version in force, the words of a reconciliation's state and the rows of the
exports. The pages run in the web app over httpx.MockTransport services that answer as scoring,
identity and suggestions do, to check what each page sends (the staff member's token, the bodies
of publish and PUT rules) and what it makes of refusals. The end-to-end tests against the real
services are in tests/test_web_console_scoring.py.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_fakes import csrf_of, page, staff_client, text_of
from openpyxl import load_workbook

from services.web import console_elections_view as ev
from services.web import console_scoring_rules as rv
from services.web import console_scoring_view as sv
from services.web.console_elections_calls import Finding, Reconciliation
from services.web.console_scoring_calls import RankRow, TalkRow

REGION = "330106"
TOKEN = "staff-token"
RULES: dict[str, Any] = {
    "region_code": "", "effective_from": "2000-01-01", "version": 0,
    "rules": [
        {"code": "report_answer_late", "on": "intake.report.answered", "points": -1.0, "part": "base",
         "dimension": "relief", "role": "deputy", "match": {"on_time": False}, "label": "逾期答复群众意见"},
        {"code": "report_rated_5", "on": "intake.report.rated", "points": 1.0, "part": "bonus",
         "dimension": "relief", "role": "deputy", "match": {"stars": 5}, "label": "群众评价五星"},
        {"code": "survey", "on": "activity:survey", "points": 3.0, "part": "base", "dimension": "advisory",
         "role": "deputy", "match": {}, "label": "参加专题调研"},
    ],
    "grading": {"points_per_star": 10.0, "excellent": 90, "good": 75, "competent": 60, "basically_competent": 45,
                "talk_share": 0.05, "dimension_full": {d: 30.0 for d in ("exemplary", "conduct", "supervision",
                                                                         "advisory", "relief")}},
    "board": {"red_on_time": 0.95, "red_satisfaction": 0.9, "yellow_on_time": 0.8, "yellow_satisfaction": 0.7,
              "black_on_time": 0.6, "black_satisfaction": 0.5, "min_replies": 1},
}


# ---- pure: the scoring page's filters and lines ------------------------------------------------


def test_filters_keep_to_the_staff_members_region_and_known_values() -> None:
    f = sv.parse_filters({"region_code": "330106001", "year": "2025", "level": "county", "page": "2"}, REGION, 2026)
    assert (f.region_code, f.year, f.level, f.page, f.offset) == ("330106001", 2025, "county", 2, sv.PAGE_SIZE)
    assert f.query(page=1) == "region_code=330106001&year=2025&level=county"
    # Next door, a made-up level, a year out of range and a page of letters fall back rather than fail.
    f = sv.parse_filters({"region_code": "330107", "year": "1999", "level": "emperor", "page": "x"}, REGION, 2026)
    assert (f.region_code, f.year, f.level, f.page) == (REGION, 2026, None, 1)
    # Someone whose region is everywhere chooses one first.
    assert sv.parse_filters({}, "", 2026).region_code == ""
    assert sv.parse_filters({"region_code": "330106"}, "", 2026).region_code == "330106"
    assert sv.public_link(sv.Filters("330106", 2026, "county")) == \
        "/public/deputies?region_code=330106&year=2026&level=county"
    # Levels in identity's names, which scoring takes.
    assert "municipal" in sv.LEVELS and "city" not in sv.LEVELS


def test_talk_list_puts_two_years_running_first_and_exports_say_so() -> None:
    rows = [TalkRow(deputy_id="a", name="甲", total=3, rank=9), TalkRow(deputy_id="b", name="", total=2.5, rank=10,
                                                                       consecutive=True)]
    lines = sv.talk_lines(rows)
    assert [(line.deputy_id, line.name, line.points) for line in lines] == [("b", "（未登记姓名）", "2.5"),
                                                                           ("a", "甲", "3")]
    assert sv.talk_rows(rows) == [[10, "b", "（未登记姓名）", "2.5", "是"], [9, "a", "甲", "3", "否"]]
    ranked = [RankRow(deputy_id="a", name="甲", total=112.5, rank=1, stars=10)]
    assert sv.ranking_rows(ranked) == [[1, "a", "甲", "112.5", 10]]
    assert sv.rank_lines(ranked)[0].stars_text == "★" * 10
    assert sv.pages(0) == 1 and sv.pages(50) == 1 and sv.pages(51) == 2
    assert sv.export_name("约谈名单", sv.Filters("330106", 2026, "county"), "演示区") == \
        "约谈名单-2026-演示区-县（区）人大代表"


# ---- pure: the rules as a form ----------------------------------------------------------------


def as_form(form: rv.RulesForm) -> dict[str, str]:
    """What a browser sends for `form` as rendered."""
    data = {"effective_from": form.effective_from, "rows": str(len(form.rows))}
    for row in form.rows:
        for name in rv.RULE_FIELDS:
            data[f"rule-{row.index}-{name}"] = getattr(row, name)
        if row.delete:
            data[f"rule-{row.index}-delete"] = "yes"
    data.update({f"grading-{k}": v for k, v in form.grading.items()})
    data.update({f"dim-{k}": v for k, v in form.dims.items()})
    data.update({f"board-{k}": v for k, v in form.board.items()})
    return data


def test_the_rules_in_force_come_back_from_their_form_unchanged() -> None:
    form = rv.form_of(RULES, "2026-07-01")
    assert len(form.rows) == 3 + rv.BLANK_ROWS
    assert form.rows[0].match == "on_time=false" and form.rows[0].points == "-1"
    assert form.grading["talk_share"] == "5" and form.board["red_on_time"] == "95"
    parsed = rv.parse(rv.typed_form(as_form(form)), date(2026, 6, 30))
    assert parsed.errors == {} and parsed.doc is not None
    assert parsed.doc["effective_from"] == "2026-07-01"
    assert parsed.doc["grading"]["talk_share"] == 0.05 and parsed.doc["board"]["min_replies"] == 1
    assert rv.diff(RULES, parsed.doc) == []
    assert parsed.rows_of == [0, 1, 2]


def test_a_changed_form_shows_each_change_against_the_version_in_force() -> None:
    form = rv.form_of(RULES, "2026-07-01")
    data = as_form(form)
    data["rule-0-points"] = "-2"                     # changed
    data["rule-1-delete"] = "yes"                    # removed
    data.update({"rule-3-code": "reception_day", "rule-3-on": "activity:reception_day", "rule-3-points": "2",
                 "rule-3-part": "base", "rule-3-dimension": "relief", "rule-3-role": "deputy",
                 "rule-3-label": "逢十接待日进站接待"})  # added in a blank row
    data["grading-talk_share"] = "10"
    data["board-min_replies"] = "3"
    parsed = rv.parse(rv.typed_form(data), date(2026, 6, 30))
    assert parsed.errors == {} and parsed.doc is not None
    changes = rv.diff(RULES, parsed.doc)
    assert [(c.kind, c.what, c.before, c.after) for c in changes] == [
        ("changed", "规则 report_answer_late（逾期答复群众意见）：分值", "-1 分", "-2 分"),
        ("added", "规则 reception_day（逢十接待日进站接待）", "",
         "逢十接待日进站接待（activity:reception_day），2 分，基础分，解忧，代表本人"),
        ("removed", "规则 report_rated_5（群众评价五星）",
         "群众评价（intake.report.rated），stars=5，1 分，加分，解忧，代表本人", ""),
        ("changed", "评定：约谈比例", "5%", "10%"),
        ("changed", "红黄黑榜：参评最少答复件数", "1", "3"),
    ]
    # The rule added on the form's fourth row is the doc's third: the service's field names map back.
    assert parsed.rows_of == [0, 2, 3]
    assert rv.field_of("rules[2].points", parsed.rows_of) == "rule-3-points"
    assert rv.field_of("rules[1]", parsed.rows_of) == "rule-2-code"
    assert rv.field_of("rules[9].code", parsed.rows_of) == "rules"
    assert rv.field_of("grading.dimension_full.relief", parsed.rows_of) == "dim-relief"
    assert rv.field_of("grading.talk_share", parsed.rows_of) == "grading-talk_share"
    assert rv.field_of("grading", parsed.rows_of) == "grading"
    assert rv.field_of("board.black_on_time", parsed.rows_of) == "board-black_on_time"
    assert rv.field_of("effective_from", parsed.rows_of) == "effective_from"
    assert rv.field_of("body", parsed.rows_of) == "form"
    # The digest names exactly what was previewed.
    assert rv.digest(REGION, parsed.doc) == rv.digest(REGION, copy.deepcopy(parsed.doc))
    assert rv.digest(REGION, parsed.doc) != rv.digest("330107", parsed.doc)
    assert rv.digest(REGION, parsed.doc) != rv.digest(REGION, {**parsed.doc, "effective_from": "2026-07-02"})


def test_what_a_person_can_mistype_in_the_rules_is_named_next_to_the_field() -> None:
    data = as_form(rv.form_of(RULES, "2026-06-30"))
    data.update({"rule-0-code": "Bad Code", "rule-1-code": "survey", "rule-1-points": "一分", "rule-2-match": "stars",
                 "rule-2-dimension": "", "grading-talk_share": "0", "dim-relief": "-3", "board-red_on_time": "120",
                 "board-min_replies": "1.5"})
    parsed = rv.parse(rv.typed_form(data), date(2026, 6, 30))
    assert parsed.doc is None
    assert parsed.errors == {
        "effective_from": "新规则最早从明天起施行，不改变已计的积分。",
        "rule-0-code": "规则编码只能用小写字母、数字和下划线，最多 64 个字符。",
        "rule-1-points": "分值应为 -100 到 100 之间的数字。",
        "rule-2-code": "规则编码 survey 重复了，每条规则的编码要不同。",
        "rule-2-dimension": "请选择计入哪个方面。",
        "rule-2-match": "匹配条件应写成“字段=取值”，多个用分号隔开，例如 on_time=false; stars=5。",
        "grading-talk_share": "约谈比例应大于 0% 且小于 100%。",
        "dim-relief": "满分应大于 0。",
        "board-red_on_time": "应为 0 到 100 之间的百分数。",
        "board-min_replies": "至少 1 件，应为整数。",
    }
    # Every rule removed leaves nothing to score with.
    every = {**data, **{f"rule-{i}-delete": "yes" for i in range(3)}}
    assert rv.parse(rv.typed_form(every), date(2026, 6, 1)).errors["rules"] == "至少要保留一条规则。"
    # A form sent back keeps what was typed, and room for one more rule.
    typed = rv.typed_form(data)
    assert typed.rows[0].code == "Bad Code" and typed.rows[-1].blank


def test_conditions_read_back_as_written() -> None:
    match = {"on_time": False, "stars": 5, "level": "county", "code": "5", "none": None}
    text = rv.match_text(match)
    assert text == 'on_time=false; stars=5; level=county; code="5"; none=null'
    assert rv.parse_match(text) == match
    assert rv.parse_match("on_time＝true；stars=1") == {"on_time": True, "stars": 1}
    assert rv.parse_match("") == {}
    assert isinstance(rv.parse_match("x={\"a\": 1}"), str)
    assert isinstance(rv.parse_match(";".join(f"k{i}=1" for i in range(11))), str)
    assert rv.num_text(0.05 * 100) == "5" and rv.num_text(-0.5) == "-0.5" and rv.num_text(10.0) == "10"


def test_which_version_is_in_force_in_words() -> None:
    assert rv.in_force_words(REGION, "", 0, "2000-01-01") == "系统默认规则（未设置过本地区规则）"
    assert rv.in_force_words(REGION, REGION, 3, "2026-03-01") == "本地区规则第 3 版，自 2026-03-01 起施行"
    assert "上级地区（330100）" in rv.in_force_words(REGION, "330100", 1, "2026-01-01")


# ---- pure: elections ---------------------------------------------------------------------------


def reconciliation(**over: Any) -> Reconciliation:
    body: dict[str, Any] = {"job_id": "j1", "status": "done", "progress": 1.0, "step": None, "error": None,
                            "counts": dict.fromkeys(ev.KIND, 1), "page": 1, "page_size": 50, "total_items": 6,
                            "items": []}
    return Reconciliation.model_validate({**body, **over})


def test_a_reconciliation_s_state_and_findings_in_words() -> None:
    running = ev.state_of(reconciliation(status="running", progress=0.05, step="map regions to districts"))
    assert (running.status, running.label, running.percent, running.step) == ("running", "正在核对", 5, "对照选区划分")
    assert ev.state_of(reconciliation(status="running", progress=1.0)).percent == 99  # done only when done
    assert ev.state_of(reconciliation()).percent == 100
    assert ev.notice("started", running) == "已发起核对。核对在后台进行，本页会自动更新进度。"
    assert ev.notice("started", ev.state_of(reconciliation())) == "核对已完成，结果见下方。"
    assert ev.notice("", running) is None
    assert ev.progress_answer(None)["status"] == "none"
    assert ev.progress_answer(reconciliation(status="running", progress=0.05)) == {
        "status": "running", "percent": 5, "label": "正在核对", "step": ""}
    tabs = ev.kind_tabs({"duplicate": 2, "missing": 1}, "missing")
    assert [(t.label, t.count, t.current) for t in tabs][:2] == [("全部", 3, False), ("已死亡", 0, False)]
    assert [t.kind for t in tabs if t.current] == ["missing"]
    assert ev.parse_filters({"kind": "missing", "page": "3"}) == ev.Filters("missing", 3)
    assert ev.parse_filters({"kind": "alien", "page": "0"}) == ev.Filters(None, 1)
    assert ev.Filters("missing", 2).query(page=1) == "kind=missing"
    assert ev.valid_id("demo-330106-2026") and not ev.valid_id("../x")
    rows = ev.export_rows([Finding(kind="missing", id_number_masked="3301**********0015", name="周敏",
                                   district_id=None, expected_district_id="d2")])
    assert rows == [[1, "漏登", "周敏", "3301**********0015", "（未登记）", "d2", "核实后在应登记的选区补登"]]
    assert ev.export_name("E1", "missing") == "选民登记核对结果-E1-漏登"


# ---- the pages over stand-in services -----------------------------------------------------------


def problem(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": "error", "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@dataclass
class Services:
    calls: list[httpx.Request] = field(default_factory=list)
    published_at: str | None = None
    publish_answer: httpx.Response | None = None
    put_answer: httpx.Response | None = None
    job: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)

    def seen(self, method: str, path: str) -> list[httpx.Request]:
        return [c for c in self.calls if c.method == method and c.url.path == path]

    def scoring(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        if path == "/v1/rankings":
            rows = [{"deputy_id": f"d{i}", "name": f"代表{i}", "total": 100 - i, "rank": i + 1, "stars": 9}
                    for i in range(60)]
            offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
            headers = {"Minyi-Total-Count": "60"}
            headers.update({"Minyi-Published-At": self.published_at} if self.published_at
                           else {"Minyi-Ranked-At": "2026-06-01T02:00:00+00:00"})
            return httpx.Response(200, json=rows[offset:offset + limit], headers=headers)
        if path == "/v1/rankings/publications":
            if self.publish_answer is not None:
                return self.publish_answer
            self.published_at = "2026-06-01T10:00:00+08:00"
            return httpx.Response(201, json={"id": "p1", **json.loads(request.content), "published_by": "s",
                                             "published_at": self.published_at, "deputies": 60})
        if path == "/v1/talks":
            return httpx.Response(200, json=[{"deputy_id": "d59", "name": "代表59", "total": 41, "rank": 60,
                                              "stars": 4, "consecutive": True}])
        if path == "/v1/units/board":
            return httpx.Response(200, json=[{"unit_id": "u1", "on_time_rate": 0.5, "satisfaction_rate": None,
                                              "board": "black", "replies": 4, "evaluations": 0}])
        if path.startswith("/v1/rules/"):
            if request.method == "PUT":
                if self.put_answer is not None:
                    return self.put_answer
                return httpx.Response(200, json={**json.loads(request.content), "region_code": REGION, "version": 1})
            return httpx.Response(200, json=RULES)
        if path == "/v1/deputies/d1/score":
            return httpx.Response(200, json={"deputy_id": "d1", "name": "代表1", "year": 2026, "base": 12, "bonus": 0,
                                             "total": 12, "stars": 1, "grade": "not_competent",
                                             "dimensions": {"relief": 40}, "entries": [
                                                 {"id": f"e{i}", "at": f"2026-03-{i + 1:02d}T12:00:00+08:00",
                                                  "points": 2, "part": "base", "dimension": "relief",
                                                  "rule_code": "reception_day", "source": "activity:reception_day",
                                                  "reason": "逢十接待日进站接待"} for i in range(6)]})
        return problem(404, "没有。")

    def identity(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        if path == "/v1/public/regions":
            return httpx.Response(200, json=[{"code": "330106001", "name": "北山街道"}])
        if path.startswith("/v1/public/regions/"):
            return httpx.Response(200, json={"code": REGION, "name": "演示区", "path": []})
        if path == "/v1/elections":
            return httpx.Response(200, json={"items": [{"id": "E1", "region_code": REGION,
                                                        "election_date": "2026-12-20", "reconciliation": None}],
                                             "next": None})
        if path == "/v1/elections/E1":
            return httpx.Response(200, json={"id": "E1", "region_code": REGION, "election_date": "2026-12-20",
                                             "districts": [{"id": "d1", "region_codes": ["330106001"]}], "voters": 9})
        if path == "/v1/elections/E1/reconciliation":
            if request.method == "POST":
                self.job = {"job_id": "j1", "status": "running", "progress": 0.05, "step": "map regions to districts",
                            "error": None, "counts": dict.fromkeys(ev.KIND, 0)}
                return httpx.Response(202, json={"job_id": "j1", "status": "running"})
            if self.job is None:
                return problem(404, "该选举尚未核对，请先发起核对。")
            page = int(request.url.params.get("page", "1"))
            kind = request.url.params.get("kind")
            mine = [f for f in self.findings if kind in (None, f["kind"])] if self.job["status"] == "done" else []
            return httpx.Response(200, json={**self.job, "page": page, "page_size": 2, "total_items": len(mine),
                                             "items": mine[(page - 1) * 2:page * 2]})
        return problem(404, "没有。")

    def suggestions(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return httpx.Response(200, json=[{"id": "u1", "name": "演示区交通运输局", "region_code": REGION}])


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def client(tmp_path: Path, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with staff_client(tmp_path, {
        "identity": httpx.MockTransport(services.identity), "scoring": httpx.MockTransport(services.scoring),
        "suggestions": httpx.MockTransport(services.suggestions),
        "intake": httpx.MockTransport(lambda r: httpx.Response(404)),
        "routing": httpx.MockTransport(lambda r: httpx.Response(404))}, region=REGION, token=TOKEN) as http:
        yield http


def form_fields(html: str, form_id: str) -> dict[str, str]:
    """The values a browser would send for the form `form_id` (inputs, selected options, checked boxes)."""
    body = html[html.index(f'id="{form_id}"'):]
    body = body[:body.index("</form>")]
    out: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", body):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        out[name.group(1)] = value.group(1) if value else ""
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options) or re.search(r'<option value="([^"]*)"',
                                                                                      options)
        out[name] = chosen.group(1) if chosen else ""
    return {k: v.replace("&#34;", '"').replace("&amp;", "&") for k, v in out.items()}


async def test_the_scoring_page_shows_the_preview_with_the_staff_token(client: httpx.AsyncClient,
                                                                       services: Services) -> None:
    html = page(await client.get("/console/scoring?year=2026&page=2"))
    text = text_of(html)
    assert "预览，尚未发布" in text and "第 2 / 2 页" in text and "代表50" in text and "代表49" not in text
    assert "连续两年末位" in text and "演示区交通运输局" in text and "黑榜" in text
    ranking = services.seen("GET", "/v1/rankings")[0]
    assert ranking.headers["authorization"] == f"Bearer {TOKEN}"
    assert dict(ranking.url.params) == {"year": "2026", "region_code": REGION, "limit": "50", "offset": "50"}
    assert services.seen("GET", "/v1/talks")[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert 'href="/console/scoring/publish?region_code=330106&amp;year=2026"' in html
    detail = text_of(page(await client.get("/console/scoring/deputies/d1?year=2026&region_code=330106")))
    assert "代表1 · 2026年履职积分" in detail and "积分明细（6 条）" in detail and "不称职" in detail
    assert page(await client.get("/console/scoring/deputies/..%2Fx"), 404)


async def test_publishing_asks_first_then_freezes(client: httpx.AsyncClient, services: Services) -> None:
    confirm = page(await client.get("/console/scoring/publish?region_code=330106&year=2026&level=county"))
    assert "将发布 60 名代表" in text_of(confirm)
    fields = form_fields(confirm, "publish-form")
    assert fields["region_code"] == REGION and fields["year"] == "2026" and fields["level"] == "county"
    # Without the form's token nothing is published.
    refused = await client.post("/console/scoring/publish", data={**fields, "csrf": "nope"})
    assert "为了安全，请再提交一次" in text_of(page(refused, 400))
    assert services.seen("POST", "/v1/rankings/publications") == []
    # A region changed on the way is refused, not replaced by the staff member's own.
    moved = await client.post("/console/scoring/publish", data={**fields, "region_code": "330107"})
    assert "地区、年度或代表级别有误" in text_of(page(moved, 400))
    assert services.seen("POST", "/v1/rankings/publications") == []
    done = await client.post("/console/scoring/publish", data=fields)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/scoring?region_code=330106&year=2026&level=county&done=published"
    posted = services.seen("POST", "/v1/rankings/publications")
    assert json.loads(posted[0].content) == {"year": 2026, "region_code": REGION, "level": "county"}
    assert posted[0].headers["authorization"] == f"Bearer {TOKEN}"
    shown = text_of(page(await client.get(done.headers["location"])))
    assert "排名已发布并冻结" in shown and "已发布 ：于 2026年6月1日 10:00 发布" in shown
    # Published twice: the service's words, on the confirmation page.
    services.publish_answer = problem(409, "该排名已经发布，不能再次发布。")
    again = await client.post("/console/scoring/publish", data=fields)
    assert "该排名已经发布，不能再次发布。" in text_of(page(again, 409))


async def test_exports_have_chinese_headers(client: httpx.AsyncClient) -> None:
    xlsx = await client.get("/console/scoring/ranking.xlsx?region_code=330106&year=2026")
    assert xlsx.status_code == 200 and "filename*=UTF-8''" in xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == sv.RANKING_HEADERS and len(rows) == 61 and rows[1] == (1, "d0", "代表0", "100", 9)
    csv = await client.get("/console/scoring/talks.csv?region_code=330106&year=2026")
    assert csv.content.decode("utf-8-sig").splitlines()[:2] == ["名次,代表编号,姓名,总积分,是否连续两年处于末位",
                                                                "60,d59,代表59,41,是"]
    assert (await client.get("/console/scoring/ranking.pdf?region_code=330106")).status_code == 404


async def test_rules_are_saved_only_as_previewed(client: httpx.AsyncClient, services: Services) -> None:
    html = page(await client.get("/console/scoring/rules"))
    assert "系统默认规则" in text_of(html)
    fields = form_fields(html, "rules-form")
    assert fields["rule-0-match"] == "on_time=false" and fields["rows"] == str(3 + rv.BLANK_ROWS)
    fields["rule-0-points"] = "-2"
    preview = page(await client.post("/console/scoring/rules", data={**fields, "action": "preview"}))
    assert "与现行规则相比的变更（1 处）" in text_of(preview) and "-1 分" in text_of(preview)
    assert services.seen("PUT", f"/v1/rules/{REGION}") == []
    previewed = form_fields(preview, "rules-form")
    assert previewed["rule-0-points"] == "-2" and previewed["previewed"]
    # Changed after the preview: shown again, not saved.
    changed = page(await client.post("/console/scoring/rules", data={**previewed, "rule-0-points": "-3",
                                                                    "action": "save"}))
    assert "表单在预览之后有改动" in text_of(changed) and services.seen("PUT", f"/v1/rules/{REGION}") == []
    # Saved as previewed; the service's refusal comes back next to its field.
    services.put_answer = problem(422, "请求参数有误。",
                                  [{"field": "rules[0].on", "message": "触发条件应为事件类型。"}])
    refused = page(await client.post("/console/scoring/rules", data={**previewed, "action": "save"}), 422)
    assert re.search(r'id="rule-0-on-error">.*触发条件应为事件类型。', refused)
    services.put_answer = None
    saved = await client.post("/console/scoring/rules", data={**previewed, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("done=saved&version=1")
    body = json.loads(services.seen("PUT", f"/v1/rules/{REGION}")[-1].content)
    assert body["rules"][0]["points"] == -2 and body["grading"]["talk_share"] == 0.05
    assert set(body) == {"effective_from", "rules", "grading", "board"}
    assert "已保存为第 1 版" in text_of(page(await client.get(saved.headers["location"])))


async def test_a_reconciliation_from_start_to_export(client: httpx.AsyncClient, services: Services) -> None:
    listed = page(await client.get("/console/elections"))
    assert "E1" in text_of(listed) and "尚未核对" in text_of(listed)
    first = page(await client.get("/console/elections/E1"))
    assert "这次选举还没有核对过" in text_of(first) and "每打开一页名单" in text_of(first)
    started = await client.post("/console/elections/E1/reconciliation", data={"csrf": csrf_of(first)})
    assert started.status_code == 303 and started.headers["location"] == "/console/elections/E1?done=started"
    running = page(await client.get(started.headers["location"]))
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in running
    assert '<progress id="progress" max="100" value="5">' in running and "已发起核对" in text_of(running)
    progress = await client.get("/console/elections/E1/progress")
    assert progress.json() == {"status": "running", "percent": 5, "label": "正在核对", "step": "对照选区划分"}
    # The poll reads past the last page: identity shows (and records) no names for it.
    assert services.seen("GET", "/v1/elections/E1/reconciliation")[-1].url.params["page"] == "100000"
    services.job = {**(services.job or {}), "status": "done", "progress": 1.0, "step": None,
                    "counts": {**dict.fromkeys(ev.KIND, 0), "missing": 2, "duplicate": 1}}
    services.findings = [{"kind": "duplicate", "id_number_masked": "3301**********0014", "name": "李强",
                          "district_id": "d2", "expected_district_id": "d1"}] + [
        {"kind": "missing", "id_number_masked": f"3301**********00{n}", "name": f"漏登{n}", "district_id": None,
         "expected_district_id": "d1"} for n in (15, 16)]
    done = page(await client.get("/console/elections/E1?kind=missing"))
    assert "noscript" not in done and "漏登15" in text_of(done) and "李强" not in text_of(done)
    assert "第 1 / 1 页" in text_of(done) and "漏登 2" in text_of(done) and "重复登记 1" in text_of(done)
    # Paged as identity pages (two a page here), the kind kept in the URL.
    first_page = page(await client.get("/console/elections/E1"))
    assert "第 1 / 2 页" in text_of(first_page) and 'href="/console/elections/E1?page=2#findings-title"' in first_page
    second = text_of(page(await client.get("/console/elections/E1?page=2")))
    assert "漏登16" in second and "李强" not in second
    xlsx = await client.get("/console/elections/E1/findings.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ev.EXPORT_HEADERS and [r[2] for r in rows[1:]] == ["李强", "漏登15", "漏登16"]
    # Two pages of two were read for three findings.
    pages_read = [c.url.params["page"] for c in services.seen("GET", "/v1/elections/E1/reconciliation")][-2:]
    assert pages_read == ["1", "2"]
    assert page(await client.get("/console/elections/E9"), 404)
