"""Rules of citizens' reports as plain functions: receipt codes, deadlines, timers, validation, ratings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake import domain
from shared.calendar import SHANGHAI, WorkCalendar

CAL = WorkCalendar()
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def test_receipt_codes_are_unambiguous_unguessable_and_catch_typos() -> None:
    codes = {domain.new_receipt_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in list(codes)[:200]:
        assert len(code) == 12 and not set(code) & set("01ILOUV")
        assert domain.normalize_receipt_code(code) == code
        shown = domain.display_receipt_code(code)
        assert shown.count("-") == 2 and domain.normalize_receipt_code(shown.lower()) == code
        # Any single mistyped character is caught by the check character.
        for i in range(12):
            wrong = code[:i] + next(c for c in domain.RECEIPT_ALPHABET if c != code[i]) + code[i + 1:]
            assert domain.normalize_receipt_code(wrong) is None
    assert domain.normalize_receipt_code("") is None
    assert domain.normalize_receipt_code("0" * 12) is None


@pytest.mark.parametrize(("received", "ack", "reply"), [
    # National Day 2025 (1–8 October off, Saturday 11 October worked).
    ("2025-09-30T16:30", "2025-10-10", "2025-10-16"),
    ("2025-09-29T08:00", "2025-10-09", "2025-10-15"),  # Tuesday 30 Sep counts, then the holiday
    # Sunday 28 September 2025 was a make-up working day; received on it, it still does not count.
    ("2025-09-28T10:00", "2025-09-30", "2025-10-14"),
    # An ordinary week: received Friday, the weekend does not count.
    ("2026-11-20T18:00", "2026-11-24", "2026-12-01"),
    # Received at 23:30 Shanghai time, which is still the same day there though UTC says otherwise.
    ("2026-11-19T23:30", "2026-11-23", "2026-11-30"),
])
def test_deadlines_follow_the_statutory_calendar(received: str, ack: str, reply: str) -> None:
    start = datetime.fromisoformat(received).replace(tzinfo=SHANGHAI)
    due = domain.deadlines(CAL, domain.DEFAULT_RULES, start.astimezone(UTC))
    assert due.ack_due.isoformat() == f"{ack}T23:59:59+08:00"
    assert due.reply_due.isoformat() == f"{reply}T23:59:59+08:00"
    assert due.provisional is False


def test_a_year_not_yet_known_gives_provisional_deadlines() -> None:
    due = domain.deadlines(CAL, domain.DEFAULT_RULES, datetime(2026, 12, 28, 9, tzinfo=SHANGHAI))
    assert due.provisional is True
    loaded = WorkCalendar(overrides={datetime(2027, 1, 1).date(): False}, loaded_years=frozenset({2027}))
    due = domain.deadlines(loaded, domain.DEFAULT_RULES, datetime(2026, 12, 28, 9, tzinfo=SHANGHAI))
    assert due.provisional is False and due.reply_due.date().isoformat() == "2027-01-07"


def test_the_longest_region_prefix_decides_the_rules() -> None:
    rules = {"34": domain.ClockRules(3, 10), "3406": domain.ClockRules(1, 5)}
    assert domain.rules_for("340621", rules).ack_days == 1
    assert domain.rules_for("341100", rules).ack_days == 3
    assert domain.rules_for("320923", rules) == domain.DEFAULT_RULES


def test_timers_remind_on_the_due_day_and_skip_reminders_already_past() -> None:
    due = domain.deadlines(CAL, domain.DEFAULT_RULES, NOW)
    timers = domain.timers_for_new_round(due, domain.DEFAULT_RULES, acknowledged=False, now=NOW)
    assert timers["ack_remind"].isoformat() == "2026-11-24T09:00:00+08:00"
    assert timers["ack_due"] == due.ack_due and timers["reply_due"] == due.reply_due
    assert timers["reply_remind"].isoformat() == "2026-12-01T09:00:00+08:00"
    acknowledged = domain.timers_for_new_round(due, domain.DEFAULT_RULES, acknowledged=True, now=NOW)
    assert set(acknowledged) == {"reply_remind", "reply_due"}
    # A paper report registered late: its deadlines are past, they fire at once; reminders are pointless.
    late = domain.timers_for_new_round(due, domain.DEFAULT_RULES, acknowledged=False,
                                       now=datetime(2026, 12, 5, tzinfo=SHANGHAI))
    assert set(late) == {"ack_due", "reply_due"}


def test_status_only_moves_forward() -> None:
    assert domain.advanced("submitted", "dispatched") == "dispatched"
    assert domain.advanced("answered", "dispatched") == "answered"
    assert domain.advanced("dispatched", "acknowledged") == "dispatched"


def test_ratings_close_or_reopen_and_are_refused_out_of_turn() -> None:
    assert domain.rate("answered", False, 5, None) == domain.RatingOutcome(False, "closed")
    assert domain.rate("answered", False, 2, "没解决") == domain.RatingOutcome(True, "acknowledged")
    assert domain.rate("answered", False, 1, "   ") == domain.RatingOutcome(False, "closed")
    assert domain.rate("answered", False, 3, "一般") == domain.RatingOutcome(False, "closed")
    for status, rated in (("submitted", False), ("dispatched", False), ("closed", True), ("answered", True)):
        with pytest.raises(domain.Refused):
            domain.rate(status, rated, 5, None)


def _check(**overrides: object) -> list[str]:
    args: dict[str, object] = {"channel": "h5", "code": "X", "region_code": None, "content": "内容",
                               "has_voice": False, "anonymous": True, "reporter": None, "received_at": None,
                               "roles": frozenset(), "now": NOW}
    args.update(overrides)
    errors, _ = domain.check_submission(**args)  # type: ignore[arg-type]
    return [e.field for e in errors]


def test_submission_checks_name_each_field_at_fault() -> None:
    assert _check() == []
    assert _check(code=None) == ["code"]
    assert _check(content="  ") == ["content"]
    assert _check(content="", has_voice=True) == []
    assert _check(anonymous=False) == ["reporter"]
    assert _check(reporter=domain.Reporter("张三", "138", None)) == ["reporter"]
    assert _check(anonymous=False, reporter=domain.Reporter("", "", None)) == ["reporter.name", "reporter.phone"]
    assert _check(anonymous=False, reporter=domain.Reporter("张三", "13800138000", "11010519491231002X")) == []
    assert _check(anonymous=False, reporter=domain.Reporter("张三", "13800138000", "110105194912310021")) == [
        "reporter.id_number"]
    assert _check(received_at=NOW) == ["received_at"]
    staff = frozenset({"station_staff"})
    assert _check(received_at=NOW, roles=staff, channel="paper") == []
    assert _check(received_at=NOW, roles=staff, channel="miniprogram") == ["received_at"]
    assert _check(received_at=datetime(2027, 1, 1, tzinfo=UTC), roles=staff, channel="paper") == ["received_at"]
    assert _check(channel="paper") == ["channel"]


def test_masks_keep_enough_to_address_the_person_and_no_more() -> None:
    assert domain.mask_name("张三") == "张*"
    assert domain.mask_name("欧阳娜娜") == "欧***"
    assert domain.mask_phone("13800138000") == "138****8000"
    assert domain.mask_phone("+86 138-0013-8000") == "138****8000"
    assert domain.mask_phone("0551-6543210") == "055****3210"
