"""Congress staff's console without the stack: the pure parts (filters, forms, overview figures,
the audit log's merge across services, masking) and the pages over stand-in service answers
(httpx.MockTransport): each page renders, a bulk assignment sends one call per suggestion and
shows the service's refusals next to the rows, a typed value survives a refusal. The same pages
against the real services: tests/test_web_console_staff.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from console_fakes import csrf_of, page, staff_client, text_of
from starlette.datastructures import FormData

from services.web import console_staff_audit as audit
from services.web import console_staff_hotspots as hotspots
from services.web import console_staff_overview as overview
from services.web import console_staff_suggestions as sv
from services.web.console_staff_calls import (
    AuditEntry,
    AuditPage,
    Counts,
    HotspotDetail,
    StaffSuggestion,
    TargetCounts,
)
from services.web.upstreams import MonthStats
from services.web.words import SHANGHAI

REGION = "330199"
UNITS = [{"id": "u-road", "name": "交通运输局", "region_code": REGION},
         {"id": "u-house", "name": "住房和城乡建设局", "region_code": REGION}]


def suggestion(**over: Any) -> dict[str, Any]:
    return {"id": "s1", "title": "公交站台加装遮阳棚", "content": "群众反映公交站台没有遮阳棚，夏天等车太晒。",
            "region_code": REGION, "year": 2026, "years": [2026], "status": "submitted", "color": "green",
            "lead_deputy_id": "d1", "submitted_at": "2026-03-01T02:00:00+00:00", "timeline": [
                {"seq": 1, "at": "2026-03-01T02:00:00+00:00", "kind": "submitted", "actor": "d1", "note": None}],
            **over}


def form(**values: str | list[str]) -> FormData:
    items: list[tuple[str, str]] = []
    for name, value in values.items():
        items += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
    return FormData(items)


# ---- filters and forms ------------------------------------------------------------------------------


def test_suggestion_filters_keep_known_values_and_the_year() -> None:
    f = sv.parse_filters({"status": "submitted", "color": "purple", "unit": "u-road", "key": "yes",
                          "carried": "no", "page": "2"}, 2026)
    assert (f.year, f.status, f.color, f.unit, f.key, f.carried, f.page) == (2026, "submitted", None, "u-road",
                                                                             True, False, 2)
    assert f.params() == {"year": 2026, "status": "submitted", "unit_id": "u-road", "key": "true",
                          "carried": "false"}
    assert parse_qs(f.query(page=3)) == {"year": ["2026"], "status": ["submitted"], "unit": ["u-road"],
                                         "key": ["yes"], "carried": ["no"], "page": ["3"]}
    every = sv.parse_filters({"year": "all", "unit": "u road", "key": "maybe"}, 2026)
    assert every.year is None and every.unit is None and every.key is None and "year" not in every.params()
    assert every.query() == "year=all" and not every.any
    assert sv.parse_filters({"year": "1999"}, 2026).year == 2026


def test_an_assignment_form_is_checked_for_what_a_person_can_mistype() -> None:
    units = {"u-road": "交通运输局", "u-house": "住房和城乡建设局"}
    ok = sv.check_assignment(form(lead_unit_id="u-road", assisting_unit_ids=["u-house", "u-house"], key="yes",
                                  supervisor=" 王副主任 "), units)
    assert ok.errors == {}
    assert ok.body == {"lead_unit_id": "u-road", "assisting_unit_ids": ["u-house"], "key": True,
                       "supervisor": "王副主任"}
    bad = sv.check_assignment(form(lead_unit_id="u-road", assisting_unit_ids=["u-road"], key="yes"), units)
    assert set(bad.errors) == {"assisting_unit_ids", "supervisor"}
    assert bad.values["key"] is True and bad.values["assisting_unit_ids"] == ["u-road"]
    assert "lead_unit_id" in sv.check_assignment(form(lead_unit_id="u-x"), units).errors
    assert "lead_unit_id" in sv.check_assignment(form(), units).errors
    # A list of units that could not be read leaves the ids to the service.
    assert sv.check_assignment(form(lead_unit_id="u-x"), {}).errors == {}
    assert "supervisor" not in sv.check_assignment(form(lead_unit_id="u-road"), units).body
    ids, problem = sv.chosen_ids(form(ids=["s1", "s1", "bad id", "s2"]))
    assert ids == ["s1", "s2"] and problem is None
    assert sv.chosen_ids(form())[1] == "请先在列表中勾选要交办的建议。"
    assert sv.chosen_ids(form(ids=[f"s{i}" for i in range(sv.BULK_MAX + 1)]))[1] is not None


def test_decision_and_extension_forms() -> None:
    assert sv.check_decision(form(decision="follow_up", note="列入回头看")).errors == {}
    assert set(sv.check_decision(form(decision="later", note=" ")).errors) == {"decision", "note"}
    ext = sv.check_extension(form(reason="需要协调", months="2"))
    assert ext.errors == {} and ext.body == {"reason": "需要协调", "months": 2}
    assert set(sv.check_extension(form(reason="x", months="6")).errors) == {"reason", "months"}


def test_key_and_carried_words() -> None:
    key = StaffSuggestion.model_validate(suggestion(key=True, status="assigned", supervisor="王副主任"))
    asked = StaffSuggestion.model_validate(suggestion(key_requested=True, topic_id="h1"))
    assigned_plain = StaffSuggestion.model_validate(suggestion(key_requested=True, status="assigned"))
    assert (sv.key_words(key), sv.key_words(asked), sv.key_words(assigned_plain)) == (
        "重点督办", "拟重点督办（待交办）", "")
    carried = StaffSuggestion.model_validate(suggestion(year=2025, years=[2025, 2026]))
    assert sv.carried_words(carried, 2026) == "2025年结转"
    assert sv.carried_words(carried, 2025) == "" and sv.carried_words(carried, None) == "已滚动到2026年"


def test_export_rows_name_units_and_deputies() -> None:
    s = StaffSuggestion.model_validate(suggestion(
        status="assigned", key=True, supervisor="王副主任", lead_unit_id="u-road", assisting_unit_ids=["u-house"],
        assigned_at="2026-03-02T02:00:00+00:00", due_at="2026-06-02T15:59:59+00:00", color="yellow"))
    row = sv.export_row(s, {"u-road": "交通运输局", "u-house": "住建局"}, {"d1": "王丽娟"})
    assert len(row) == len(sv.EXPORT_HEADERS)
    named = dict(zip(sv.EXPORT_HEADERS, row, strict=True))
    assert named["领衔代表"] == "王丽娟" and named["主办单位"] == "交通运输局" and named["协办单位"] == "住建局"
    assert named["重点督办"] == "重点督办" and named["时限状态"] == "即将到期" and named["答复期限"] == "2026-06-02"


def test_overview_sums_the_years_months() -> None:
    months = [MonthStats(month="2025-12", received=9, ack_decided=9, ack_on_time=9),
              MonthStats(month="2026-01", received=4, ack_decided=4, ack_on_time=3, reply_decided=2,
                         reply_on_time=2, rated=2, satisfied=1, closed=1),
              MonthStats(month="2026-02", received=6, ack_decided=5, ack_on_time=5, rated=1, satisfied=1)]
    figures = overview.report_figures(months, 2026)
    assert figures.received == 10 and figures.closed == 1
    assert (figures.ack.counts, figures.ack.text) == ("8/9", "88.9%")
    assert (figures.reply.text, figures.satisfaction.text) == ("100%", "66.7%")
    assert overview.rate_text(figures.ack) == "88.9%"
    assert overview.rate_text(overview.report_figures([], 2026).ack) == "—"
    now = datetime(2026, 3, 5, tzinfo=SHANGHAI)
    assert overview.months_for(2026, now) == 3 and overview.months_for(2024, now) == 27
    assert overview.months_for(2022, now) is None and overview.months_for(2027, now) is None


def target(kind: str, ident: str, **counts: int) -> TargetCounts:
    return TargetCounts.model_validate({"kind": kind, "id": ident, **counts})


def test_deputies_and_stations_are_listed_worst_first_with_their_rates() -> None:
    rows = [
        # Every rate full, nothing overdue.
        target("deputy", "d-good", received=5, ack_decided=5, ack_on_time=5, reply_decided=5, reply_on_time=5,
               rated=2, satisfied=2),
        # One overdue now outweighs any rate.
        target("deputy", "d-late", received=3, ack_decided=3, ack_on_time=3, reply_decided=3, reply_on_time=3,
               overdue=1),
        # Answers late half the time: below the one answering on time, whatever its take-up rate.
        target("deputy", "d1", received=4, ack_decided=4, ack_on_time=4, reply_decided=4, reply_on_time=2,
               rated=1, satisfied=0),
        # Nothing decided yet: no rate to blame, so after every row with one.
        target("deputy", "d.new", received=1),
        target("station", "st1", received=2, ack_decided=2, ack_on_time=1, reply_decided=1, reply_on_time=1,
               overdue=2),
        target("station", "st2", received=7, ack_decided=6, ack_on_time=6, reply_decided=6, reply_on_time=6),
        # A kind the table does not know (a newer intake's) is left out rather than mislabelled.
        target("region", "330199"),
    ]
    deputies, stations = overview.target_rows(rows, {("deputy", "d1"): "王丽娟", ("station", "st2"): "西溪联络站"},
                                              2026)
    assert [d.id for d in deputies] == ["d-late", "d1", "d-good", "d.new"]
    assert [(s.name, s.overdue) for s in stations] == [("st1", 2), ("西溪联络站", 0)]
    wang = deputies[1]
    assert (wang.name, wang.received, wang.overdue) == ("王丽娟", 4, 0)
    assert [(overview.rate_text(r), r.counts) for r in (wang.ack, wang.reply, wang.satisfaction)] == [
        ("100%", "4/4"), ("50.0%", "2/4"), ("0%", "0/1")]
    assert overview.rate_text(deputies[-1].reply) == "—"
    # The name leads to the year's reports aimed at it, the overdue count to those overdue now; the list page
    # takes the id back, dot and all.
    assert parse_qs(urlsplit(wang.href).query) == {"deputy": ["d1"], "year": ["2026"]}
    assert parse_qs(urlsplit(stations[0].overdue_href).query) == {"station": ["st1"], "year": ["2026"],
                                                                  "open": ["yes"], "overdue": ["yes"]}
    back = overview.parse_report_filters({k: v[0] for k, v in parse_qs(urlsplit(deputies[-1].href).query).items()})
    assert (back.deputy, back.year) == ("d.new", 2026)
    # Two rows alike in every figure go by name.
    twins = overview.target_rows([target("deputy", "b", received=1), target("deputy", "a", received=1)], {}, 2026)
    assert [d.id for d in twins[0]] == ["a", "b"] and twins[1] == []


def test_suggestion_figures_link_to_the_filtered_list() -> None:
    counts = Counts.model_validate({"year": 2026, "total": 7, "colors": {"red": 2, "green": 5}, "key": 1,
                                    "statuses": {"assigned": 6, "submitted": 1},
                                    "units": [{"unit_id": "u-road", "total": 6, "colors": {"red": 2}}]})
    red = next(f for f in overview.color_figures(counts) if f.code == "red")
    assert red.count == 2 and red.href == "/console/suggestions?year=2026&color=red"
    grey = next(f for f in overview.color_figures(counts) if f.code == "grey")
    assert grey.count == 0
    unit = overview.unit_figures(counts, {"u-road": "交通运输局"})[0]
    assert (unit.name, unit.total, unit.red) == ("交通运输局", 6, 2)
    assert unit.red_href == "/console/suggestions?year=2026&unit=u-road&color=red"


def test_report_filters_become_intakes_query() -> None:
    f = overview.parse_report_filters({"year": "2026", "deputy": "d1", "overdue": "yes", "open": "maybe",
                                       "status": "closed", "page": "2"})
    assert f.intake_params() == {"sort": "due", "received_from": "2026-01-01T00:00:00+08:00",
                                 "received_to": "2027-01-01T00:00:00+08:00", "deputy_id": "d1",
                                 "status": "closed", "overdue": "true"}
    assert parse_qs(f.query(page=3))["page"] == ["3"] and "open" not in parse_qs(f.query())


def test_typed_phone_and_id_numbers_are_masked() -> None:
    text = "联系电话13912345678，身份证330106198803142734，门牌号12号"
    assert overview.masked(text) == "联系电话139****5678，身份证3301**********2734，门牌号12号"


def test_hotspot_forms() -> None:
    detail = HotspotDetail.model_validate({
        "id": "h1", "region_code": REGION, "category": "city_management", "count": 3, "first_at": "2026-03-01",
        "last_at": "2026-03-05", "state": "open", "places": ["西溪街道菜市场"], "keywords": ["占道经营", "摊贩"],
        "supporters": 2, "members": [
            {"report_id": r, "region_code": REGION, "category": "city_management", "received_at": "2026-03-01",
             "similarity": 0.8, "placed_by": "auto"} for r in ("r1", "r2", "r3")]})
    assert [hotspots.confidence(m, first=i == 0) for i, m in enumerate(detail.members)] == ["", "匹配分 0.80",
                                                                                              "匹配分 0.80"]
    sure = detail.members[1].model_copy(update={"similarity": 0.996})
    assert hotspots.confidence(sure, first=False) == "匹配分 0.99"
    assert hotspots.confidence(sure.model_copy(update={"similarity": 0.29}), first=False) == "匹配分 0.29"
    moved = detail.members[1].model_copy(update={"placed_by": "staff", "similarity": 1.0})
    assert hotspots.confidence(moved, first=False) == ""
    assert hotspots.check_split(form(report_ids=["r2"], note="不同地点"), detail).body == {
        "report_ids": ["r2"], "note": "不同地点"}
    assert "report_ids" in hotspots.check_split(form(report_ids=["r1", "r2", "r3"]), detail).errors
    assert "report_ids" in hotspots.check_split(form(report_ids=["r9"]), detail).errors
    assert hotspots.check_merge(form(hotspot_id="h1"), "h1").errors == {"hotspot_id": "不能并入自己。"}
    converted = hotspots.check_conversion(form(title="关于菜市场占道经营的建议", lead_deputy_id="d1", year="2026",
                                               content="菜市场门口占道经营严重，建议整治。"), {"d1": "王丽娟"})
    assert converted.errors == {} and converted.body["year"] == 2026
    wrong = hotspots.check_conversion(form(title="x", content="短", lead_deputy_id="d9", year="26"), {"d1": "王丽娟"})
    assert set(wrong.errors) == {"title", "content", "lead_deputy_id", "year"}
    assert hotspots.draft_title(detail, "城市管理") == "关于西溪街道菜市场占道经营、摊贩问题的建议"
    assert hotspots.draft_title(detail.model_copy(update={"keywords": ("菜市场", "摊贩")}), "城市管理") == \
        "关于西溪街道菜市场摊贩问题的建议"
    assert "3 件反映、2 人附议" in hotspots.draft_content(detail, "城市管理")
    assert hotspots.parse_filters({"state": "all", "days": "7"}) == hotspots.Filters(state=None, days=90)
    paged = hotspots.parse_filters({"state": "closed", "days": "365", "page": "2", "tpage": "x"})
    assert (paged.page, paged.topic_page) == (2, 1)
    assert parse_qs(paged.query(page=3)) == {"state": ["closed"], "days": ["365"], "topics": ["open"], "page": ["3"]}
    rows, more = hotspots.page_of(list(range(120)), 2)
    assert (rows[0], len(rows), more) == (50, 50, True)
    assert hotspots.page_of(list(range(120)), 3) == (list(range(100, 120)), False)


# ---- the audit log ----------------------------------------------------------------------------------


def entry(seq: int, at: str, action: str = "topic.converted") -> AuditEntry:
    return AuditEntry(seq=seq, at=at, actor="m-npc_staff", actor_roles=("npc_staff",), action=action,
                      subject_type="supervision_topic", subject_id=f"t{seq}")


def test_audit_filters_refuse_what_the_services_would() -> None:
    f, errors = audit.parse_filters({"service": "routing", "actor": "m-npc_staff", "since": "2026-03-01",
                                     "until": "2026-03-02", "subject_id": "a b", "cursor": "routing.9"})
    assert errors == {"subject_id": "只能填写字母、数字和 . : @ _ - ，不含空格。"}
    assert f.services == ("routing",) and f.cursor == "routing.9"
    assert f.params() == {"actor": "m-npc_staff", "since": "2026-03-01T00:00:00+08:00",
                          "until": "2026-03-03T00:00:00+08:00"}
    wrong, errors = audit.parse_filters({"service": "billing", "since": "2026-02-30", "cursor": "x.1"})
    assert wrong.service == "all" and wrong.cursor == "" and set(errors) == {"since"}
    _, errors = audit.parse_filters({"since": "2026-03-05", "until": "2026-03-01"})
    assert set(errors) == {"until"}
    # The day after 9999-12-31 overflowed building the services' query: a 500 for a typo.
    edge, errors = audit.parse_filters({"since": "0001-01-01", "until": "9999-12-31"})
    assert errors == {"since": "请填写 2000 年至 2099 年之间的日期。", "until": "请填写 2000 年至 2099 年之间的日期。"}
    assert edge.params() == {}
    assert audit.parse_cursor("suggestions.12~routing.0", audit.AUDITED) == {"suggestions": 12, "routing": 0}
    assert audit.parse_cursor("suggestions.12~suggestions.3", audit.AUDITED) is None
    assert audit.cursor_text({"routing": 0, "intake": 5}) == "intake.5~routing.0"


def test_merging_logs_pages_on_without_skipping_or_repeating() -> None:
    """Two services' logs, read two at a time, give every entry once, newest first."""
    logs = {"suggestions": [entry(s, f"2026-03-01T0{h}:00:00+08:00") for s, h in ((9, 8), (7, 5), (4, 3), (2, 1))],
            "routing": [entry(s, f"2026-03-01T0{h}:30:00+00:00") for s, h in ((30, 0), (20, 0))]}

    def page_of(service: str, before: int | None, limit: int) -> AuditPage:
        older = [e for e in logs[service] if before is None or e.seq < before]
        return AuditPage(items=older[:limit], next_before=older[limit - 1].seq if len(older) > limit else None)

    seen: list[tuple[str, int]] = []
    cursor: audit.Cursor = {}
    for _ in range(10):
        pages = {s: page_of(s, audit.before_of(cursor, s), 2) for s in audit.wanted(cursor, tuple(logs))}
        rows, following = audit.merge(pages, cursor, limit=2)
        seen += [(r.service, r.entry.seq) for r in rows]
        if following is None:
            break
        cursor = following
    # 08:00+08 and 08:30 UTC (16:30 in Beijing): the times are compared as times, not as text.
    assert seen == [("routing", 30), ("routing", 20), ("suggestions", 9), ("suggestions", 7), ("suggestions", 4),
                    ("suggestions", 2)], seen


