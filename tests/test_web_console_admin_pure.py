"""The administrator's console view models without a server: where a link may lead, the region tree,
the unit form's checks, the grid platforms' health in words, the forms that keep stations, deputies,
regions and grid platforms (read, checked, sent; the write-only phone and secret), the QR symbols and
the printed sheet, reading a year's holidays as staff type them, the month grids, and the clock rules'
checks."""

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
from services.web import console_admin_forms as forms
from services.web.console_admin_calls import (
    ClockRule,
    DeputyDetail,
    DeputyRow,
    DeputyStation,
    Platform,
    StationDetail,
    StationRow,
)
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


# ---- the forms that keep the directory ----------------------------------------------------------


def test_the_station_form_is_read_checked_and_sent_as_identity_takes_it() -> None:
    form = forms.read_station_form({"id": " s-1 ", "name": " 北山 街道\n联络站 ", "kind": "studio",
                                    "region_code": f" {COUNTY}001 ", "editing": "0"})
    assert (form.id, form.name, form.region_code, form.editing) == ("s-1", "北山 街道 联络站", f"{COUNTY}001", False)
    assert forms.check_station(form, COUNTY) == {}
    assert forms.station_body(form) == {"name": "北山 街道 联络站", "kind": "studio", "region_code": f"{COUNTY}001"}
    bad = forms.StationForm(id="站/1", name="", kind="office", region_code="3301")
    assert set(forms.check_station(bad, COUNTY)) == {"id", "name", "kind", "region_code"}
    elsewhere = forms.check_station(forms.StationForm(id="s.2", name="站", region_code="320923001"), COUNTY)
    assert elsewhere == {"region_code": forms.REGION_OUTSIDE}
    assert "最多 200 个字" in forms.check_station(forms.StationForm(id="s", name="长" * 201, region_code=COUNTY),
                                                 COUNTY)["name"]
    # A new station is of the region being looked at; a prefix that is not a code is no default.
    assert forms.station_form_of(None, f"{COUNTY}001").region_code == f"{COUNTY}001"
    assert forms.station_form_of(None, "33").region_code == ""
    shown = forms.station_form_of(StationDetail(id="s", name="站", kind="home", region_code=COUNTY), COUNTY)
    assert (shown.kind, shown.editing) == ("home", True)


def deputy_on_file(phone: str | None = "138****0001") -> DeputyDetail:
    return DeputyDetail(id="d1", name="王丽娟", level="county", region_code=COUNTY, station_ids=["s1", "far"],
                        district_id="district-a", groups=["财经组"], phone_masked=phone)


def test_the_deputy_form_keeps_what_it_does_not_show() -> None:
    posted = {"id": "d1", "name": "王丽娟", "level": "county", "region_code": COUNTY, "editing": "1",
              "phone": " 139 0000 0002 "}
    form = forms.read_deputy_form(posted, {"station_ids": ["s2", " s1 ", "s2", ""]})
    assert form.station_ids == ["s2", "s1"] and form.phone == "139 0000 0002"
    assert forms.check_deputy(form, COUNTY, phone_on_file=True) == {}
    body = forms.deputy_body(form, deputy_on_file(), kept=["far"])
    # The district and groups the form does not show, and the station the administrator may not see, stay.
    assert body == {"name": "王丽娟", "level": "county", "region_code": COUNTY, "station_ids": ["far", "s1", "s2"],
                    "district_id": "district-a", "groups": ["财经组"], "phone": "139 0000 0002"}
    new = forms.deputy_body(forms.DeputyForm(id="d2", name="李", level="township", region_code=COUNTY), None, [])
    assert (new["station_ids"], new["district_id"], new["groups"], new["phone"]) == ([], None, [], None)


