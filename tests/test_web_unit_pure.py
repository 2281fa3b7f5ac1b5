"""The pure parts of the handling unit's pages: the list's filters, which forms a unit gets, the three
meetings as recorded, what a form sent, and the exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from services.web import unit_export, unit_view
from services.web.unit_calls import Entry, Suggestion


def make(**changes: object) -> Suggestion:
    base: dict[str, object] = {
        "id": "s1", "title": "公交站台遮阳棚", "year": 2026, "status": "assigned", "color": "yellow",
        "lead_unit_id": "u-a", "assisting_unit_ids": ["u-b"], "submitted_at": "2026-03-01T02:00:00+00:00",
        "assigned_at": "2026-03-02T02:00:00+00:00", "due_at": "2026-06-02T15:59:59+00:00", "timeline": []}
    return Suggestion.model_validate({**base, **changes})


def test_filters_keep_known_values_and_drop_the_rest() -> None:
    f = unit_view.parse_filters({"status": "assigned", "color": "purple", "year": "2026", "page": "3"})
    assert (f.status, f.color, f.year, f.page, f.offset) == ("assigned", None, 2026, 3, 40)
    assert f.query(page=4) == "status=assigned&year=2026&page=4"
    assert f.query(page=1) == "status=assigned&year=2026"
    bad = unit_view.parse_filters({"year": "20x6", "page": "-1", "status": "'; drop"})
    assert bad == unit_view.Filters() and not bad.any


def test_forms_follow_the_units_part_and_the_state() -> None:
    s = make()
    lead, assisting = unit_view.role_of(s, "u-a"), unit_view.role_of(s, "u-b")
    assert (lead, assisting) == ("lead", "assisting")
    assert unit_view.role_of(s, "u-c") is None and unit_view.role_of(s, None) is None
    forms = unit_view.forms_for(s, lead)
    assert forms.meeting and forms.reply and forms.extension and not forms.view and not forms.spending
    assert unit_view.forms_for(s, assisting) == unit_view.Forms(False, True, False, False, False, False)
    assert not unit_view.forms_for(make(extended=True), lead).extension
    assert not unit_view.forms_for(make(status="reassigned"), lead).extension
    following = unit_view.forms_for(make(status="following_up"), lead)
    assert following.progress and not following.reply and not following.meeting
    assert unit_view.forms_for(make(micro=True), lead).spending
    assert not unit_view.forms_for(make(micro=True), assisting).spending


def test_a_pending_extension_request_takes_the_form_away() -> None:
    pending = make(extension_request={"unit_id": "u-a", "reason": "需要协调", "months": 2,
                                      "at": "2026-04-01T02:00:00+00:00"})
    assert not unit_view.forms_for(pending, "lead").extension
    assert unit_view.forms_for(pending, "lead").reply
    step = Entry(seq=3, at="2026-04-01T02:00:00+00:00", kind="extension_requested", months=2,
                           note="承办单位申请延期：需要协调")
    assert unit_view.step_words(step, {}) == "2 个月，等待人大常委会审批"


def test_the_reply_offers_the_classes_the_suggestion_is_handled_under() -> None:
    abcd = make(outcome_classes=[
        {"code": "A", "label": "已解决", "solved": True},
        {"code": "B", "label": "正在解决", "needs_planned_year": True},
        {"code": "C", "label": "计划解决", "needs_planned_year": True},
        {"code": "D", "label": "留作参考", "reference": True}])
    choices = unit_view.outcome_choices(abcd)
    assert [(c.code, c.label) for c in choices] == [("A", "已解决"), ("B", "正在解决"), ("C", "计划解决"),
                                                    ("D", "留作参考")]
    assert unit_view.codes(choices, planned=True) == "B、C" and unit_view.codes(choices, solved=True) == "A"
    # A service that names no classes: the defaults.
    assert [c.code for c in unit_view.outcome_choices(make())] == ["A", "B", "C"]


def test_meetings_take_the_latest_record_of_each_stage_since_the_last_reassignment() -> None:
    timeline = [
        {"seq": 2, "at": "2026-03-03T02:00:00+00:00", "kind": "meeting", "stage": "before", "note": "第一次"},
        {"seq": 3, "at": "2026-03-04T02:00:00+00:00", "kind": "meeting", "stage": "before", "note": "改期重见"},
        {"seq": 4, "at": "2026-03-05T02:00:00+00:00", "kind": "meeting", "stage": "during", "note": "察看现场"},
        {"seq": 5, "at": "2026-03-06T02:00:00+00:00", "kind": "assisting_view", "unit_id": "u-b", "note": "同意"},
    ]
    records = unit_view.meetings_of(make(timeline=timeline))
    assert [(m.stage, m.note) for m in records] == [("before", "改期重见"), ("during", "察看现场"), ("after", None)]
    again = unit_view.meetings_of(make(timeline=[*timeline, {"seq": 6, "at": "2026-07-01T02:00:00+00:00",
                                                            "kind": "reassigned", "due_at": "2026-08-01"}]))
    assert all(m.at is None for m in again)
    assert [(v.unit_id, v.content) for v in unit_view.views_of(make(timeline=timeline))] == [("u-b", "同意")]


def test_meeting_time_as_typed_in_beijing_time() -> None:
    now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    assert unit_view.parse_meeting_time("2026-03-05T14:30", now).isoformat() == "2026-03-05T14:30:00+08:00"
    assert unit_view.parse_meeting_time("2026-03-05 14:30", now).isoformat() == "2026-03-05T14:30:00+08:00"
    assert unit_view.parse_meeting_time("2026-03-05", now).isoformat() == "2026-03-05T09:00:00+08:00"
    early = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # 07:30 on 5 December in Beijing
    assert unit_view.parse_meeting_time("2026-12-05", early).isoformat() == "2026-12-05T07:30:00+08:00"
    # A future date stays as typed: the service says why it cannot be.
    assert unit_view.parse_meeting_time("2027-01-01", now).year == 2027
    assert unit_view.parse_meeting_time("昨天下午", now) is None
    assert unit_view.parse_meeting_time("", now) is None
    # No Beijing time exists for these: turning them into one overflowed, a 500 for a typo.
    assert unit_view.parse_meeting_time("0001-01-01T00:00+14:00", now) is None
    assert unit_view.parse_meeting_time("9999-12-31T23:59-12:00", now) is None


def test_amounts_in_yuan_and_fen() -> None:
    assert unit_view.parse_amount("1,200.5") == "1200.50"
    assert unit_view.parse_amount(" 300元 ") == "300.00"
    for bad in ("0", "-5", "1.234", "abc", "NaN", "Infinity", "1e30", ""):
        assert unit_view.parse_amount(bad) is None, bad


def test_step_words_say_what_a_step_adds() -> None:
    names = {"u-b": "住建局"}
    entry = make(timeline=[{"seq": 1, "at": "2026-03-06T02:00:00+00:00", "kind": "assisting_view",
                            "unit_id": "u-b"}]).timeline[0]
    assert unit_view.step_words(entry, names) == "住建局"
    overdue = make(timeline=[{"seq": 1, "at": "2026-06-03T00:00:00+00:00", "kind": "overdue",
                              "deadline": "reply", "due_at": "2026-06-02T15:59:59+00:00"}]).timeline[0]
    assert unit_view.step_words(overdue, names) == "答复已超期"


def test_exports_have_chinese_headers_a_bom_and_no_formulas() -> None:
    s = make(title="=HYPERLINK(\"http://x\")", reply={"unit_id": "u-a", "content": "好", "outcome": "A",
                                                     "public": False, "at": "2026-05-31T17:00:00+00:00"},
             outcome="A", outcome_label="已解决或当年解决", status="replied")
    rows = unit_view.export_rows([s], "u-b", {"u-a": "交通局", "u-b": "住建局"})
    assert rows[0][4:7] == ["协办", "交通局", "住建局"]
    # Dates in Beijing time: 17:00 UTC on 31 May is 1 June there.
    assert rows[0][13] == "2026-06-01" and rows[0][14] == "否"
    data = unit_export.to_csv(unit_view.EXPORT_HEADERS, rows)
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0] == list(unit_view.EXPORT_HEADERS)
    assert table[1][1].startswith("'=")
    book = load_workbook(io.BytesIO(unit_export.to_xlsx(unit_view.EXPORT_HEADERS, rows, sheet="承办建议")))
    sheet = book.active
    assert sheet.title == "承办建议"
    assert [c.value for c in sheet[1]] == list(unit_view.EXPORT_HEADERS)
    assert sheet["B2"].value.startswith("'=") and sheet["B2"].data_type == "s"
