"""The administrator's console view models without a server: where a link may lead, the region tree,
the unit form's checks, the grid platforms' health in words, the QR symbols and the printed sheet,
reading a year's holidays as staff type them, the month grids, and the clock rules' checks."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import segno
from PIL import Image

from services.web import console_admin_calendar as cal
from services.web import console_admin_codes as codes
from services.web import console_admin_directory as directory
from services.web.console_admin_calls import ClockRule, DeputyRow, DeputyStation, Platform, StationRow
from services.web.upstreams import Region, RegionPath, Unit
from services.web.words import SHANGHAI

COUNTY = "330106"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)


# ---- where a link may lead ----------------------------------------------------------------------


def test_a_region_outside_the_administrators_falls_back_to_their_own() -> None:
    assert directory.focus_of(f"{COUNTY}001", COUNTY) == f"{COUNTY}001"
    assert directory.focus_of("320923", COUNTY) == COUNTY
    assert directory.focus_of("33", COUNTY) == COUNTY  # above the administrator's region
    assert directory.focus_of("33'; drop", COUNTY) == COUNTY
    assert directory.focus_of(None, COUNTY) == COUNTY
    # An administrator of everywhere may look anywhere, and at nothing in particular.
    assert directory.focus_of("320923", "") == "320923"
    assert directory.focus_of("", "") == ""


def test_the_directory_query_keeps_its_filters_and_drops_forged_cursors() -> None:
    query = directory.read_query({"region": f"{COUNTY}001", "q": "  联络站 ", "stations_after": "WyJhIiwiYiJd",
                                  "deputies_after": "<script>"}, COUNTY)
    assert (query.region, query.q, query.stations_after, query.deputies_after) == (
        f"{COUNTY}001", "联络站", "WyJhIiwiYiJd", None)
    assert parse_qs(query.query(stations_after=None)) == {"region": [f"{COUNTY}001"], "q": ["联络站"]}
    assert parse_qs(query.query(deputies_after="abc")) == {
        "region": [f"{COUNTY}001"], "q": ["联络站"], "stations_after": ["WyJhIiwiYiJd"], "deputies_after": ["abc"]}
    assert len(directory.read_query({"q": "长" * 80}, COUNTY).q) == directory.MAX_Q


def test_the_way_down_links_only_places_inside_the_administrators_region() -> None:
    path = RegionPath(code=f"{COUNTY}001", name="北山街道", parent_code=COUNTY, path=[
        Region(code="330000", name="浙江省"), Region(code="330100", name="杭州市"), Region(code=COUNTY, name="西湖区"),
        Region(code=f"{COUNTY}001", name="北山街道")])
    assert [(c.name, c.link) for c in directory.crumbs(path, COUNTY)] == [
        ("浙江省", False), ("杭州市", False), ("西湖区", True), ("北山街道", True)]
    assert all(c.link for c in directory.crumbs(path, ""))
    assert directory.crumbs(None, COUNTY) == []


def test_the_tree_holds_each_place_with_the_places_under_it_and_names_them() -> None:
    towns = [Region(code=f"{COUNTY}001", name="北山街道", has_children=True),
             Region(code=f"{COUNTY}109", name="三墩镇", has_children=False)]
    nodes = directory.tree(towns, {f"{COUNTY}001": [Region(code=f"{COUNTY}001001", name="宝石社区")]})
    assert [(n.name, [c.name for c in n.children]) for n in nodes] == [("北山街道", ["宝石社区"]), ("三墩镇", [])]
    names = directory.region_names(RegionPath(code=COUNTY, name="西湖区"), nodes)
    assert names == {COUNTY: "西湖区", f"{COUNTY}001": "北山街道", f"{COUNTY}109": "三墩镇",
                     f"{COUNTY}001001": "宝石社区"}


def test_the_exports_say_whether_a_code_is_live_never_the_code() -> None:
    stations = [StationRow(id="s1", name="北山街道人大代表联络站", kind="station", region_code=COUNTY,
                           code="1SECRETCODE"),
                StationRow(id="s2", name="=HYPERLINK(1)", kind="cloud_point", region_code=COUNTY)]
    assert directory.station_export(stations) == [
        ["s1", "北山街道人大代表联络站", "人大代表联络站", COUNTY, "已发码"],
        ["s2", "=HYPERLINK(1)", "云端联络点", COUNTY, "未发码"]]
    deputy = DeputyRow(id="d1", name="王丽娟", level="county", region_code=COUNTY, code="1SECRETCODE",
                       stations=[DeputyStation(id="s1", name="北山街道人大代表联络站"),
                                 DeputyStation(id="s3", name="宝石社区云端联络点")])
    assert directory.deputy_export([deputy]) == [
        ["d1", "王丽娟", "县（区）人大代表", COUNTY, "北山街道人大代表联络站、宝石社区云端联络点", "已发码"]]
    assert "1SECRETCODE" not in json.dumps(directory.deputy_export([deputy]) + directory.station_export(stations))


# ---- grid platforms ----------------------------------------------------------------------------


def platform(pid: str, prefixes: list[str], failures: int = 0, retry_at: datetime | None = None,
             queued: int = 0) -> Platform:
    return Platform(id=pid, name=f"平台{pid}", region_prefixes=prefixes, transport="http", url="https://grid.example",
                    failures=failures, retry_at=retry_at.isoformat() if retry_at else None, queued=queued,
                    last_error="connect timeout" if failures else None)


def test_a_platforms_health_in_words() -> None:
    ok = directory.health(platform("a", [COUNTY], queued=2), NOW)
    assert (ok.state, ok.label, ok.detail) == ("ok", "正常", "2 件工单等待发送")
    waiting = directory.health(platform("b", [COUNTY], failures=3, retry_at=NOW + timedelta(minutes=5), queued=4), NOW)
    assert (waiting.state, waiting.label) == ("waiting", "连续失败 3 次")
    assert waiting.detail == "暂停发送，2026年3月2日 10:05 再试，4 件工单等待发送"
    failing = directory.health(platform("c", [COUNTY], failures=1, retry_at=NOW - timedelta(minutes=1)), NOW)
    assert (failing.state, failing.detail) == ("failing", "正在重新发送")


def test_the_platforms_of_a_region_troubled_first() -> None:
    platforms = [platform("ok", [COUNTY]), platform("wide", ["33"], failures=2, retry_at=NOW + timedelta(hours=1)),
                 platform("down", [f"{COUNTY}001"], failures=5), platform("far", ["320923"], failures=9)]
    rows = directory.platform_rows(platforms, COUNTY, NOW)
    assert [r.platform.id for r in rows] == ["down", "wide", "ok"]
    assert len(directory.platform_rows(platforms, "", NOW)) == 4


# ---- handling units ----------------------------------------------------------------------------


def test_the_unit_form_is_checked_before_it_is_sent() -> None:
    form = directory.read_unit_form({"id": " u-1 ", "name": " 区 交通 运输局 ", "region_code": COUNTY,
                                     "parent_id": "u-parent", "editing": "0"})
    assert (form.id, form.name, form.editing) == ("u-1", "区 交通 运输局", False)
    assert directory.check_unit(form, COUNTY, ["u-parent"]) == {}
    assert directory.unit_body(form) == {"name": "区 交通 运输局", "region_code": COUNTY, "parent_id": "u-parent"}
    bad = directory.UnitForm(id="局/1", name="", region_code="3301", parent_id="u-x")
    assert set(directory.check_unit(bad, COUNTY, ["u-parent"])) == {"id", "name", "region_code", "parent_id"}
    elsewhere = directory.UnitForm(id="u-2", name="局", region_code="320923", parent_id="u-2")
    errors = directory.check_unit(elsewhere, COUNTY, ["u-2"])
    assert errors == {"region_code": "这个地区不在您的管辖范围内。", "parent_id": "上级单位不能是它自己。"}
    assert directory.unit_body(directory.UnitForm(id="u", name="局", region_code=COUNTY))["parent_id"] is None
    assert directory.unit_field("body.name") == "name" and directory.unit_field("secret") == "form"


def test_units_are_paged_on_the_server() -> None:
    units = [Unit(id=f"u{i:03d}", name=f"局{i:03d}", region_code=COUNTY) for i in range(65)]
    first = directory.units_page(units, None)
    assert (first.page, first.pages, first.total, len(first.items)) == (1, 3, 65, 30)
    last = directory.units_page(units, "99")
    assert (last.page, [u.id for u in last.items]) == (3, ["u060", "u061", "u062", "u063", "u064"])
    assert directory.units_page([], "2").pages == 1


# ---- QR codes ------------------------------------------------------------------------------------


def test_a_symbol_encodes_the_code_s_report_page_and_is_named() -> None:
    import zxingcpp

    url = codes.code_url("https://minyi.example.gov.cn/", "1ABCDEFGHJKMNPQRSTVWX")
    assert url == "https://minyi.example.gov.cn/q/1ABCDEFGHJKMNPQRSTVWX"
    svg = str(codes.qr_svg(url, "<北山街道>的二维码"))
    assert svg.startswith('<svg role="img" viewBox=') and "<title>&lt;北山街道&gt;的二维码</title>" in svg
    assert "style=" not in svg and "http" not in svg.split("</title>", 1)[1]  # nothing fetched, no inline style
    # The same symbol as pixels, read back by a decoder as a phone would.
    symbol = segno.make_qr(url, error="m", boost_error=True)
    out = io.BytesIO()
    symbol.save(out, kind="png", scale=6, border=4)
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(out.getvalue())))
    assert [f.text for f in found] == [url]
    modules = symbol.symbol_size(scale=1, border=codes.QUIET_ZONE)[0]
    assert f'viewBox="0 0 {modules} {modules}"' in svg


def test_the_sheet_leaves_out_rows_without_a_code_and_cuts_pages_of_six() -> None:
    base = "https://minyi.example.gov.cn"
    stations = [StationRow(id=f"s{i}", name=f"联络站{i}", kind="station", region_code=COUNTY,
                           code=f"1CODE{i:02d}" if i % 4 else None) for i in range(1, 15)]
    rows = codes.station_rows(stations, base)
    found, missing = codes.cards(rows)
    assert [m.id for m in missing] == ["s4", "s8", "s12"]
    assert found[0].url == f"{base}/q/1CODE01" and found[0].about == "人大代表联络站"
    pages = codes.sheet_pages(found)
    assert [len(p) for p in pages] == [6, 5]
    assert codes.sheet_pages([]) == []


def test_the_codes_list_query_and_notices() -> None:
    query = codes.read_codes_query({"region": f"{COUNTY}001", "kind": "deputy", "q": "王", "after": "x=="}, COUNTY)
    assert parse_qs(query.query()) == {"region": [f"{COUNTY}001"], "kind": ["deputy"], "q": ["王"], "after": ["x=="]}
    assert codes.read_codes_query({"kind": "unit", "region": "320923"}, COUNTY) == codes.CodesQuery(COUNTY, "station")
    assert codes.safe_back(query.query()) == query.query()
    assert codes.safe_back("region=1&x=<script>") == "" and codes.safe_back("https://evil.example/") == ""
    assert codes.done_notice("issued_many", "3", "station") == "已为 3 个联络站签发二维码。"
    assert codes.done_notice("issued_many", "0", "deputy") == "本地区的人大代表都已经有二维码，没有新签发。"
    assert codes.done_notice("revoked", "", "station") == codes.DONE["revoked"]
    assert codes.done_notice("<b>", "", "station") is None
    assert codes.issue_key("a" * 32, "station", "demo-station") == f"web-code-{'a' * 32}-station-demo-station"
    assert codes.sheet_kind("deputy") == "deputy" and codes.sheet_kind("units") == "all"


# ---- the calendar --------------------------------------------------------------------------------


def test_days_are_read_as_the_notice_writes_them() -> None:
    typed = "2031-01-01\n2031/10/1 ~ 2031-10-03，2月10日至2月12日、 2031年5月1日 到 5月2日"
    days, problems = cal.parse_days(typed, 2031)
    assert problems == []
    assert days == [date(2031, 1, 1), date(2031, 10, 1), date(2031, 10, 2), date(2031, 10, 3), date(2031, 2, 10),
                    date(2031, 2, 11), date(2031, 2, 12), date(2031, 5, 1), date(2031, 5, 2)]
    assert cal.parse_days("2031-01-01 2031-01-01", 2031) == ([date(2031, 1, 1)], [])


@pytest.mark.parametrize(("text", "message"), [
    ("元旦", "“元旦”不是日期"),
    ("2031-02-30", "“2031-02-30”不是有效的日期"),
    ("2031-10-07~2031-10-01", "结束日期早于开始日期"),
    ("2031-01-01~2031-03-01", "超过 31 天"),
    ("2030-12-31", "不在 2031 年内"),
])
def test_days_that_cannot_be_read_are_named(text: str, message: str) -> None:
    days, problems = cal.parse_days(text, 2031)
    assert days == [] and len(problems) == 1 and message in problems[0], problems


def test_the_calendar_form_is_checked_whole() -> None:
    load, errors = cal.check_calendar(cal.CalendarForm(year="2031", holidays="2031-10-01~2031-10-03",
                                                       workdays="2031-09-27"))
    assert errors == {} and load is not None
    assert (load.year, load.holidays[-1], load.workdays) == (2031, date(2031, 10, 3), [date(2031, 9, 27)])
    assert set(cal.check_calendar(cal.CalendarForm(year="31", holidays="x"))[1]) == {"year"}
    assert cal.check_calendar(cal.CalendarForm(year="2031"))[1] == {"holidays": "请填写这一年的法定节假日。"}
    clash = cal.check_calendar(cal.CalendarForm(year="2031", holidays="2031-10-01", workdays="10月1日"))[1]
    assert clash == {"workdays": "10月1日不能既是节假日又是调休上班日。"}
    many = "\n".join(f"2031-{m:02d}-{d:02d}" for m in range(1, 4) for d in range(1, 22))
    assert "最多 60 天" in cal.check_calendar(cal.CalendarForm(year="2031", holidays=many))[1]["holidays"]
    assert cal.calendar_field("holidays[3]") == "holidays" and cal.calendar_field("body.workdays[0]") == "workdays"
    assert cal.calendar_field("x") == "form"


def test_a_file_in_the_services_format_fills_the_form() -> None:
    data = json.dumps({"holidays": ["2031-01-01", "2031-10-01"], "workdays": ["2031-09-27"]}).encode()
    form, problem = cal.from_file(b"\xef\xbb\xbf" + data)
    assert problem is None and form is not None
    assert (form.holidays, form.workdays) == ("2031-01-01\n2031-10-01", "2031-09-27")
    assert cal.from_file(b"2031-01-01")[0] is None
    assert "holidays" in (cal.from_file(b'{"days": []}')[1] or "")
    assert "文字" in (cal.from_file(b'{"holidays": [20310101]}')[1] or "")
    assert "太大" in (cal.from_file(b" " * (cal.MAX_FILE_BYTES + 1))[1] or "")


def test_the_year_as_month_grids_and_spans() -> None:
    holidays = [date(2031, 10, d) for d in (1, 2, 3, 6, 7)]  # Wed..Fri, Mon, Tue: the weekend between is rest anyway
    workdays = [date(2031, 9, 27), date(2031, 10, 11)]
    months = cal.month_grids(2031, holidays, workdays)
    october = months[9]
    assert (october.number, october.holidays, october.workdays) == (10, 5, 1)
    first_week = october.weeks[0]
    assert [d.day.day if d.day else None for d in first_week] == [None, None, 1, 2, 3, 4, 5]
    assert [d.kind for d in first_week[2:]] == ["holiday", "holiday", "holiday", "weekend", "weekend"]
    assert first_week[2].label == "休"
    saturday = next(d for w in october.weeks for d in w if d.day == date(2031, 10, 11))
    assert (saturday.kind, saturday.label) == ("workday", "班")
    assert all(len(w) == 7 for m in months for w in m.weeks)
    assert cal.spans(holidays) == ["10月1日至10月7日"]
    assert cal.spans([date(2031, 1, 1), date(2031, 1, 3)]) == ["1月1日", "1月3日"]


def test_clock_rules_are_checked_before_they_are_sent() -> None:
    form = cal.read_rule_form({"region_prefix": f"{COUNTY}001", "ack_days": "3", "reply_days": "10",
                               "remind_hour": "8", "close_days": "15"})
    assert cal.check_rule(form, COUNTY) == ({"ack_days": 3, "reply_days": 10, "remind_hour": 8, "close_days": 15}, {})
    values, errors = cal.check_rule(cal.RuleForm("320923", "5", "3", "24", "0"), COUNTY)
    assert values is None and errors == {
        "region_prefix": "这个地区不在您的管辖范围内。", "remind_hour": "提醒时间（点）应为 0 到 23 之间的整数。",
        "close_days": "自动办结天数应为 1 到 90 之间的整数。", "reply_days": "答复期限不能短于受理期限。"}
    assert set(cal.check_rule(cal.RuleForm("33", "x"), "")[1]) == {"region_prefix", "ack_days"}
    assert cal.rule_form_of(ClockRule(region_prefix=COUNTY, ack_days=3, reply_days=9), COUNTY).reply_days == "9"
    assert cal.rule_form_of(None, "") == cal.RuleForm()
    assert cal.rule_form_of(None, COUNTY).region_prefix == COUNTY