def test_a_deputy_s_phone_is_never_erased_by_leaving_it_blank() -> None:
    blank = forms.DeputyForm(id="d1", name="王丽娟", level="county", region_code=COUNTY, editing=True)
    # Identity's PUT replaces the phone, and gives back only a mask: blank is refused, not sent.
    assert forms.check_deputy(blank, COUNTY, phone_on_file=True) == {"phone": forms.PHONE_AGAIN}
    assert forms.check_deputy(blank, COUNTY, phone_on_file=False) == {}
    removing = forms.DeputyForm(id="d1", name="王丽娟", level="county", region_code=COUNTY, remove_phone=True)
    assert forms.check_deputy(removing, COUNTY, phone_on_file=True) == {}
    assert forms.deputy_body(removing, deputy_on_file(), [])["phone"] is None
    both = forms.DeputyForm(id="d1", name="王", level="county", region_code=COUNTY, phone="13900000002",
                            remove_phone=True)
    assert "不要再填写号码" in forms.check_deputy(both, COUNTY, phone_on_file=True)["phone"]
    for typed in ("138-abc", "123", "1" * 21):
        wrong = forms.DeputyForm(id="d1", name="王", level="county", region_code=COUNTY, phone=typed)
        assert "7 到 20 位" in forms.check_deputy(wrong, COUNTY, phone_on_file=False)["phone"], typed
    # A form made from identity's record starts without any phone: the mask is shown beside it, never in it.
    assert forms.deputy_form_of(deputy_on_file(), COUNTY).phone == ""
    many = forms.DeputyForm(id="d1", name="王", level="mayor", region_code=COUNTY,
                            station_ids=[f"s{i}" for i in range(51)])
    assert set(forms.check_deputy(many, COUNTY, phone_on_file=False)) == {"level", "station_ids"}


def test_the_stations_to_tick_hold_the_deputy_s_own_and_keep_the_unseen() -> None:
    listed = [StationRow(id="s2", name="二号站", kind="station", region_code=f"{COUNTY}001"),
              StationRow(id="s1", name="一号站", kind="station", region_code=f"{COUNTY}001")]
    current = {"s9": StationDetail(id="s9", name="丙站", kind="home", region_code=f"{COUNTY}109"), "far": None}
    choices, hidden = forms.station_choices(listed, current)
    assert [c.id for c in choices] == ["s1", "s2", "s9"] and hidden == ["far"]
    assert len(forms.station_choices(listed * 150, {})[0]) == 2


def test_a_child_region_is_written_as_its_parent_s_level_wants() -> None:
    assert [forms.region_level(c) for c in ("330000", "330100", "330106", "330106001", "330106001001",
                                            "330106001001-G01", "3301", "33010600")] == [
        "province", "city", "county", "township", "village", "grid", None, None]
    rule = forms.child_rule(COUNTY)
    assert rule is not None and (rule.prefix, rule.what, rule.example) == (COUNTY, "乡镇、街道", f"{COUNTY}001")
    assert forms.child_rule("330000").prefix == "33"  # type: ignore[union-attr]
    assert forms.child_rule("").what == "省级地区"  # type: ignore[union-attr]
    assert forms.child_rule(f"{COUNTY}001001-G01") is None
    ok = forms.read_region_form({"code": f" {COUNTY}003 ", "name": " 东湖 街道 "})
    assert (ok.code, ok.name) == (f"{COUNTY}003", "东湖 街道")
    assert forms.check_region(ok, COUNTY, COUNTY) == {}
    assert forms.check_region(forms.RegionForm(f"{COUNTY}001001", "村"), f"{COUNTY}001", COUNTY) == {}
    assert forms.check_region(forms.RegionForm(f"{COUNTY}001001-G9", "网格"), f"{COUNTY}001001", COUNTY) == {}
    for code in ("320923001", COUNTY, f"{COUNTY}0031", "abc"):
        refused = forms.check_region(forms.RegionForm(code, "街道"), COUNTY, COUNTY)
        assert refused == {"code": f"乡镇、街道的编码是 9 位数字，以 {COUNTY} 开头。例如 {COUNTY}001。"}, code
    # Under a province the administrator's county is a place; another county of it is not theirs.
    assert forms.check_region(forms.RegionForm("330108", "区"), "330100", COUNTY) == {"code": forms.REGION_OUTSIDE}
    assert set(forms.check_region(forms.RegionForm("", ""), COUNTY, COUNTY)) == {"code", "name"}


