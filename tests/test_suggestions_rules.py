"""The pure rules of suggestions (`domain`, `lifecycle`, `paging`), each against values worked out
by hand: deadlines at the end of a day in China (UTC+8) across month ends and leap years, the
3-month reply and 6-month extension bounds, the planned-year range, outcome schemes, the colour
on every status, repeat similarity, and what each action does in each state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.suggestions import domain, lifecycle, paging
from services.suggestions.domain import (
    DEFAULT_OUTCOMES,
    Color,
    Earlier,
    Evaluation,
    OutcomeClass,
    RuleError,
    Status,
)
from services.suggestions.lifecycle import Happening, Suggestion


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


A, B, C = DEFAULT_OUTCOMES


# ---- deadlines -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("assigned", "due"), [
    # 31 Jan + 3 months: there is no 31 April, so the end of 30 April, 23:59:59 in China = 15:59:59 UTC.
    ("2030-01-31T02:00:00", "2030-04-30T15:59:59"),
    # 30 Nov + 3 months in a leap year: 29 February.
    ("2027-11-30T03:00:00", "2028-02-29T15:59:59"),
    ("2030-11-30T03:00:00", "2031-02-28T15:59:59"),
    # 16:30 UTC on 30 Nov is already 00:30 on 1 Dec in China: due 1 March, not 29 February.
    ("2027-11-30T16:30:00", "2028-03-01T15:59:59"),
    # One second before China's midnight is still 30 Nov there.
    ("2027-11-30T15:59:59", "2028-02-29T15:59:59"),
    # China's new year begins at 16:00 UTC on 31 Dec.
    ("2030-12-31T16:00:00", "2031-04-01T15:59:59"),
    ("2030-12-31T15:59:59", "2031-03-31T15:59:59"),
])
def test_the_reply_is_due_three_months_later_at_the_end_of_that_day_in_china(assigned: str, due: str) -> None:
    assert domain.reply_due(utc(assigned)) == utc(due)


@pytest.mark.parametrize(("assigned", "latest"), [
    ("2030-01-31T02:00:00", "2030-07-31T15:59:59"),
    ("2027-08-31T02:00:00", "2028-02-29T15:59:59"),
    ("2030-06-30T16:30:00", "2031-01-01T15:59:59"),  # 1 July in China
])
def test_an_extension_reaches_at_most_six_months_after_assignment(assigned: str, latest: str) -> None:
    assert domain.latest_extension(utc(assigned)) == utc(latest)


def test_months_after_and_the_other_deadlines() -> None:
    assert domain.months_after(utc("2030-01-31T02:00:00"), 1) == utc("2030-02-28T15:59:59")
    assert domain.months_after(utc("2028-01-30T20:00:00"), 1) == utc("2028-02-29T15:59:59")  # 31 Jan in China
    assert domain.end_of_day(datetime(2030, 5, 1).date()) == utc("2030-05-01T15:59:59")
    assert domain.review_due(2031) == utc("2031-11-30T15:59:59")
    assert domain.year_end(2030) == utc("2030-12-31T15:59:59")
    assert domain.first_review_year(utc("2030-12-31T15:00:00")) == 2031  # 23:00 on 31 Dec in China
    assert domain.first_review_year(utc("2030-12-31T16:30:00")) == 2032  # 00:30 on 1 Jan in China
    assert domain.china_date(utc("2030-06-30T16:00:00")).isoformat() == "2030-07-01"


def test_terms_last_five_years() -> None:
    # The 14th term began in 2022: 2022–2026 are the 14th, 2027–2031 the 15th, 2032 the 16th.
    assert [domain.term_of(y, 2022, 14) for y in (2021, 2022, 2026, 2027, 2031, 2032)] == [13, 14, 14, 15, 15, 16]
    assert domain.term_of(2022, 2022) == 1


@pytest.mark.parametrize(("due", "months", "extended_to"), [
    ("2030-04-30T15:59:59", 3, "2030-07-30T15:59:59"),  # 30 April + 3 months; the cap (31 July) is later
    ("2030-04-30T15:59:59", 1, "2030-05-30T15:59:59"),
    ("2028-02-29T15:59:59", 3, "2028-05-29T15:59:59"),  # assigned 30 Nov 2027; the cap is 30 May
])
def test_the_extended_due_time(due: str, months: int, extended_to: str) -> None:
    assigned = utc("2030-01-31T02:00:00") if due.startswith("2030") else utc("2027-11-30T03:00:00")
    assert domain.check_extension(Status.ASSIGNED, False, assigned, utc(due), months) == utc(extended_to)


@pytest.mark.parametrize(("status", "extended", "months", "message", "field"), [
    (Status.ASSIGNED, False, 0, "延期月数应为 1 至 3。", "months"),
    (Status.ASSIGNED, False, 4, "延期月数应为 1 至 3。", "months"),
    (Status.ASSIGNED, True, 3, "每件建议只能延期一次。", None),
    (Status.REPLIED, False, 3, "只有已交办、尚未答复的建议可以延期。", None),
    (Status.REASSIGNED, False, 1, "只有已交办、尚未答复的建议可以延期。", None),
])
def test_extensions_refused(status: Status, extended: bool, months: int, message: str, field: str | None) -> None:
    with pytest.raises(RuleError) as refused:
        domain.check_extension(status, extended, utc("2030-01-31T02:00:00"), utc("2030-04-30T15:59:59"), months)
    assert (refused.value.message, refused.value.field) == (message, field)


# ---- replies and outcome classes -------------------------------------------------------------------


@pytest.mark.parametrize("planned", [2030, 2031, 2033])
def test_a_planned_year_from_the_reply_year_to_three_years_on(planned: int) -> None:
    domain.check_reply(Status.ASSIGNED, key=False, meetings=set(), outcome=B, planned_year=planned, reply_year=2030)


@pytest.mark.parametrize(("planned", "message"), [
    (2029, "计划解决年度应在 2030 至 2033 年之间。"),
    (2034, "计划解决年度应在 2030 至 2033 年之间。"),
    (None, "B 类答复须写明计划解决年度。"),
])
def test_a_planned_year_outside_the_range_is_refused(planned: int | None, message: str) -> None:
    with pytest.raises(RuleError) as refused:
        domain.check_reply(Status.REASSIGNED, key=False, meetings=set(), outcome=B, planned_year=planned,
                           reply_year=2030)
    assert (refused.value.message, refused.value.field) == (message, "planned_year")


def test_replies_need_an_assigned_suggestion_and_a_key_one_three_meetings() -> None:
    domain.check_reply(Status.ASSIGNED, key=False, meetings=set(), outcome=A, planned_year=None, reply_year=2030)
    domain.check_reply(Status.ASSIGNED, key=True, meetings={"before", "during", "after"}, outcome=C,
                       planned_year=None, reply_year=2030)
    with pytest.raises(RuleError) as refused:
        domain.check_reply(Status.ASSIGNED, key=True, meetings={"before", "during"}, outcome=A, planned_year=None,
                           reply_year=2030)
    assert refused.value.field == "meetings"
    for status in (Status.SUBMITTED, Status.REPLIED, Status.FOLLOWING_UP, Status.CLOSED):
        with pytest.raises(RuleError) as refused:
            domain.check_reply(status, key=False, meetings=set(), outcome=A, planned_year=None, reply_year=2030)
        assert refused.value.message == "只有已交办的建议可以答复。"


def test_outcome_schemes() -> None:
    domain.validate_outcome_scheme(list(DEFAULT_OUTCOMES))
    domain.validate_outcome_scheme([OutcomeClass("A", "已解决", solved=True),
                                    OutcomeClass("B", "正在解决", needs_planned_year=True),
                                    OutcomeClass("C", "计划解决", needs_planned_year=True),
                                    OutcomeClass("D", "留作参考", reference=True)])
    refusals = [
        ([], "答复结果分类不能为空，代码不能重复。"),
        ([OutcomeClass("A", "已解决", solved=True), OutcomeClass("A", "又一个")],
         "答复结果分类不能为空，代码不能重复。"),
        ([OutcomeClass("B", "计划", needs_planned_year=True), OutcomeClass("C", "参考", reference=True)],
         "答复结果分类中至少要有一类表示已解决。"),
        ([OutcomeClass("A", "已解决", solved=True, reference=True)], "表示已解决的分类不能同时是留作参考或列入计划。"),
        ([OutcomeClass("A", "已解决", solved=True, needs_planned_year=True)],
         "表示已解决的分类不能同时是留作参考或列入计划。"),
    ]
    for classes, message in refusals:
        with pytest.raises(RuleError) as refused:
            domain.validate_outcome_scheme(classes)
        assert (refused.value.message, refused.value.field) == (message, "classes")
    assert domain.outcome_of(DEFAULT_OUTCOMES, "B") == B and B.needs_planned_year and not B.solved
    with pytest.raises(RuleError) as unknown:
        domain.outcome_of(DEFAULT_OUTCOMES, "D")
    assert (unknown.value.message, unknown.value.field) == ("答复结果应为 A、B、C 之一。", "outcome")


def test_after_an_evaluation() -> None:
    at = utc("2030-01-31T02:00:00")
    assert domain.after_evaluation(Evaluation.SATISFIED, A, 0, at) == domain.AfterEvaluation(Status.CLOSED, None)
    assert domain.after_evaluation(Evaluation.BASICALLY_SATISFIED, B, 0, at) == domain.AfterEvaluation(
        Status.FOLLOWING_UP, utc("2031-11-30T15:59:59"))
    assert domain.after_evaluation(Evaluation.SATISFIED, C, 0, at) == domain.AfterEvaluation(
        Status.FOLLOWING_UP, utc("2031-11-30T15:59:59"))
    # Dissatisfied: a new reply within a month (31 Jan → 28 Feb); a second time, the director's meeting.
    assert domain.after_evaluation(Evaluation.DISSATISFIED, A, 0, at) == domain.AfterEvaluation(
        Status.REASSIGNED, utc("2030-02-28T15:59:59"))
    assert domain.after_evaluation(Evaluation.DISSATISFIED, A, 1, at) == domain.AfterEvaluation(
        Status.REFERRED, None, referred=True)


# ---- colours -----------------------------------------------------------------------------------------

NOW = utc("2030-06-15T04:00:00")
D = timedelta(days=1)
S = timedelta(seconds=1)


COLOURS = [
    (Status.SUBMITTED, None, None, False, Color.GREEN),
    (Status.ASSIGNED, NOW + 16 * D, None, False, Color.GREEN),
    (Status.ASSIGNED, NOW + 15 * D + S, None, False, Color.GREEN),
    (Status.ASSIGNED, NOW + 15 * D, None, False, Color.YELLOW),  # within 15 days, the 15th included
    (Status.ASSIGNED, NOW, None, False, Color.YELLOW),  # due this very second: not late yet
    (Status.ASSIGNED, NOW - S, None, False, Color.RED),
    (Status.ASSIGNED, NOW + 60 * D, NOW - D, False, Color.GREEN),  # a look-back date does not count here
    (Status.REPLIED, None, None, False, Color.GREEN),
    (Status.REASSIGNED, NOW - D, None, False, Color.RED),
    (Status.REASSIGNED, NOW + 3 * D, None, False, Color.YELLOW),
    (Status.REFERRED, None, None, False, Color.GREEN),
    (Status.FOLLOWING_UP, None, NOW - S, False, Color.RED),
    (Status.FOLLOWING_UP, None, NOW + 10 * D, False, Color.YELLOW),
    (Status.FOLLOWING_UP, None, NOW + 100 * D, False, Color.GREEN),
    (Status.FOLLOWING_UP, NOW - 30 * D, NOW + 100 * D, False, Color.GREEN),  # the old reply due does not count
    (Status.FOLLOWING_UP, None, None, False, Color.GREEN),
    (Status.FOLLOWING_UP, None, NOW - D, True, Color.GREY),
    (Status.CLOSED, None, None, False, Color.BLUE),
    (Status.CLOSED, None, None, True, Color.BLUE),
]


@pytest.mark.parametrize(("status", "due", "review", "reference", "expected"), COLOURS)
def test_the_colour_on_every_status(status: Status, due: datetime | None, review: datetime | None, reference: bool,
                                    expected: Color) -> None:
    assert domain.color(status, NOW, due_at=due, next_review_at=review, reference=reference) == expected


def test_every_status_has_a_colour_case() -> None:
    assert {case[0] for case in COLOURS} == set(Status), "a new status needs its colours worked out above"


# ---- text ---------------------------------------------------------------------------------------------


def test_similarity_of_character_bigrams() -> None:
    assert domain.bigrams("路灯，坏了") == {"路灯", "灯坏", "坏了"}  # punctuation is skipped
    # {路灯, 灯坏, 坏了} and {路灯, 灯修, 修好, 好了}: one shared of six.
    assert domain.similarity("路灯坏了", "路灯修好了") == pytest.approx(1 / 6)
    assert domain.similarity("路", "路灯") == 0.0  # no bigram on one side
    assert domain.similarity("AB", "ab") == 0.0


def test_the_closest_earlier_suggestion_at_or_above_0_45() -> None:
    # "路灯坏了\n请修" → {路灯, 灯坏, 坏了, 了请, 请修}
    close = Earlier("e1", "路灯坏了", "请修理", "A", "closed")  # + 修理: 5 of 6
    closer_below = Earlier("e2", "路灯坏了", "马上", None, "assigned")  # {..., 了马, 马上}: 3 of 7 = 0.43
    fair = Earlier("e3", "路灯坏了", "请", "B", "following_up")  # 4 of 5
    best = domain.closest_repeat("路灯坏了", "请修", [closer_below, fair, close])
    assert best is close and best.score == pytest.approx(5 / 6)
    assert domain.closest_repeat("路灯坏了", "请修", [closer_below]) is None
    # Two of four bigrams shared: 0.5, enough.
    half = Earlier("e4", "abcde", "", None, "submitted")
    assert domain.closest_repeat("ab", "c", [half]) is half and half.score == 0.5


def test_published_text_masks_phone_and_id_numbers() -> None:
    assert domain.redact("电话13812345678，身份证340821199001011234。") == "电话138****5678，身份证3408**********1234。"
    assert domain.redact("编号213812345678") == "编号213812345678"  # twelve digits: no phone number


# ---- what actions do ------------------------------------------------------------------------------------


def new(year: int = 2030, outcomes: tuple[OutcomeClass, ...] = DEFAULT_OUTCOMES) -> Suggestion:
    s = Suggestion(id="s1", title="关于路灯的建议", content="路灯坏了请修理。", lead_deputy_id="d1", co_signer_ids=[],
                   region_code="340821", year=year, kind="session", micro=False, outcomes=list(outcomes),
                   term_first_year=2022, term_number=14, submitted_at=utc(f"{year}-01-10T02:00:00"),
                   submitted_by="t")
    assert lifecycle.submitted(s) == [Happening("submitted", "t", None, {})]
    return s


def refused(action: object, *args: object) -> RuleError:
    with pytest.raises(RuleError) as caught:
        action(*args)  # type: ignore[operator]
    return caught.value


def test_assignment_and_its_clocks() -> None:
    s = new()
    assert s.years == [2030]
    t0 = utc("2030-01-31T02:00:00")
    assert refused(lifecycle.assign, s, lifecycle.Assign("staff", "u1", ["u1"]), t0).field == "assisting_unit_ids"
    assert refused(lifecycle.assign, s, lifecycle.Assign("staff", "u1", ["u2", "u2"]), t0).field == "assisting_unit_ids"
    assert refused(lifecycle.assign, s, lifecycle.Assign("staff", "u1", key=True), t0).field == "supervisor"
    assert s.status == Status.SUBMITTED, "a refused action changes nothing"
    happened = lifecycle.assign(s, lifecycle.Assign("staff", "u1", ["u2"]), t0)
    assert happened == [Happening("assigned", "staff", None, {"due_at": "2030-04-30T15:59:59+00:00", "key": False})]
    assert (s.status, s.due_at, s.assisting_due_at) == (Status.ASSIGNED, utc("2030-04-30T15:59:59"),
                                                         utc("2030-02-28T15:59:59"))
    assert refused(lifecycle.assign, s, lifecycle.Assign("staff", "u3"), t0).message == "只有新提交的建议可以交办。"
    assert lifecycle.deadlines(s) == [("reply:2030-04-30T15:59:59+00:00", utc("2030-04-30T15:59:59")),
                                      ("assisting:2030-02-28T15:59:59+00:00", utc("2030-02-28T15:59:59")),
                                      ("carry:2030", utc("2030-12-31T15:59:59"))]
    assert lifecycle.next_wake(s) == utc("2030-02-28T15:59:59")
    # The assisting view is late at China's midnight; it is announced once.
    assert lifecycle.on_clock(s, utc("2030-02-28T15:59:58")) == []
    late = lifecycle.on_clock(s, utc("2030-02-28T16:00:00"))
    assert late == [Happening("overdue", "system", None,
                              {"deadline": "assisting", "due_at": "2030-02-28T15:59:59+00:00"})]
    assert lifecycle.on_clock(s, utc("2030-03-01T00:00:00")) == []
    assert lifecycle.next_wake(s) == utc("2030-04-30T15:59:59")


def test_extension_then_a_late_reply() -> None:
    s = new()
    lifecycle.assign(s, lifecycle.Assign("staff", "u1"), utc("2030-01-31T02:00:00"))
    assert refused(lifecycle.extend, s, lifecycle.Extend("staff", "  "), utc("2030-02-01T02:00:00")).field == "reason"
    happened = lifecycle.extend(s, lifecycle.Extend("staff", "需跨部门协调", 3), utc("2030-02-01T02:00:00"))
    assert happened == [Happening("extended", "staff", "需跨部门协调", {"due_at": "2030-07-30T15:59:59+00:00"})]
    assert refused(lifecycle.extend, s, lifecycle.Extend("staff", "再延", 1), utc("2030-02-02T02:00:00")).message \
        == "每件建议只能延期一次。"
    assert lifecycle.on_clock(s, utc("2030-07-30T16:00:00")) == [
        Happening("overdue", "system", None, {"deadline": "reply", "due_at": "2030-07-30T15:59:59+00:00"})]
    reply = lifecycle.ReplyInput("unit-user", "u1", "已解决。", "A")
    assert refused(lifecycle.reply, s, lifecycle.ReplyInput("x", "u2", "已解决。", "A"),
                   utc("2030-08-01T02:00:00")).field == "unit_id"
    happened = lifecycle.reply(s, reply, utc("2030-08-01T02:00:00"))
    assert happened == [Happening("replied", "unit-user", None, {
        "outcome": "A", "planned_year": None, "due_at": "2030-07-30T15:59:59+00:00", "on_time": False})]
    assert (s.status, s.due_at, s.outcome) == (Status.REPLIED, None, "A")


def test_a_b_item_is_looked_back_on_each_year_until_solved() -> None:
    s = new()
    lifecycle.assign(s, lifecycle.Assign("staff", "u1"), utc("2030-01-31T02:00:00"))
    on_time = lifecycle.reply(s, lifecycle.ReplyInput("unit-user", "u1", "列入计划。", "B", 2031),
                              utc("2030-04-30T15:00:00"))
    assert on_time[0].data["on_time"] is True
    happened = lifecycle.evaluate(s, lifecycle.Evaluate("d1", "satisfied"), utc("2030-05-10T02:00:00"))
    assert happened == [Happening("evaluated", "d1", None, {"result": "satisfied", "referred": False})]
    assert (s.status, s.review_year, s.next_review_at) == (Status.FOLLOWING_UP, 2031, utc("2031-11-30T15:59:59"))
    assert [k for k, _ in lifecycle.deadlines(s)] == ["review:2031-11-30T15:59:59+00:00", "carry:2030"]
    assert refused(lifecycle.progress, s, lifecycle.Progress("x", "u2", "进展"), utc("2031-11-01T02:00:00")).field \
        == "unit_id"
    happened = lifecycle.progress(s, lifecycle.Progress("unit-user", "u1", "施工中"), utc("2031-11-01T02:00:00"))
    assert happened == [Happening("reviewed", "unit-user", "施工中", {"review_year": 2031, "outcome": "B"})]
    assert (s.review_year, s.next_review_at) == (2032, utc("2032-11-30T15:59:59"))
    happened = lifecycle.progress(s, lifecycle.Progress("unit-user", "u1", "已完工", "A"), utc("2032-10-01T02:00:00"))
    assert [h.kind for h in happened] == ["reviewed", "closed"]
    assert (s.status, s.outcome, s.closed_at, s.next_review_at) == (Status.CLOSED, "A", utc("2032-10-01T02:00:00"),
                                                                    None)
    assert lifecycle.deadlines(s) == []
    assert refused(lifecycle.progress, s, lifecycle.Progress("unit-user", "u1", "再报"), utc("2032-11-01T02:00:00")) \
        .message == "只有跟踪办理中的建议可以报告进展。"


def test_dissatisfaction_reassigns_then_refers_and_the_directors_meeting_decides() -> None:
    s = new()
    lifecycle.assign(s, lifecycle.Assign("staff", "u1"), utc("2030-01-31T02:00:00"))
    lifecycle.reply(s, lifecycle.ReplyInput("unit-user", "u1", "已解决。", "A"), utc("2030-02-10T02:00:00"))
    assert refused(lifecycle.evaluate, s, lifecycle.Evaluate("d1", "dissatisfied"), utc("2030-02-20T02:00:00")) \
        .field == "comment"
    assert refused(lifecycle.evaluate, s, lifecycle.Evaluate("d1", "meh"), utc("2030-02-20T02:00:00")).field \
        == "result"
    happened = lifecycle.evaluate(s, lifecycle.Evaluate("d1", "dissatisfied", "没解决"), utc("2030-01-31T17:00:00"))
    assert [h.kind for h in happened] == ["evaluated", "reassigned"]
    # 17:00 UTC on 31 Jan is 1 Feb in China: a month later is 1 March.
    assert (s.status, s.due_at, s.reply) == (Status.REASSIGNED, utc("2030-03-01T15:59:59"), None)
    lifecycle.reply(s, lifecycle.ReplyInput("unit-user", "u1", "已开工。", "A"), utc("2030-02-25T02:00:00"))
    happened = lifecycle.evaluate(s, lifecycle.Evaluate("d1", "dissatisfied", "仍不满意"), utc("2030-03-05T02:00:00"))
    assert happened == [Happening("evaluated", "d1", "仍不满意", {"result": "dissatisfied", "referred": True})]
    assert s.status == Status.REFERRED and s.dissatisfied == 2
    assert refused(lifecycle.decide, s, lifecycle.Decide("staff", "later", "待定"), utc("2030-03-10T02:00:00")).field \
        == "decision"

    reassigned = new()
    reassigned.status = Status.REFERRED
    happened = lifecycle.decide(reassigned, lifecycle.Decide("staff", "reassign", "再次交办"),
                                utc("2030-03-31T02:00:00"))
    assert [h.kind for h in happened] == ["director_decision", "reassigned"]
    assert reassigned.due_at == utc("2030-04-30T15:59:59")
    followed = new()
    followed.status = Status.REFERRED
    lifecycle.decide(followed, lifecycle.Decide("staff", "follow_up", "跟踪督办"), utc("2030-03-31T02:00:00"))
    assert (followed.status, followed.next_review_at) == (Status.FOLLOWING_UP, utc("2031-11-30T15:59:59"))
    lifecycle.decide(s, lifecycle.Decide("staff", "close", "办结"), utc("2030-03-31T02:00:00"))
    assert s.status == Status.CLOSED
    assert refused(lifecycle.decide, s, lifecycle.Decide("staff", "close", "办结"), utc("2030-04-01T02:00:00")) \
        .message == "只有提交主任会议的建议需要会议决定。"


def test_meetings_of_the_lead_unit() -> None:
    s = new()
    lifecycle.assign(s, lifecycle.Assign("staff", "u1", key=True, supervisor="王副主任"), utc("2030-01-31T02:00:00"))
    now = utc("2030-02-10T02:00:00")
    assert refused(lifecycle.meeting, s, lifecycle.Meeting("x", "u2", "before", now, "见面"), now).field == "unit_id"
    assert refused(lifecycle.meeting, s, lifecycle.Meeting("x", "u1", "later", now, "见面"), now).field == "stage"
    assert refused(lifecycle.meeting, s, lifecycle.Meeting("x", "u1", "before", now + S, "见面"), now).field == "at"
    for stage in ("before", "before", "during"):
        lifecycle.meeting(s, lifecycle.Meeting("x", "u1", stage, now, "见面"), now)
    assert s.meetings == ["before", "during"]
    assert refused(lifecycle.reply, s, lifecycle.ReplyInput("x", "u1", "答复", "A"), now).field == "meetings"


def test_carried_over_each_year_end_and_into_a_new_term() -> None:
    s = new(year=2026)
    lifecycle.assign(s, lifecycle.Assign("staff", "u1"), utc("2026-11-02T02:00:00"))
    # 2026 is the last year of the 14th term (2022–2026): the carry-over opens the 15th.
    happened = [h for h in lifecycle.on_clock(s, utc("2026-12-31T16:00:00")) if h.kind == "carried_over"]
    assert happened == [Happening("carried_over", "system", "未办结，转入2027年度继续办理（第15届）",
                                  {"year": 2027, "term": 15, "new_term": True})]
    assert s.years == [2026, 2027] and s.list_year == 2027
    happened = [h for h in lifecycle.on_clock(s, utc("2027-12-31T16:00:00")) if h.kind == "carried_over"]
    assert happened == [Happening("carried_over", "system", "未办结，转入2028年度继续办理",
                                  {"year": 2028, "term": 15, "new_term": False})]


# ---- paging cursors ----------------------------------------------------------------------------------------


def test_a_cursor_names_a_time_and_an_id() -> None:
    at = datetime.fromisoformat("2030-06-15T12:00:00.123456+08:00")
    cursor = paging.encode(at, "0190-abc")
    assert paging.decode(cursor) == (at, "0190-abc")
    assert "=" not in cursor and len(cursor) <= paging.MAX_CURSOR_CHARS


@pytest.mark.parametrize("cursor", [
    "", "not-a-cursor", "eyJ4IjoxfQ", "W10",  # {"x":1}, []
    "WyIyMDMwLTA2LTE1VDEyOjAwOjAwIiwiYSJd",  # ["2030-06-15T12:00:00","a"]: a time without its zone
    "WyIyMDMwLTA2LTE1VDEyOjAwOjAwKzA4OjAwIiwiIl0",  # an empty id
    "A" * 201,
])
def test_cursors_not_handed_out_are_refused(cursor: str) -> None:
    with pytest.raises(paging.BadCursor):
        paging.decode(cursor)
