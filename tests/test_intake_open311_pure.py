"""Open311 (GeoReport v2) as intake maps it: categories, a report as the public sees it, the search
window, error bodies and the XML shapes. No I/O."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import open311
from services.routing import taxonomy

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

OPEN = open311.ReportFacts(
    id="0193a1b2-0000-7000-8000-000000000001", status="submitted", round=1, category="roads_traffic",
    target_kind="region", ticket_id=None, answered_by=None, reply_content=None,
    received_at=datetime(2026, 11, 16, 2, 0, tzinfo=UTC), updated_at=datetime(2026, 11, 16, 2, 0, 1, tzinfo=UTC),
    acknowledged_at=None, answered_at=None, rated_at=None, closed_at=None,
    reply_due=datetime(2026, 11, 25, 15, 59, 59, tzinfo=UTC),
)


def test_intake_offers_exactly_routings_categories_in_its_order() -> None:
    assert [(s.code, s.name) for s in open311.SERVICES] == [(c.code, c.label) for c in taxonomy.CATEGORIES]
    assert {s.code for s in open311.SERVICES if s.group == open311.GRID_GROUP} == taxonomy.GRID_CATEGORIES


CODE_ATTRIBUTE = {"variable": True, "code": "code", "datatype": "string", "required": False,
                  "datatype_description": "21 位字母数字，即扫码打开的地址 …/q/{编码} 的最后一段", "order": 1,
                  "description": "亮码：代表或联络站二维码上的编码；填写后反映直接交给该代表或联络站"}


def test_a_service_is_listed_with_the_specs_fields() -> None:
    listed = open311.service_dict(open311.BY_CODE["sanitation_environment"])
    assert listed == {"service_code": "sanitation_environment", "service_name": "环境卫生",
                      "description": "垃圾清运、污水、噪声、异味等环境卫生问题", "metadata": True,
                      "type": "realtime", "keywords": "垃圾,清运,污水,噪声,异味", "group": "城乡治理"}


def test_every_definition_offers_the_optional_code_attribute_in_the_specs_fields() -> None:
    for service in open311.SERVICES:
        assert open311.definition_dict(service) == {"service_code": service.code, "attributes": [CODE_ATTRIBUTE]}
    # Each definition is its own copy: a caller changing one changes no other.
    first = open311.definition_dict(open311.BY_CODE["other"])
    first["attributes"][0]["required"] = True
    assert open311.definition_dict(open311.BY_CODE["other"])["attributes"][0]["required"] is False
    assert open311.CODE_FIELD == "attribute[code]"


def test_a_code_is_taken_as_sent_and_blank_means_none() -> None:
    assert open311.code_of(" 1ABCDEFGHJKMNPQRSTVWX ") == "1ABCDEFGHJKMNPQRSTVWX"
    assert open311.code_of(None) is None and open311.code_of("  ") is None and open311.code_of("") is None
    assert "attribute[code]" in open311.unknown_code().message and "无效" in open311.unknown_code().message


def test_a_code_must_lead_inside_the_jurisdiction() -> None:
    # The deputy's own region when it lies within the jurisdiction (itself, or a part of it).
    assert open311.code_region("379921", "379921") == "379921"
    assert open311.code_region("379921", "379921003") == "379921003"
    # A jurisdiction naming a place within the deputy's region keeps that place, as a scanned code with a
    # region_code does.
    assert open311.code_region("379921003", "379921") == "379921003"
    assert open311.code_region("379921", "3799") == "379921"
    for jurisdiction, theirs in (("379921", "379922"), ("379921003", "379921004"), ("379921", "3798")):
        with pytest.raises(open311.Invalid, match="其他地区") as caught:
            open311.code_region(jurisdiction, theirs)
        assert theirs not in caught.value.message.replace(jurisdiction, "")


def test_an_unknown_service_code_is_a_bad_request_naming_it() -> None:
    assert open311.service_of(" greenery ").code == "greenery"
    with pytest.raises(open311.Invalid, match="未知的 service_code：potholes"):
        open311.service_of("potholes")


@pytest.mark.parametrize(("status", "expected"), [("submitted", "open"), ("acknowledged", "open"),
                                                  ("dispatched", "open"), ("answered", "closed"),
                                                  ("closed", "closed")])
def test_answered_is_the_outcome_so_it_is_closed(status: str, expected: str) -> None:
    assert open311.status_of(status) == expected


def test_status_notes_are_the_answer_once_given_and_a_plain_state_before() -> None:
    assert open311.status_notes(OPEN) == "已收到，等待代表受理。"
    assert open311.status_notes(replace(OPEN, status="acknowledged")) == "代表已受理，正在办理。"
    assert open311.status_notes(replace(OPEN, status="acknowledged", round=2)) == \
        "群众对答复不满意，已重新交办，正在办理。"
    assert open311.status_notes(replace(OPEN, status="dispatched", ticket_id="T1")) == "已转交基层治理平台办理。"
    answered = replace(OPEN, status="answered", reply_content="已安排维修，周五前修复。", answered_by="station_staff")
    assert open311.status_notes(answered) == "已安排维修，周五前修复。"
    assert open311.status_notes(replace(answered, status="closed")) == "已安排维修，周五前修复。"


def test_the_agency_is_whoever_handles_it_now() -> None:
    assert open311.agency_responsible(OPEN) == "人大代表联络站"
    assert open311.agency_responsible(replace(OPEN, target_kind="deputy")) == "人大代表"
    assert open311.agency_responsible(replace(OPEN, status="dispatched", ticket_id="T1")) == "基层治理平台"
    assert open311.agency_responsible(replace(OPEN, status="answered", answered_by="grid")) == "基层治理平台"
    # Staff answered a deputy's report for them; a deputy answered one aimed at their station.
    assert open311.agency_responsible(replace(OPEN, target_kind="deputy", answered_by="station_staff")) == \
        "人大代表联络站"
    assert open311.agency_responsible(replace(OPEN, target_kind="station", answered_by="deputy")) == "人大代表"


def test_a_request_shows_deadlines_in_china_time_and_never_the_reports_text_or_place() -> None:
    shown = open311.request_dict(OPEN)
    assert shown["service_request_id"] == OPEN.id and shown["status"] == "open"
    assert (shown["service_code"], shown["service_name"]) == ("roads_traffic", "道路交通")
    assert shown["requested_datetime"].isoformat() == "2026-11-16T10:00:00+08:00"
    assert shown["expected_datetime"].isoformat() == "2026-11-25T23:59:59+08:00"
    assert shown["updated_datetime"].isoformat() == "2026-11-16T10:00:01+08:00"
    for hidden in ("description", "address", "address_id", "zipcode", "lat", "long", "media_url"):
        assert shown[hidden] is None, hidden
    assert open311.request_dict(replace(OPEN, category=None))["service_code"] is None


def test_updated_is_the_latest_change_even_when_the_reports_clock_runs_ahead_of_the_rows_stamp() -> None:
    later = datetime(2026, 11, 18, 1, 0, tzinfo=UTC)
    assert open311.updated_at(replace(OPEN, answered_at=later, status="answered")) == later
    assert open311.updated_at(replace(OPEN, updated_at=None)) == OPEN.received_at


def test_the_text_keeps_a_typed_place_only_without_coordinates_and_the_media_link() -> None:
    assert open311.content_of(" 路灯不亮 ", "幸福路 12 号", None, has_coordinates=False) == \
        "路灯不亮\n地点：幸福路 12 号"
    assert open311.content_of("路灯不亮", "幸福路 12 号", None, has_coordinates=True) == "路灯不亮"
    assert open311.content_of("路灯不亮", None, "https://city.example/p/1.jpg", has_coordinates=False) == \
        "路灯不亮\n图片链接：https://city.example/p/1.jpg"
    assert open311.reporter_name("三", "张") == "张三"
    assert open311.coordinates(None, None) is None
    assert open311.coordinates(30.25, 120.1) == (30.25, 120.1)
    with pytest.raises(open311.Invalid, match="同时提供"):
        open311.coordinates(30.25, None)


def test_the_service_notice_names_both_deadlines_as_dates_in_china() -> None:
    notice = open311.service_notice(datetime(2026, 11, 18, 15, 59, 59, tzinfo=UTC), OPEN.reply_due)
    assert notice == "已收到反映。代表或联络站将于2026年11月18日前受理，2026年11月25日前答复。"


def test_the_search_window_is_the_last_90_days_unless_given_and_never_longer() -> None:
    assert open311.search_window(NOW, None, None) == (NOW - timedelta(days=90), NOW)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert open311.search_window(NOW, start, None) == (start, start + timedelta(days=90))
    assert open311.search_window(NOW, None, start) == (start - timedelta(days=90), start)
    china = datetime.fromisoformat("2026-01-01T08:00:00+08:00")
    assert open311.search_window(NOW, china, china) == (start, start)
    with pytest.raises(open311.Invalid, match="90 天"):
        open311.search_window(NOW, start, start + timedelta(days=90, seconds=1))
    with pytest.raises(open311.Invalid, match="不能晚于"):
        open311.search_window(NOW, start, start - timedelta(seconds=1))


@pytest.mark.parametrize(("start", "end"), [("0001-01-01T07:59:59+08:00", None), (None, "0001-01-01T00:00:00Z"),
                                           ("9999-12-31T23:59:59Z", None)])
def test_times_at_the_ends_of_the_calendar_are_a_bad_request_not_an_overflow(start: str | None,
                                                                             end: str | None) -> None:
    with pytest.raises(open311.Invalid, match="超出"):
        open311.search_window(NOW, start and datetime.fromisoformat(start), end and datetime.fromisoformat(end))
    # Year 1 itself is a window like any other (it holds no reports).
    first = datetime.fromisoformat("0001-01-01T00:00:00Z")
    assert open311.search_window(NOW, first, None) == (first, first + timedelta(days=90))


def test_filters_are_comma_lists_checked_before_any_lookup() -> None:
    assert open311.request_ids(f"{OPEN.id}, {OPEN.id},") == [OPEN.id]
    with pytest.raises(open311.Invalid, match="格式不正确"):
        open311.request_ids("1; DROP TABLE")
    with pytest.raises(open311.Invalid, match="最多 100"):
        open311.request_ids(",".join(f"0193a1b2-0000-7000-8000-{i:012d}" for i in range(101)))
    assert open311.service_codes("greenery,other") == ["greenery", "other"]
    assert open311.statuses(None) == [] and open311.statuses("open,closed") == []
    assert open311.statuses("open") == ["submitted", "acknowledged", "dispatched"]
    assert open311.statuses("closed") == ["answered", "closed"]
    with pytest.raises(open311.Invalid, match="open 或 closed"):
        open311.statuses("pending")


def test_errors_and_the_problem_json_choice() -> None:
    assert open311.error_list(404, "没有这条反映。") == [{"code": 404, "description": "没有这条反映。"}]
    assert open311.prefers_problem("application/problem+json, application/json;q=0.5")
    assert not open311.prefers_problem("application/json") and not open311.prefers_problem(None)


def test_xml_follows_the_specs_shapes() -> None:
    services = ET.fromstring(open311.xml_document("services", "service",
                                                  [open311.service_dict(s) for s in open311.SERVICES[:2]]))
    assert services.tag == "services" and [s.findtext("service_code") for s in services] == \
        ["municipal_facilities", "roads_traffic"]
    assert services[0].findtext("metadata") == "true" and services[0].findtext("service_name") == "市政设施"

    requests = ET.fromstring(open311.xml_document("service_requests", "request", [open311.request_dict(OPEN)]))
    request = requests.find("request")
    assert request is not None
    assert request.findtext("expected_datetime") == "2026-11-25T23:59:59+08:00"
    assert request.find("description") is not None and request.findtext("description") == ""

    definition = ET.fromstring(open311.xml_document("service_definition", None,
                                                    open311.definition_dict(open311.BY_CODE["greenery"])))
    assert definition.findtext("service_code") == "greenery"
    attributes = definition.findall("attributes/attribute")
    assert [{child.tag: child.text for child in a} for a in attributes] == [
        {"variable": "true", "code": "code", "datatype": "string", "required": "false",
         "datatype_description": CODE_ATTRIBUTE["datatype_description"], "order": "1",
         "description": CODE_ATTRIBUTE["description"]}]

    document = open311.errors_xml(open311.error_list(403, "该地区不在此接入凭证的范围内。"))
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    errors = ET.fromstring(document)
    assert [(e.findtext("code"), e.findtext("description")) for e in errors.iter("error")] == \
        [("403", "该地区不在此接入凭证的范围内。")]