GRID = {"road": "道路交通", "sanitation": "环境卫生", "water": "供水排水"}


def test_the_platform_form_reads_prefixes_and_never_holds_the_secret() -> None:
    grid = GRID
    form, keys = forms.read_platform_form(
        {"id": "gp-1", "name": " 演示区 四平台 ", "region_prefixes": f"{COUNTY}001，{COUNTY}002 {COUNTY}001、",
         "transport": "http", "url": " https://grid.example.gov.cn/minyi ", "secret": "s" * 16, "editing": "0"},
        {"categories": ["water", "road", "water"]})
    assert keys.secret == "s" * 16 and "s" * 16 not in repr(form) and "s" * 16 not in repr(keys)
    assert (form.name, form.region_prefixes, form.categories) == ("演示区 四平台", f"{COUNTY}001 {COUNTY}002",
                                                                 ["water", "road"])
    assert forms.check_platform(form, keys, COUNTY, grid) == {}
    assert forms.platform_body(form, keys, grid) == {
        "name": "演示区 四平台", "region_prefixes": [f"{COUNTY}001", f"{COUNTY}002"], "transport": "http",
        "url": "https://grid.example.gov.cn/minyi", "secret": "s" * 16, "categories": ["road", "water"]}
    # NATS needs no address: one typed before switching is not sent.
    nats = forms.PlatformForm(id="gp-2", name="平台", region_prefixes=COUNTY, transport="nats", url="http://x",
                              categories=["road"])
    assert forms.check_platform(nats, forms.PlatformKeys(secret="k" * 20), COUNTY, grid) == {}
    assert forms.platform_body(nats, forms.PlatformKeys(secret="k" * 20), grid)["url"] is None
    errors = forms.check_platform(forms.PlatformForm(id="gp 3", region_prefixes="33 x1", transport="http",
                                                     categories=["parking"]), forms.PlatformKeys(), COUNTY, grid)
    assert set(errors) == {"id", "name", "region_prefixes", "url", "secret", "categories"}
    assert errors["id"] == "平台编号只能用字母、数字和短横线、下划线，最多 64 个字符。"
    assert errors["region_prefixes"] == "“x1”不是地区编码前缀：应为 2 到 12 位数字。"
    assert "HTTP 方式请填写" in errors["url"] and errors["secret"] == forms.SECRET_NEEDED
    assert errors["categories"] == "请从列表中勾选事项类别。"
    key16 = forms.PlatformKeys(secret="k" * 16)
    internal = forms.PlatformForm(id="gp", name="平台", region_prefixes=COUNTY, url="ftp://x", categories=["road"])
    assert "以 http:// 或 https:// 开头" in forms.check_platform(internal, key16, COUNTY, grid)["url"]
    wide = forms.PlatformForm(id="gp", name="省平台", region_prefixes="33", transport="nats", categories=["road"])
    assert forms.check_platform(wide, key16, COUNTY, grid) == {"region_prefixes": "地区 33 不在您的管辖范围内。"}
    assert "16 到 200 个字符" in forms.check_platform(wide, forms.PlatformKeys(secret="short"), "", grid)["secret"]
    assert forms.check_platform(forms.PlatformForm(id="gp", name="平台", region_prefixes=COUNTY, transport="ftp",
                                                   categories=[]), key16, COUNTY, grid).keys() == {
        "transport", "categories"}


def open311_posted(**changes: str) -> dict[str, str]:
    return {"id": "gp-311", "name": "鼓楼区12345", "region_prefixes": COUNTY, "transport": "open311",
            "url": " https://12345.example.gov.cn/open311/v2 ", "api_key": " georeport-key ", "secret": "",
            "jurisdiction_id": " gulou.example.cn ", "service_codes": "road=DL-02\r\n\r\n 供水排水 ＝ GS-01 \n",
            "service_request_updates": "1", "editing": "0", **changes}


