"""The Open311 GeoReport v2 rules of routing's open311 transport, without I/O: the form a ticket
becomes, service codes, what the platform answers, how its statuses map, and which readings are news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.routing import domain, open311
from services.routing.open311 import Observation, RemoteRequest, Service, Verdict

TICKET = {"ticket_id": "0193-ticket", "report_id": "r1", "region_code": "350740001", "category": "roads_traffic",
          "content": "人民路和建设路交叉口的红绿灯坏了", "due_at": None, "callback_url": "http://x/"}
CST = timezone(timedelta(hours=8))


def fields(form: list[tuple[str, str]]) -> dict[str, str]:
    names = [name for name, _ in form]
    assert len(names) == len(set(names)), names
    return dict(form)


def test_a_ticket_with_coordinates_becomes_a_form_with_lat_and_long() -> None:
    ticket = {**TICKET, "location": {"lat": 26.0745, "lon": 119.2965, "address": "人民路12号"},
              "media_url": "https://img.example.cn/1.jpg"}
    form = fields(open311.request_form(ticket, api_key="k", jurisdiction_id="fz.example.cn", service_code="DL-02"))
    assert form == {"api_key": "k", "jurisdiction_id": "fz.example.cn", "service_code": "DL-02",
                    "description": "人民路和建设路交叉口的红绿灯坏了\n\n[民意工单 0193-ticket]",
                    "lat": "26.0745000", "long": "119.2965000",
                    "address_string": "人民路12号，行政区划代码 350740001", "media_url": "https://img.example.cn/1.jpg"}


def test_without_coordinates_the_place_is_told_in_words_and_nothing_optional_is_sent_empty() -> None:
    form = fields(open311.request_form(TICKET, api_key="k", jurisdiction_id=None, service_code="DL-02"))
    assert form["address_string"] == "人民路和建设路，行政区划代码 350740001"
    assert "jurisdiction_id" not in form and "lat" not in form and "media_url" not in form
    bare = fields(open311.request_form({**TICKET, "content": "灯坏了", "location": {"lat": "x", "lon": 1}},
                                       api_key="k", jurisdiction_id=None, service_code="1"))
    assert bare["address_string"] == "行政区划代码 350740001" and "lat" not in bare
    assert not any(name.startswith("attribute") for name in bare)
    not_a_link = fields(open311.request_form({**TICKET, "media_url": "javascript:alert(1)"}, api_key="k",
                                             jurisdiction_id=None, service_code="1"))
    assert "media_url" not in not_a_link


def test_a_long_report_is_cut_to_the_specs_4000_characters_and_keeps_its_marker_whole() -> None:
    text = open311.description("很" * 5000, "t-1")
    assert len(text) == open311.MAX_DESCRIPTION
    assert text.endswith("…\n\n[民意工单 t-1]")
    assert open311.description("  短  ", "t-1") == "短\n\n[民意工单 t-1]"
    assert open311.description("", "t-1") == "[民意工单 t-1]"


def test_service_codes_come_from_the_mapping_alone_or_from_services_by_code_then_by_label() -> None:
    services = [Service("SZ-01", "市政设施"), Service("roads_traffic", "交通"), Service("DL-02", "道路交通")]
    assert open311.service_code("roads_traffic", mapping=None, services=services) == "roads_traffic"
    assert open311.service_code("municipal_facilities", mapping=None, services=services) == "SZ-01"
    assert open311.service_code("greenery", mapping=None, services=services) is None
    assert open311.service_code("roads_traffic", mapping={"roads_traffic": "X"}, services=services) == "X"
    # A category the mapping leaves out is one the platform does not take, whatever services.json says.
    assert open311.service_code("municipal_facilities", mapping={"roads_traffic": "X"}, services=services) is None
    parsed = open311.parse_services([{"service_code": 1, "service_name": "市政设施"}, {"service_name": "无代码"}, 7])
    assert parsed == [Service("1", "市政设施")]


def test_a_post_answers_an_id_a_token_or_neither() -> None:
    assert open311.parse_created([{"service_request_id": 293944, "service_notice": "…"}]) == open311.Created(
        "293944", None)
    assert open311.parse_created({"service_requests": [{"token": "12345"}]}) == open311.Created(None, "12345")
    assert open311.parse_created([{"service_notice": "blackbox"}]) == open311.Created(None, None)
    for unreadable in ([], {"detail": "x"}, "ok", None):
        with pytest.raises(open311.Unreadable):
            open311.parse_created(unreadable)
    assert open311.parse_token([{"token": "12345"}]) is None
    assert open311.parse_token([{"service_request_id": 638344, "token": 12345}]) == "638344"


@pytest.mark.parametrize(("body", "said"), [
    ('[{"code":400,"description":"service_code was not provided"}]', "400 service_code was not provided"),
    ('[{"code":404,"description":"a"},{"code":"x","description":"b"}]', "404 a；x b"),
    ('[{"description":"只有说明"}]', "只有说明"),
    ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    ("", "（无说明）"),
])
def test_errors_in_the_specs_form_are_read_for_staff(body: str, said: str) -> None:
    assert open311.error_text(400, body) == f"基层治理平台答复 HTTP 400：{said}"


def test_which_failures_may_have_created_the_request() -> None:
    assert [s for s in (400, 408, 429, 500, 502, 503, 504) if open311.ambiguous_status(s)] == [500, 502, 504]


def test_times_must_carry_their_zone() -> None:
    assert open311.parse_time("2026-12-01T08:15:30Z") == datetime(2026, 12, 1, 8, 15, 30, tzinfo=UTC)
    assert open311.parse_time("2026-12-01T16:15:30+08:00") == datetime(2026, 12, 1, 8, 15, 30, tzinfo=UTC)
    assert open311.parse_time("2026-12-01T16:15:30") is None
    assert open311.parse_time("yesterday") is None and open311.parse_time(None) is None
    assert open311.w3(datetime(2026, 12, 1, 16, 15, 30, tzinfo=CST)) == "2026-12-01T08:15:30Z"


def test_requests_and_updates_are_read_as_platforms_write_them() -> None:
    requests = open311.parse_requests([
        {"service_request_id": 7, "status": "Closed", "status_notes": "已修复", "description": "d",
         "requested_datetime": "2026-12-01T08:00:00Z", "updated_datetime": "2026-12-02T08:00:00+08:00"},
        {"status": "open"},
    ])
    assert requests == [RemoteRequest("7", "closed", "已修复", "d", datetime(2026, 12, 1, 8, tzinfo=UTC),
                                      datetime(2026, 12, 2, tzinfo=UTC))]
    item = {"update_id": "u1", "service_request_id": 7, "status": "INVESTIGATING",
            "updated_datetime": "2026-12-02T08:00:00Z", "description": "已派人"}
    for doc in ({"service_request_updates": [item]}, {"service_requests_updates": [item]}, [item]):
        assert open311.parse_updates(doc) == [open311.Update("u1", "7", "investigating",
                                                             datetime(2026, 12, 2, 8, tzinfo=UTC), "已派人")]
    assert open311.parse_updates({"service_request_updates": [{"update_id": "u2"}]}) == []


def test_the_ticket_follows_the_earliest_request_carrying_its_marker() -> None:
    def request(rid: str, hour: int, text: str) -> RemoteRequest:
        return RemoteRequest(rid, "open", None, text, datetime(2026, 12, 1, hour, tzinfo=UTC), None)

    found = open311.marked([request("3", 9, "x [民意工单 t-1]"), request("2", 8, "y\n\n[民意工单 t-1]"),
                            request("1", 7, "[民意工单 t-10]")], "t-1")
    assert [r.id for r in found] == ["2", "3"]


def test_ids_are_asked_for_a_hundred_at_a_time() -> None:
    ids = [str(i) for i in range(250)] + ["a,b"]
    assert [len(b) for b in open311.batches(ids)] == [100, 100, 50]
    assert "a,b" not in [i for b in open311.batches(ids) for i in b]


@pytest.mark.parametrize(("raw", "status"), [
    ("open", "accepted"), ("closed", "resolved"), ("OPEN", "accepted"),
    ("investigating", "in_progress"), ("IN_PROGRESS", "in_progress"), ("action scheduled", "in_progress"),
    ("fixed", "resolved"), ("FIXED", "resolved"),
    ("not_responsible", "returned"), ("NOT_COUNCILS_RESPONSIBILITY", "returned"), ("duplicate", "returned"),
    ("internal_referral", "returned"), ("unable_to_fix", "returned"), ("no-further-action", "returned"),
    ("for_triage", None), ("", None),
])
def test_open311_statuses_become_ticket_statuses(raw: str, status: str | None) -> None:
    assert open311.minyi_status(raw) == status


def reading(status: str, *, at: datetime | None, note: str | None = None, key: str = "k1",
            source: str = "request") -> Observation:
    return Observation("7", status, note, at, key, source)


T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def follow(current: str, readings: list[Observation], seen: dict[str, Any] | None = None
           ) -> tuple[str, list[tuple[str, str | None]], dict[str, Any] | None]:
    """Readings applied one by one as the poller does: (status after, what reached the ticket, kept)."""
    passed: list[tuple[str, str | None]] = []
    for r in readings:
        verdict = open311.verdict(r, current=current, seen=seen)
        if verdict == Verdict.SEEN:
            continue
        mapped = open311.minyi_status(r.status)
        if verdict == Verdict.APPLY and mapped is not None:
            passed.append((mapped, r.note))
            if domain.change(current, mapped) == domain.Change.APPLY:
                current = mapped
        seen = open311.remembered(r, seen)
    return current, passed, seen


def test_a_request_read_again_and_again_reaches_the_ticket_once() -> None:
    open_ = reading("open", at=T0, key="r-open")
    status, passed, _ = follow("sent", [open_, open_, open_])
    assert (status, passed) == ("accepted", [("accepted", None)])


def test_newest_wins_and_new_words_on_the_same_status_are_kept() -> None:
    later = reading("closed", at=T0 + timedelta(hours=2), note="已修复", key="b")
    earlier = reading("open", at=T0, note="已派单", key="a")
    status, passed, seen = follow("accepted", [later, earlier])
    assert (status, passed) == ("resolved", [("resolved", "已修复")])
    assert seen is not None and seen["at"] == (T0 + timedelta(hours=2)).isoformat()
    noted = reading("open", at=T0 + timedelta(hours=1), note="已派网格员", key="c")
    status, passed, _ = follow("sent", [reading("open", at=T0, key="a"), noted])
    assert passed == [("accepted", None), ("accepted", "已派网格员")]


def test_two_sources_telling_one_change_do_not_take_turns_in_the_history() -> None:
    update = reading("investigating", at=T0, note="已派人到现场", key="u1", source="update")
    request = reading("open", at=T0, note="已派人到现场", key="r1")
    request_without_words = reading("open", at=T0, key="r2")
    status, passed, seen = follow("accepted", [update, request, request_without_words] * 3)
    assert (status, passed) == ("in_progress", [("in_progress", "已派人到现场")])
    # The request's own words differing from the update's are kept once, not on every poll.
    worded = reading("open", at=T0, note="现场核实中", key="r3")
    status, passed, _ = follow(status, [update, worded] * 3, seen)
    assert passed == [("accepted", "现场核实中")] and status == "in_progress"


def test_an_unknown_status_is_remembered_without_reaching_the_ticket() -> None:
    odd = reading("for_triage", at=T0, key="x")
    assert open311.verdict(odd, current="sent", seen=None) == Verdict.UNKNOWN
    seen = open311.remembered(odd, None)
    assert open311.verdict(odd, current="sent", seen=seen) == Verdict.SEEN


def test_what_a_ticket_remembers_is_bounded_and_its_time_never_goes_back() -> None:
    seen: dict[str, Any] | None = None
    for i in range(open311.KEPT_KEYS + 10):
        seen = open311.remembered(reading("open", at=T0 - timedelta(minutes=i), key=f"k{i}"), seen)
    assert seen is not None and len(seen["keys"]) == open311.KEPT_KEYS
    assert seen["keys"][-1] == f"k{open311.KEPT_KEYS + 9}"
    assert seen["at"] == T0.isoformat()
    assert open311.remembered(reading("open", at=None, key="n"), seen)["at"] == T0.isoformat()