def test_audit_words() -> None:
    assert audit.action_words("topic.converted") == "监督议题转为建议"
    assert audit.action_words("something.new") == "something.new"
    assert audit.roles_words(()) == "系统" and audit.roles_words(("npc_staff",)) == "人大工作人员"
    long = audit.detail_words({"note": "很长" * 300})
    assert len(long) == 300 and long.endswith("…")
    assert audit.detail_words({"suggestion_id": "s1", "ids": [1, 2]}) == "suggestion_id: s1；ids: [1, 2]"


# ---- the pages over stand-in services ---------------------------------------------------------------


HOTSPOT = {"id": "h1", "region_code": REGION, "category": "city_management", "count": 2, "keywords": ["占道经营"],
           "report_ids": ["r1", "r2"], "first_at": "2026-03-01T09:00:00+08:00", "last_at": "2026-03-05T09:00:00+08:00",
           "state": "open", "supporters": 0, "places": ["西溪街道菜市场"], "members": [
               {"report_id": r, "region_code": REGION, "category": "city_management",
                "received_at": "2026-03-01T09:00:00+08:00", "similarity": 0.9, "placed_by": "auto"}
               for r in ("r1", "r2")], "corrections": []}


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"type": "about:blank", "title": "error", "status": status, "detail": detail,
                                        **extra}, headers={"content-type": "application/problem+json"})