def test_an_open311_platform_s_key_mapping_and_feed_are_read_checked_and_sent() -> None:
    form, keys = forms.read_platform_form(open311_posted(), {"categories": ["road", "water"]})
    assert keys.api_key == "georeport-key" and "georeport-key" not in repr(form) + repr(keys)
    assert (form.url, form.jurisdiction_id, form.updates_feed) == (
        "https://12345.example.gov.cn/open311/v2", "gulou.example.cn", True)
    # Needs no shared secret: routing keeps one nobody knows.
    assert forms.check_platform(form, keys, COUNTY, GRID) == {}
    assert forms.platform_body(form, keys, GRID) == {
        "name": "鼓楼区12345", "region_prefixes": [COUNTY], "transport": "open311",
        "url": "https://12345.example.gov.cn/open311/v2", "api_key": "georeport-key",
        "jurisdiction_id": "gulou.example.cn", "service_codes": {"road": "DL-02", "water": "GS-01"},
        "service_request_updates": None, "categories": ["road", "water"]}

    # Left empty: routing reads services.json, and no jurisdiction is sent; unticked: the feed is never read.
    bare, bare_keys = forms.read_platform_form(
        open311_posted(jurisdiction_id="", service_codes="  ", service_request_updates="", secret="s" * 20),
        {"categories": ["road"]})
    body = forms.platform_body(bare, bare_keys, GRID)
    assert (body["jurisdiction_id"], body["service_codes"], body["service_request_updates"]) == (None, None, False)
    assert "secret" not in body  # a secret typed before switching to Open311 is not sent

    # The API key is needed with every save, like the secret; the address as for HTTP.
    missing, none = forms.read_platform_form(open311_posted(api_key="  ", url=""), {"categories": ["road"]})
    errors = forms.check_platform(missing, none, COUNTY, GRID)
    assert errors == {"api_key": forms.API_KEY_NEEDED,
                      "url": "Open311 方式请填写平台 GeoReport v2 接口的地址，例如 https://12345.example.gov.cn/open311/v2。"}
    long_key = forms.PlatformKeys(api_key="k" * 201)
    assert forms.check_platform(form, long_key, COUNTY, GRID) == {"api_key": "API 密钥最多 200 个字符，现在是 201 个。"}
    # The Open311 fields mean nothing to HTTP: none is sent there (routing would refuse them).
    http = forms.PlatformForm(id="gp", name="平台", region_prefixes=COUNTY, transport="http", url="https://g.example",
                              jurisdiction_id="x", service_codes="road=DL-02", categories=["road"])
    assert set(forms.platform_body(http, forms.PlatformKeys(secret="s" * 16, api_key="k"), GRID)) == {
        "name", "region_prefixes", "transport", "url", "secret", "categories"}


@pytest.mark.parametrize(("text", "message"), [
    ("road DL-02", "第 1 行“road DL-02”看不懂：每行写成“类别=服务代码”，例如 roads_traffic=DL-02。"),
    ("road=DL-02\n=GS-01", "第 2 行“=GS-01”看不懂：每行写成“类别=服务代码”，例如 roads_traffic=DL-02。"),
    ("road=", "第 1 行“road=”看不懂：每行写成“类别=服务代码”，例如 roads_traffic=DL-02。"),
    ("\n\nparking=TC-01",
     "第 3 行的“parking”不是网格平台受理的事项类别：请写类别的代码或名称，例如 roads_traffic 或 道路交通。"),
    ("road=DL-02\n道路交通=DL-09", "第 2 行又给“道路交通”写了一个服务代码：每类事项只能对应一个服务代码。"),
    ("water=" + "X" * 101, "第 1 行的服务代码太长：最多 100 个字符。"),
])
def test_a_service_code_line_that_cannot_be_read_is_named(text: str, message: str) -> None:
    assert forms.parse_service_codes(text, GRID) == ({}, message)
    form = forms.PlatformForm(id="gp", name="平台", region_prefixes=COUNTY, transport="open311",
                              url="https://g.example/open311/v2", service_codes=text, categories=["road"])
    assert forms.check_platform(form, forms.PlatformKeys(api_key="k"), COUNTY, GRID) == {"service_codes": message}


