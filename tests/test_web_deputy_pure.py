"""The deputy's pages' own decisions: deadline colours, the inbox's filters and counts, the
grid ticket's state, reply templates, co-signer search, form checks and the spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from openpyxl import load_workbook

from services.web import deputy_export
from services.web.deputy_calls import DeputyName, InboxItem, ReportStep
from services.web.deputy_view import (
    REPLY_TEMPLATES,
    all_counts,
    check_evaluation,
    check_suggestion,
    counts_to_ask,
    due_mark,
    matching_deputies,
    pages_of,
    points_text,
    read_filter,
    template_text,
    ticket_state,
)
from services.web.words import SHANGHAI

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI)


def item(n: int, due: datetime, status: str = "submitted", **over: object) -> InboxItem:
    fields: dict[str, object] = {
        "id": f"00000000-0000-0000-0000-{n:012d}", "channel": "h5", "status": status,
        "target": {"kind": "deputy", "id": "d", "region_code": "330106"}, "region_code": "330106",
        "category": "greenery", "excerpt": f"第 {n} 条", "anonymous": True,
        "received_at": (due - timedelta(days=3)).isoformat(),
        "ack_due": due.isoformat(), "reply_due": (due + timedelta(days=5)).isoformat(), "due_at": due.isoformat(),
        **over}
    return InboxItem.model_validate(fields)


def test_the_colour_follows_the_next_deadline_and_always_has_words() -> None:
    late = due_mark("submitted", NOW - timedelta(hours=30), False, NOW)
    assert (late.state, late.label) == ("late", "超期") and late.detail == "受理期限已过 30 小时"
    soon = due_mark("acknowledged", NOW + timedelta(hours=5), True, NOW)
    assert (soon.state, soon.label, soon.detail) == ("soon", "即将到期", "答复期限还剩 5 小时")
    edge = due_mark("dispatched", NOW + timedelta(days=1), True, NOW)
    assert edge.state == "soon"
    ok = due_mark("submitted", NOW + timedelta(days=1, seconds=1), False, NOW)
    assert (ok.state, ok.label, ok.detail) == ("ok", "正常", "12月9日前受理")
    assert due_mark("submitted", NOW, False, NOW).state == "late"
    assert due_mark("submitted", NOW - timedelta(days=4), False, NOW).detail == "受理期限已过 4 天"
    assert due_mark("submitted", NOW - timedelta(minutes=5), False, NOW).detail == "受理期限已过 不到 1 小时"
    # Answered and closed reports owe nothing, however old their deadline.
    for status in ("answered", "closed"):
        done = due_mark(status, NOW - timedelta(days=30), True, NOW)
        assert (done.state, done.label) == ("done", "已办")
    # A deadline given in another offset is the same instant.
    assert due_mark("submitted", "2026-12-08T03:30:00+00:00", False, NOW).state == "soon"


def test_filters_come_from_the_url_and_unknown_values_fall_back() -> None:
    view = read_filter({})
    # 待办 is one list of intake's, paged by intake.
    assert (view.status, view.overdue, view.page, view.params) == ("open", False, 1, {"open": "true"})
    assert view.query() == ""
    view = read_filter({"status": "answered", "overdue": "1", "page": "3"})
    assert view.params == {"status": "answered", "overdue": "true"} and view.offset == 40
    assert view.query() == "status=answered&overdue=1"
    assert view.query(page=4) == "status=answered&overdue=1&page=4"
    assert view.query(status="open") == "overdue=1"
    assert view.query(overdue=False) == "status=answered"
    assert read_filter({"status": "all"}).params == {}
    assert read_filter({"status": "<script>", "page": "-2", "overdue": "yes"}) == read_filter({})
    assert read_filter({"page": "999999"}).page == 100
    assert pages_of(0) == 1 and pages_of(20) == 1 and pages_of(21) == 2 and pages_of(10**6) == 100


def test_the_counts_ask_intake_only_for_what_the_list_does_not_tell() -> None:
    given, ask = counts_to_ask(read_filter({}))
    # The default view: 待办 is the list's total and 已转办 what is left of it.
    assert given == "open" and ask == ("submitted", "acknowledged", "answered", "closed", "overdue")
    counts = all_counts({"open": 9}, {"submitted": 2, "acknowledged": 3, "answered": 4, "closed": 5, "overdue": 1})
    assert counts == {"open": 9, "submitted": 2, "acknowledged": 3, "dispatched": 4, "answered": 4, "closed": 5,
                      "overdue": 1, "all": 18}
    given, ask = counts_to_ask(read_filter({"status": "closed"}))
    assert given == "closed" and "closed" not in ask and "dispatched" in ask
    # Narrowed to overdue ones, or every status, the list's total is none of the counts.
    assert counts_to_ask(read_filter({"status": "closed", "overdue": "1"}))[0] is None
    assert counts_to_ask(read_filter({"status": "all"})) == (None, ("submitted", "acknowledged", "dispatched",
                                                                   "answered", "closed", "overdue"))
    every = {"submitted": 1, "acknowledged": 1, "dispatched": 1, "answered": 0, "closed": 2, "overdue": 0}
    assert all_counts({}, every)["open"] == 3 and all_counts({}, every)["all"] == 5
    # Reports moving on between two counts never show as fewer than none.
    moving = {k: v for k, v in every.items() if k != "dispatched"}
    assert all_counts({"open": 1}, {**moving, "submitted": 2})["dispatched"] == 0


def test_the_grid_ticket_is_described_by_the_latest_public_news_of_the_platform() -> None:
    steps = [ReportStep(at=NOW.isoformat(), status="dispatched", note="已转交基层治理平台办理。", actor="grid"),
             ReportStep(at=NOW.isoformat(), status="dispatched", note="基层治理平台正在处理。", actor="grid"),
             ReportStep(at=NOW.isoformat(), status="dispatched", note="内部说明", actor="grid", public=False),
             ReportStep(at=NOW.isoformat(), status="dispatched", note="代表已受理，正在办理。", actor="deputy")]
    assert ticket_state("T-1", steps) == "基层治理平台正在处理。"
    assert ticket_state("T-1", []).startswith("已转交基层治理平台")
    assert ticket_state(None, []) == "未转交基层治理平台，由代表办理。"
    back = "基层治理平台已退回，由代表继续办理。"
    returned = [*steps, ReportStep(at=NOW.isoformat(), status="acknowledged", note=back, actor="grid")]
    assert ticket_state(None, returned) == "基层治理平台已退回，由代表继续办理。"


def test_reply_templates_are_a_small_fixed_set_chosen_by_key() -> None:
    assert 3 <= len(REPLY_TEMPLATES) <= 8
    assert len({t.key for t in REPLY_TEMPLATES}) == len(REPLY_TEMPLATES)
    assert all(t.text.startswith("您好") and len(t.text) <= 5000 for t in REPLY_TEMPLATES)
    assert template_text("solved") == REPLY_TEMPLATES[1].text
    assert template_text("nope") == "" and template_text(None) == ""


def test_co_signers_are_searched_by_name_without_the_deputy_themself() -> None:
    everyone = [DeputyName(deputy_id="a", name="王丽娟"), DeputyName(deputy_id="b", name="陈志强"),
                DeputyName(deputy_id="c", name="王五"), DeputyName(deputy_id="me", name="王我")]
    assert [d.deputy_id for d in matching_deputies(everyone, "王", me="me")] == ["a", "c"]
    assert [d.deputy_id for d in matching_deputies(everyone, " 志强 ", me="me")] == ["b"]
    assert len(matching_deputies(everyone, "", me="me")) == 3
    assert matching_deputies(everyone, "", me=None, limit=2) == sorted(everyone, key=lambda d: d.name)[:2]
    assert matching_deputies(everyone, "张", me="me") == []


def test_forms_are_checked_as_the_services_would() -> None:
    assert check_suggestion("关于路灯的建议", "文新社区多处路灯老化，夜间出行不便。", "interim") == {}
    errors = check_suggestion("路", "太短", "other")
    assert set(errors) == {"title", "content", "kind"}
    assert "200" in check_suggestion("长" * 201, "内" * 20, "session")["title"]
    assert check_evaluation("satisfied", "") == {}
    assert "不满意" in check_evaluation("dissatisfied", "")["comment"]
    assert check_evaluation("dissatisfied", "没有解决") == {}
    assert "result" in check_evaluation("great", "")
    assert [points_text(p) for p in (4, -0.5, 0, 1.25)] == ["+4", "-0.5", "0", "+1.25"]


def test_the_list_exports_with_chinese_headers_beijing_times_and_no_formulas() -> None:
    rows = deputy_export.rows([item(1, NOW - timedelta(hours=2), excerpt="=HYPERLINK(\"http://x\")"),
                               item(2, NOW + timedelta(days=3), status="answered", anonymous=False,
                                    reporter={"name": "张*", "phone": "139****2222"}, supporters=3)],
                              {"greenery": "园林绿化"}, NOW)
    data = deputy_export.as_csv(rows)
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0] == list(deputy_export.HEADERS) and table[0][1] == "状态"
    assert table[1][1:4] == ["待受理", "超期", "2026-12-08 08:00"]
    assert table[1][7] == "园林绿化" and table[1][11].startswith("'=")
    assert table[2][1:3] == ["已答复", "已办"] and table[2][9] == "张*"
    assert table[0][10] == "附议人数" and table[1][10] == "0" and table[2][10] == "3"
    book = load_workbook(io.BytesIO(deputy_export.as_xlsx(rows)))
    sheet = book.active
    assert [c.value for c in sheet[1]] == list(deputy_export.HEADERS)
    assert sheet["D2"].value == datetime(2026, 12, 8, 8, 0) and sheet["D2"].number_format == deputy_export.DATE_FORMAT
    assert sheet["L2"].data_type == "s" and sheet["L2"].value.startswith("=HYPERLINK")
    assert sheet["K3"].value == 3


def test_the_inbox_order_travels_in_the_url_and_to_intake() -> None:
    from services.web.deputy_view import InboxFilter, read_filter

    newest = read_filter({"sort": "-received", "status": "answered"})
    assert newest == InboxFilter(status="answered", sort="-received")
    assert newest.params == {"status": "answered", "sort": "-received"}
    assert newest.query() == "status=answered&sort=-received"
    assert newest.query(sort="due") == "status=answered"
    assert read_filter({"sort": "content"}).sort == "due" and "sort" not in read_filter({}).params