@dataclass
class Services:
    calls: list[httpx.Request] = field(default_factory=list)
    suggestions_list: list[dict[str, Any]] = field(default_factory=lambda: [
        suggestion(), suggestion(id="s2", title="路口加装信号灯"),
        suggestion(id="s3", title="老旧小区加装电梯", status="assigned", lead_unit_id="u-house", key=True,
                   supervisor="王副主任", color="red")])
    refuse: dict[str, httpx.Response] = field(default_factory=dict)
    # Paths of intake and identity that answer 503, as a service that is down would.
    down: set[str] = field(default_factory=set)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(c.content) for c in self.calls if c.method == "POST" and c.url.path == path]

    def suggestions(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        if path == "/v1/suggestions":
            return httpx.Response(200, json=self.suggestions_list)
        if path == "/v1/public/units":
            return httpx.Response(200, json=UNITS)
        if path == "/v1/suggestion-counts":
            return httpx.Response(200, json={"year": 2026, "total": 3, "colors": {"green": 2, "red": 1},
                                             "statuses": {"submitted": 2, "assigned": 1}, "key": 1, "carried": 0,
                                             "units": [{"unit_id": "u-house", "total": 1, "colors": {"red": 1}}]})
        if path.startswith("/v1/micro-funds/"):
            return httpx.Response(200, json={"region_code": REGION, "year": 2026, "amount": "5000.00",
                                             "spent": "1200.00", "balance": "3800.00", "items": []})
        if path == "/v1/supervision-topics":
            return httpx.Response(200, json=[])
        if path == "/v1/audit":
            return httpx.Response(200, json={"items": [], "next_before": None})
        found = re.fullmatch(r"/v1/suggestions/([\w-]+)(/assignment)?", path)
        if found and found.group(2) and request.method == "POST":
            return self.refuse.get(found.group(1)) or httpx.Response(200, json={})
        if found:
            return httpx.Response(200, json=next(s for s in self.suggestions_list if s["id"] == found.group(1)))
        return problem(404, "no such path")

    def routing(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path == "/v1/hotspots":
            return httpx.Response(200, json=[HOTSPOT, {**HOTSPOT, "id": "h2", "report_ids": ["r9"], "count": 1}])
        if request.url.path == "/v1/hotspots/h1":
            return httpx.Response(200, json=HOTSPOT)
        if request.url.path == "/v1/hotspots/h1/split":
            return httpx.Response(201, json={**HOTSPOT, "id": "h3"})
        if request.url.path == "/v1/hotspots/h1/merge":
            return problem(409, "两个事项都已转为建议，不能合并。")
        if request.url.path == "/v1/categories":
            return httpx.Response(200, json=[{"code": "city_management", "label": "城市管理"}])
        if request.url.path == "/v1/audit":
            return httpx.Response(200, json={"items": [
                {"seq": 3, "at": "2026-03-05T10:00:00+08:00", "actor": "m-npc_staff", "actor_roles": ["npc_staff"],
                 "action": "hotspot.split", "subject_type": "hotspot", "subject_id": "h1", "region_code": REGION,
                 "detail": {"report_ids": ["r1"]}, "trace_id": None}], "next_before": None})
        return problem(404, "no such path")

    def intake(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path in self.down:
            return problem(503, "down")
        if request.url.path == "/v1/stats/targets":
            return httpx.Response(200, json={"region_code": REGION, "year": 2026, "targets": [
                {"kind": "deputy", "id": "d1", "received": 3, "ack_decided": 2, "ack_on_time": 1, "reply_decided": 2,
                 "reply_on_time": 2, "rated": 1, "satisfied": 1, "overdue": 1},
                {"kind": "station", "id": "st9", "received": 1}]})
        if request.url.path == "/v1/public/stats":
            return httpx.Response(200, json={"region_code": REGION, "generated_at": "2026-03-05T10:00:00+08:00",
                                             "months": [{"month": "2026-03", "received": 12, "ack_decided": 10,
                                                         "ack_on_time": 9}]})
        if request.url.path == "/v1/reports":
            return httpx.Response(200, json={"items": [], "total": 0, "page": 1, "page_size": 100})
        if request.url.path == "/v1/reports/r1":
            return httpx.Response(200, json={
                "id": "r1", "status": "submitted", "excerpt": "菜市场门口占道经营，请联系13912345678",
                "anonymous": False, "reporter": {"name": "欧**", "phone": "139****5678"},
                "received_at": "2026-03-01T09:00:00+08:00"})
        if request.url.path == "/v1/audit":
            return problem(503, "down")
        return problem(404, "no such path")

    def identity(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path in self.down:
            return problem(503, "down")
        if request.url.path in ("/v1/deputies", "/v1/stations"):
            items = [{"id": "d1", "name": "王丽娟"}] if request.url.path == "/v1/deputies" else []
            return httpx.Response(200, json={"items": items, "next": None})
        if request.url.path == "/v1/audit":
            return httpx.Response(200, json={"items": [], "next_before": None})
        return problem(404, "no such path")

    def scoring(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return httpx.Response(200, json={"items": [], "next_before": None})


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def client(tmp_path: Path, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transports = {name: httpx.MockTransport(getattr(services, name))
                  for name in ("identity", "routing", "intake", "scoring", "suggestions")}
    async with staff_client(tmp_path, transports, region=REGION, token="token") as http:
        yield http


async def test_every_page_renders_and_passes_the_staff_token(client: httpx.AsyncClient, services: Services) -> None:
    overview_html = page(await client.get("/console/overview?year=2026"))
    overview_text = text_of(overview_html)
    assert "12 收到反映" in overview_text and "90.0% 按时受理（9/10）" in overview_text
    assert "3800.00 元" in overview_text and "住房和城乡建设局" in overview_text
    # Each deputy and station with its year's rates, named from identity's directory (an id where it has none).
    row = re.search(r'<tr id="t-deputy-d1">(.*?)</tr>', overview_html, re.S)
    assert row and text_of(row.group(1)) == "王丽娟 3 50.0% 1/2 100% 2/2 100% 1/1 1", row
    assert '<a href="/console/reports?deputy=d1&amp;year=2026">王丽娟</a>' in row.group(1)
    assert text_of(re.search(r'<tr id="t-station-st9">(.*?)</tr>', overview_html, re.S).group(1)) == \
        "st9 1 — 0/0 — 0/0 — 0/0 0"
    asked = [c for c in services.calls if c.url.path == "/v1/stats/targets"]
    assert [parse_qs(c.url.query.decode()) for c in asked] == [{"region_code": [REGION], "year": ["2026"]}]
    listed = text_of(page(await client.get("/console/suggestions")))
    assert "拟重点督办" not in listed and "重点督办" in listed and "王丽娟" in listed
    page(await client.get("/console/suggestions/s3"))
    page(await client.get("/console/hotspots"))
    page(await client.get("/console/reports?overdue=yes"))
    audit_html = page(await client.get("/console/audit"))
    audited = text_of(audit_html)
    assert "拆分共性事项" in audited and "暂时无法读取：群众反映的日志" in audited
    # The browser keeps days to the years the page takes, before anything is sent.
    assert audit_html.count('min="2000-01-01" max="2099-12-31"') == 2
    # A day past them, sent anyway (no browser check), is named on the page, not a 500.
    refused = await client.get("/console/audit?until=9999-12-31")
    assert refused.status_code == 200 and "请填写 2000 年至 2099 年之间的日期。" in text_of(page(refused))
    private = [c for c in services.calls if c.url.path not in ("/v1/public/units", "/v1/public/stats",
                                                                "/v1/categories")]
    assert private and all(c.headers.get("authorization") == "Bearer token" for c in private)
    # The list's filters go to the service as its own query.
    await client.get("/console/suggestions?year=2025&key=yes&carried=yes&unit=u-road")
    asked = [c for c in services.calls if c.url.path == "/v1/suggestions"][-1]
    assert parse_qs(asked.url.query.decode()) == {"year": ["2025"], "unit_id": ["u-road"], "key": ["true"],
                                                  "carried": ["true"], "limit": ["21"], "offset": ["0"]}


async def test_the_overview_shows_what_it_can_read_when_a_service_is_down(client: httpx.AsyncClient,
                                                                         services: Services) -> None:
    services.down |= {"/v1/stats/targets", "/v1/reports"}
    text = text_of(page(await client.get("/console/overview?year=2026")))
    assert "暂时无法读取：按代表和联络站的统计、超期反映。" in text
    assert "暂时无法读取按代表和联络站的统计。" in text and "超期未办结" not in text
    assert "12 收到反映" in text and "3800.00 元" in text
    # Names missing too: the figures stand under the ids.
    services.down = {"/v1/deputies", "/v1/stations"}
    shown = page(await client.get("/console/overview?year=2026"))
    assert re.search(r'<tr id="t-deputy-d1">\s*<th scope="row"><a href="[^"]+">d1</a>', shown)


async def test_assigning_many_reports_each_refusal_next_to_its_row(client: httpx.AsyncClient,
                                                                    services: Services) -> None:
    listed = page(await client.get("/console/suggestions?status=submitted"))
    services.refuse["s2"] = problem(409, "只有新提交的建议可以交办。")
    sent = await client.post("/console/suggestions/assignment", data={
        "csrf": csrf_of(listed), "idem": "a" * 32, "back": "status=submitted", "ids": ["s1", "s2"],
        "lead_unit_id": "u-road", "assisting_unit_ids": ["u-house"], "key": "yes", "supervisor": "王副主任"})
    shown = page(sent, 409)
    assert [b["lead_unit_id"] for b in services.posted("/v1/suggestions/s1/assignment")] == ["u-road"]
    assert services.posted("/v1/suggestions/s2/assignment")[0] == {
        "lead_unit_id": "u-road", "assisting_unit_ids": ["u-house"], "key": True, "supervisor": "王副主任"}
    assert "已交办 1 件，1 件没有交办" in text_of(shown)
    assert re.search(r'id="refused-s2"[^>]*>.*路口加装信号灯</a>：只有新提交的建议可以交办', shown)
    assert re.search(r'name="ids" value="s2" id="pick-s2"\s+checked', shown)
    assert 'value="王副主任"' in shown

    services.refuse.clear()
    done = await client.post("/console/suggestions/assignment", data={
        "csrf": csrf_of(shown), "idem": "b" * 32, "back": "status=submitted", "ids": ["s1"], "lead_unit_id": "u-road"})
    assert done.status_code == 303
    assert done.headers["location"] == "/console/suggestions?status=submitted&done=assigned&n=1"
    notice = text_of(page(await client.get(done.headers["location"])))
    assert "已交办 1 件建议。" in notice


async def test_a_form_without_its_token_or_a_unit_changes_nothing(client: httpx.AsyncClient,
                                                                   services: Services) -> None:
    listed = page(await client.get("/console/suggestions"))
    forged = await client.post("/console/suggestions/assignment", data={"ids": ["s1"], "lead_unit_id": "u-road"})
    assert "为了安全，请再提交一次" in text_of(page(forged, 400))
    missing = await client.post("/console/suggestions/assignment", data={
        "csrf": csrf_of(listed), "ids": ["s1"], "key": "yes"})
    text = text_of(page(missing, 422))
    assert "请选择主办单位" in text and "重点督办的建议须填写督办领导" in text
    assert not services.posted("/v1/suggestions/s1/assignment")
    one = await client.post("/console/suggestions/s1/assignment", data={"csrf": csrf_of(listed),
                                                                        "lead_unit_id": "u-road"})
    assert one.status_code == 303 and one.headers["location"] == "/console/suggestions/s1?done=assign#assign"
    services.refuse["s1"] = problem(422, "承办单位有误。", errors=[
        {"field": "assisting_unit_ids[0]", "message": "承办单位 u-house 不存在。"}])
    refused = page(await client.post("/console/suggestions/s1/assignment", data={
        "csrf": csrf_of(listed), "lead_unit_id": "u-road", "assisting_unit_ids": ["u-house"]}), 422)
    assert re.search(r'id="assign-assisting_unit_ids-error"[^>]*>.*承办单位 u-house 不存在', refused)


async def test_a_hotspots_page_splits_and_shows_a_refused_merge(client: httpx.AsyncClient, services: Services) -> None:
    shown = page(await client.get("/console/hotspots/h1"))
    text = text_of(shown)
    # Intake's masked view of the one report it shows; the other, refused, is said to be out of reach.
    assert "请联系139****5678" in text and "13912345678" not in shown and "欧** 139****5678" in text
    assert "无法读取这条反映" in text
    # No supervision topic yet: the hotspot is closed through routing, and there is nothing to convert.
    assert 'id="closure"' in shown and 'id="conversion"' not in shown
    split = await client.post("/console/hotspots/h1/split", data={"csrf": csrf_of(shown), "report_ids": ["r2"],
                                                                  "note": "不是同一个菜市场"})
    assert split.status_code == 303 and split.headers["location"] == "/console/hotspots/h3?done=split"
    assert [json.loads(c.content) for c in services.calls if c.url.path == "/v1/hotspots/h1/split"] == [
        {"report_ids": ["r2"], "note": "不是同一个菜市场"}]
    refused = page(await client.post("/console/hotspots/h1/merge", data={"csrf": csrf_of(shown), "hotspot_id": "h2"}),
                   409)
    assert re.search(r'id="merge-form-error"[^>]*>.*两个事项都已转为建议，不能合并', refused)
    assert re.search(r'<option value="h2"\s+selected', refused)