def test_the_same_code_twice_for_a_category_is_one_line() -> None:
    assert forms.parse_service_codes("road=DL-02\n道路交通 = DL-02", GRID) == ({"road": "DL-02"}, None)


def test_a_platform_form_starts_from_the_region_or_the_platform_and_only_the_administrator_s() -> None:
    grid = ["road", "water"]
    new = forms.platform_form_of(None, COUNTY, grid)
    assert (new.region_prefixes, new.categories, new.transport, new.editing) == (COUNTY, grid, "http", False)
    assert forms.platform_form_of(None, f"{COUNTY}001001-G01", grid).region_prefixes == ""
    shown = platform("gp", [COUNTY, f"{COUNTY}001"])
    form = forms.platform_form_of(shown, COUNTY, grid)
    assert (form.region_prefixes, form.url, form.editing) == (f"{COUNTY} {COUNTY}001", "https://grid.example", True)
    assert forms.editable(shown, COUNTY) and forms.editable(shown, "")
    assert not forms.editable(platform("wide", ["33", COUNTY]), COUNTY)
    # An open311 platform: its settings as routing shows them, the mapping one line a category.
    georeport = Platform(id="gp-311", name="鼓楼区12345", region_prefixes=[COUNTY], transport="open311",
                         url="https://12345.example.gov.cn/open311/v2", jurisdiction_id="gulou.example.cn",
                         service_codes={"water": "GS-01", "road": "DL-02"}, service_request_updates=False)
    form = forms.platform_form_of(georeport, COUNTY, grid)
    assert (form.transport, form.jurisdiction_id, form.service_codes, form.updates_feed) == (
        "open311", "gulou.example.cn", "road=DL-02\nwater=GS-01", False)
    assert forms.parse_service_codes(form.service_codes, GRID) == ({"road": "DL-02", "water": "GS-01"}, None)
    # Not known yet (null) or offered: ticked.
    assert forms.platform_form_of(georeport.model_copy(update={"service_request_updates": None}), COUNTY,
                                  grid).updates_feed
    assert directory.health(georeport, NOW).transport == "Open311（GeoReport v2）"


def test_a_service_s_refusal_lands_next_to_the_field_it_names() -> None:
    refused = {"region_code": "地区不存在，请先登记该地区", "station_ids[1]": "联络站不存在", "body.name": "太长",
               "secret": "x", "": "?"}
    assert forms.service_errors(refused, forms.DEPUTY_FIELDS) == {
        "region_code": "地区不存在，请先登记该地区", "station_ids": "联络站不存在", "name": "太长", "form": "x"}
    assert forms.service_errors({"body": "http 方式须提供 url"}, forms.PLATFORM_FIELDS, forms.PLATFORM_ALIASES) == {
        "url": "http 方式须提供 url"}
    routing_said = {"body": "http 方式须提供 url", "api_key": "open311 方式须提供平台分配的 api_key",
                    "service_codes.road": "取值无效", "jurisdiction_id": "太长", "categories[0]": "不受理",
                    "service_request_updates": "取值无效", "other": "?"}
    assert forms.errors_by_field(routing_said, forms.platform_field) == {
        "url": "http 方式须提供 url", "api_key": "open311 方式须提供平台分配的 api_key", "service_codes": "取值无效",
        "jurisdiction_id": "太长", "categories": "不受理", "service_request_updates": "取值无效", "form": "?"}
    assert forms.service_errors({"parent_code": "上级地区不存在"}, forms.REGION_FIELDS, {"parent_code": "code"}) == {
        "code": "上级地区不存在"}
    assert forms.taken("联络站", "s1", "甲站").startswith("编号 s1 已经是联络站“甲站”的编号")


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


def test_a_province_or_city_scope_opens_its_region_in_the_tree() -> None:
    assert directory.region_code_of("33") == "330000"
    assert directory.region_code_of("3301") == "330100"
    assert directory.region_code_of("330106") == "330106"
    assert directory.region_code_of("330106001") == "330106001"
    assert directory.region_code_of("") == ""
