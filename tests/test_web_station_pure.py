"""The station clerk's pages' pure rules: filters from the URL, lateness, who a report waits on, the
exports, and the registration's checks."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from openpyxl import load_workbook

from services.web import station_lists, station_register
from services.web.report_form import Draft
from services.web.station_calls import ReportRow
from services.web.words import SHANGHAI

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)


def row(**changes: Any) -> ReportRow:
    values: dict[str, Any] = {
        "id": "00000000-0000-0000-0000-000000000001", "channel": "hotline", "status": "submitted",
        "target": {"kind": "deputy", "id": "D1", "region_code": "330163"}, "region_code": "330163",
        "excerpt": "路灯坏了", "anonymous": True, "received_at": "2026-12-04T09:00:00+08:00",
        "ack_due": "2026-12-08T23:59:59+08:00", "reply_due": "2026-12-15T23:59:59+08:00",
        "due_at": "2026-12-08T23:59:59+08:00", **changes}
    return ReportRow.model_validate(values)


def test_filters_keep_only_known_choices_and_give_intake_whole_days() -> None:
    filters = station_lists.read_filters({"status": "acknowledged", "overdue": "yes", "region": "330163001",
                                          "from": "2026-12-01", "to": "2026-12-06", "page": "3"})
    assert filters.intake_params() == {
        "status": "acknowledged", "overdue": "true", "region_code": "330163001",
        "received_from": "2026-12-01T00:00:00+08:00", "received_to": "2026-12-07T00:00:00+08:00"}
    assert "page=4" in filters.query(page=4) and "page" not in filters.query(page=1)
    odd = station_lists.read_filters({"status": "closed", "overdue": "maybe", "region": "x; drop", "from": "2026-02-30",
                                      "page": "-1"})
    assert odd == station_lists.Filters()
    # The day after 9999-12-31 does not exist: dropped as a slip, not a 500.
    edge = station_lists.read_filters({"from": "0001-01-01", "to": "9999-12-31"})
    assert edge == station_lists.Filters() and edge.intake_params() == {}


def test_lateness_is_told_in_words_as_well_as_colour() -> None:
    assert station_lists.due_state(row(overdue=True), NOW).label == "超期"
    soon = row(due_at="2026-12-08T09:59:00+08:00")
    assert station_lists.due_state(soon, NOW) == station_lists.Due("due-soon", "即将到期")
    assert station_lists.due_state(row(), NOW).label == "正常"


def test_a_report_waits_on_the_grid_the_deputy_the_station_or_the_staff() -> None:
    names = {("deputy", "D1"): "王丽娟", ("station", "S1"): "北山街道人大代表联络站"}
    assert station_lists.waits_on(row(), names) == "代表 王丽娟"
    assert station_lists.waits_on(row(status="dispatched"), names) == "基层治理平台（网格）"
    station = row(target={"kind": "station", "id": "S1", "region_code": "330163"})
    assert station_lists.waits_on(station, names) == "北山街道人大代表联络站"
    place = row(target={"kind": "region", "id": None, "region_code": "330163"})
    assert station_lists.waits_on(place, names) == "联络站工作人员（未指定代表）"
    assert station_lists.step(row(acknowledged_at="2026-12-05T09:00:00+08:00")) == "等待答复"


def test_exports_are_chinese_with_a_bom_and_never_run_a_formula() -> None:
    rows = station_lists.export_rows([row(excerpt="=HYPERLINK(\"http://x\")")], {("deputy", "D1"): "王丽娟"}, NOW, {})
    data = station_lists.to_csv(rows)
    assert data.startswith("\ufeff反映编号,".encode())
    text = data.decode("utf-8-sig")
    assert "2026年12月4日 09:00" in text and "代表 王丽娟" in text and "'=HYPERLINK" in text
    sheet = load_workbook(io.BytesIO(station_lists.to_xlsx(rows))).active
    assert sheet["A1"].value == "反映编号" and sheet["L2"].value.startswith("'=")


def _registration(**changes: Any) -> station_register.Registration:
    values: dict[str, Any] = {"draft": Draft(content="来信反映路灯坏了", anonymous=True), "channel": "paper",
                              "received_at": "2026-12-06T15:30", "region_code": "330163"}
    return station_register.Registration(**{**values, **changes})


def test_registration_checks_the_channel_the_time_and_who_it_is_for() -> None:
    ok = _registration()
    assert station_register.check(ok, now=NOW, region_choices={"330163"}, categories=None) == {}
    future = _registration(received_at=(NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    assert "不能晚于现在" in station_register.check(future, now=NOW, region_choices={"330163"}, categories=None)[
        "received_at"]
    for unreadable in ("0001-01-01T00:00+14:00", "9999-12-31T23:59-12:00"):  # no Beijing time: overflowed
        assert "格式不对" in station_register.check(_registration(received_at=unreadable), now=NOW,
                                                   region_choices={"330163"}, categories=None)["received_at"]
    old = _registration(received_at="2025-11-30T09:00")
    assert "一年前" in station_register.check(old, now=NOW, region_choices={"330163"}, categories=None)["received_at"]
    errors = station_register.check(_registration(channel="h5", region_code="110101"), now=NOW,
                                    region_choices={"330163"}, categories=None)
    assert set(errors) == {"channel", "target"}
    real = _registration(draft=Draft(content="x", anonymous=False, name="李阿姨", phone="13900002222"))
    assert "反映人同意" in station_register.check(real, now=NOW, region_choices={"330163"}, categories=None)["consent"]


def test_the_code_is_read_from_a_pasted_link_or_typed_bare() -> None:
    assert station_register.code_of("https://minyi.example.cn/q/AbC123xyz") == "AbC123xyz"
    assert station_register.code_of("AbC123xyz") == "AbC123xyz"
    assert station_register.code_of("http://x/q/") is None and station_register.code_of("不是编号") is None


def test_the_body_carries_the_channel_and_the_time_in_beijing() -> None:
    body = station_register.body(_registration(), code=None, attachment_ids=["a1"])
    assert body["channel"] == "paper" and body["region_code"] == "330163" and body["attachment_ids"] == ["a1"]
    assert body["received_at"] == "2026-12-06T15:30:00+08:00"
    assert "region_code" not in station_register.body(_registration(), code="C0DE1", attachment_ids=[])


def test_the_open_list_order_travels_in_the_url_and_to_intake() -> None:
    from services.web.station_lists import read_filters

    oldest = read_filters({"sort": "received", "overdue": "yes"})
    assert oldest.intake_params() == {"overdue": "true", "sort": "received"}
    assert oldest.query() == "overdue=yes&sort=received"
    assert read_filters({"sort": "due"}).sort == "" and "sort" not in read_filters({}).intake_params()
