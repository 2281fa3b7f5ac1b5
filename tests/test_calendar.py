"""Working-day arithmetic against the real chinese_calendar 1.11.0 data (no mocks).

Facts from the package's tables that these tests rely on:
- 2025 National Day: holidays Wed 2025-10-01 .. Wed 2025-10-08; make-up working days Sun 2025-09-28
  and Sat 2025-10-11.
- 2026 Spring Festival: holidays Sun 2026-02-15 .. Mon 2026-02-23; make-up working days Sat
  2026-02-14 and Sat 2026-02-28.
- No holiday in June 2025 after Mon 2025-06-02 (Dragon Boat Festival).
- Coverage is 2004 .. 2026; 2027 and 2030 are unknown to the package.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shared.calendar import (
    SHANGHAI,
    Deadline,
    WorkCalendar,
    WorkingDayResult,
    add_calendar_months,
    known_years,
)

CAL = WorkCalendar()


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def end_of_day(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(hour=23, minute=59, second=59, tzinfo=SHANGHAI)


def shanghai(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=SHANGHAI)


# --- coverage -------------------------------------------------------------------------------------


def test_known_years_come_from_package_data() -> None:
    assert known_years() == range(2004, 2027)
    assert CAL.is_known(d("2026-12-31"))
    assert not CAL.is_known(d("2027-01-01"))
    assert WorkCalendar(loaded_years=frozenset({2030})).is_known(d("2030-05-01"))


# --- plain weekdays -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "2025-06-11"),
        (2, "2025-06-12"),  # Tue -> Thu
        (7, "2025-06-19"),  # skips the weekend of 14-15 June
    ],
)
def test_working_days_from_a_normal_weekday(n: int, expected: str) -> None:
    assert CAL.add_working_days(d("2025-06-10"), n) == WorkingDayResult(d(expected), provisional=False)


def test_zero_working_days_returns_start_itself() -> None:
    # Documented choice: n == 0 is the identity, even on a non-working day.
    assert CAL.add_working_days(d("2025-06-07"), 0) == WorkingDayResult(d("2025-06-07"), provisional=False)


def test_negative_n_rejected() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        CAL.add_working_days(d("2025-06-10"), -1)
    with pytest.raises(ValueError):
        CAL.deadline(shanghai("2025-06-10T09:00:00"), -3)


def test_datetime_where_a_date_is_expected_rejected() -> None:
    with pytest.raises(TypeError):
        CAL.add_working_days(shanghai("2025-06-10T09:00:00"), 2)


# --- day of receipt -------------------------------------------------------------------------------


def test_received_friday_evening() -> None:
    # Fri 2025-06-06: Mon 9 is the 1st working day, Tue 10 the 2nd.
    assert CAL.deadline(shanghai("2025-06-06T20:15:00"), 2) == Deadline(
        end_of_day("2025-06-10"), provisional=False
    )


def test_received_on_saturday_the_day_itself_does_not_count() -> None:
    assert CAL.deadline(shanghai("2025-06-07T10:00:00"), 2).at == end_of_day("2025-06-10")
    assert CAL.deadline(shanghai("2025-06-07T10:00:00"), 1).at == end_of_day("2025-06-09")


def test_received_on_a_holiday_the_day_itself_does_not_count() -> None:
    # Received during the National Day week: first working day is Thu 2025-10-09.
    assert CAL.deadline(shanghai("2025-10-03T12:00:00"), 1).at == end_of_day("2025-10-09")


def test_local_shanghai_date_decides_not_utc_date() -> None:
    # 16:30Z on Thu 5 June is 00:30 on Fri 6 June in Shanghai, so Friday is the day of receipt.
    received = datetime(2025, 6, 5, 16, 30, tzinfo=UTC)
    assert CAL.deadline(received, 2) == Deadline(end_of_day("2025-06-10"), provisional=False)


def test_last_second_of_the_local_day() -> None:
    # 15:59:59Z is 23:59:59 Thu 5 June in Shanghai: still Thursday, so Fri 6 and Mon 9 count.
    assert CAL.deadline(datetime(2025, 6, 5, 15, 59, 59, tzinfo=UTC), 2).at == end_of_day("2025-06-09")
    # One second later it is Friday in Shanghai.
    assert CAL.deadline(datetime(2025, 6, 5, 16, 0, 0, tzinfo=UTC), 2).at == end_of_day("2025-06-10")


def test_any_aware_timezone_is_converted_to_shanghai() -> None:
    # 10:00 at UTC-8 on Thu 5 June is 02:00 on Fri 6 June in Shanghai.
    received = datetime(2025, 6, 5, 10, 0, tzinfo=timezone(timedelta(hours=-8)))
    assert CAL.deadline(received, 2).at == end_of_day("2025-06-10")


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.deadline(datetime(2025, 6, 10, 9, 0), 2)


def test_deadline_is_end_of_day_in_shanghai() -> None:
    at = CAL.deadline(datetime(2025, 6, 10, 1, 0, tzinfo=UTC), 2).at
    assert at.tzinfo is SHANGHAI
    assert (at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond) == (
        2025,
        6,
        12,
        23,
        59,
        59,
        0,
    )
    assert at.utcoffset() == timedelta(hours=8)
    assert at == datetime(2025, 6, 12, 15, 59, 59, tzinfo=UTC)


# --- statutory holidays and make-up days ----------------------------------------------------------


def test_national_day_2025_week() -> None:
    received = shanghai("2025-09-30T17:00:00")
    # Oct 1-8 are holidays; Thu 9 and Fri 10 are the first two working days.
    assert CAL.deadline(received, 2).at == end_of_day("2025-10-10")
    # Sat 2025-10-11 is a make-up working day, so it is the 3rd.
    assert CAL.deadline(received, 3).at == end_of_day("2025-10-11")
    # Sun 12 is a rest day; Mon 13 is the 4th, Tue 14 the 5th.
    assert CAL.deadline(received, 5).at == end_of_day("2025-10-14")


def test_make_up_sunday_before_national_day_2025() -> None:
    # Sun 2025-09-28 is a working day: the first one after Fri 26 September.
    assert CAL.is_working_day(d("2025-09-28"))
    assert CAL.add_working_days(d("2025-09-26"), 1).day == d("2025-09-28")
    assert CAL.add_working_days(d("2025-09-26"), 4).day == d("2025-10-09")


def test_spring_festival_2026() -> None:
    assert CAL.is_working_day(d("2026-02-14"))  # make-up Saturday
    assert not CAL.is_working_day(d("2026-02-23"))  # a Monday inside the holiday
    assert CAL.is_working_day(d("2026-02-28"))  # make-up Saturday
    received = shanghai("2026-02-13T09:00:00")  # Friday before the holiday
    assert CAL.deadline(received, 1).at == end_of_day("2026-02-14")
    assert CAL.deadline(received, 2).at == end_of_day("2026-02-24")
    # Received mid-holiday: Tue 24 .. Fri 27 and then the make-up Sat 28.
    assert CAL.add_working_days(d("2026-02-16"), 1) == WorkingDayResult(d("2026-02-24"), provisional=False)
    assert CAL.add_working_days(d("2026-02-23"), 5).day == d("2026-02-28")


# --- years chinese_calendar does not know ---------------------------------------------------------


def test_unknown_year_counts_weekdays_and_is_provisional() -> None:
    # Mon 2030-09-30; without data Oct 1-3 (Tue-Thu) are assumed to be working days.
    assert CAL.add_working_days(d("2030-09-30"), 3) == WorkingDayResult(d("2030-10-03"), provisional=True)
    deadline = CAL.deadline(shanghai("2030-09-30T10:00:00"), 5)
    assert deadline == Deadline(end_of_day("2030-10-07"), provisional=True)


def test_loaded_year_honours_overrides_and_is_final() -> None:
    overrides = {d("2030-10-01") + timedelta(days=i): False for i in range(7)}  # Tue 1 .. Mon 7
    overrides[d("2030-10-12")] = True  # make-up Saturday
    cal = WorkCalendar(overrides=overrides, loaded_years=frozenset({2030}))
    assert cal.add_working_days(d("2030-09-30"), 3) == WorkingDayResult(d("2030-10-10"), provisional=False)
    # Tue 8, Wed 9, Thu 10, Fri 11, then the make-up Sat 12.
    assert cal.deadline(shanghai("2030-09-30T10:00:00"), 5) == Deadline(
        end_of_day("2030-10-12"), provisional=False
    )
    # Days the table does not list are ordinary weekdays and weekends.
    assert cal.is_working_day(d("2030-06-10"))
    assert not cal.is_working_day(d("2030-06-15"))
    assert cal.add_working_days(d("2030-06-14"), 1) == WorkingDayResult(d("2030-06-17"), provisional=False)


def test_overrides_alone_do_not_make_a_year_final() -> None:
    # A partial table (year not marked loaded) is used, but the result stays provisional.
    cal = WorkCalendar(overrides={d("2030-10-01"): False})
    assert cal.add_working_days(d("2030-09-30"), 1) == WorkingDayResult(d("2030-10-02"), provisional=True)


def test_deadline_from_december_2026_into_2027_is_provisional() -> None:
    received = shanghai("2026-12-30T11:00:00")  # Wed
    # Thu 31 is known; Fri 2027-01-01 is guessed to be a working day, then Mon 4.
    assert CAL.deadline(received, 3) == Deadline(end_of_day("2027-01-04"), provisional=True)
    # Only the inspected days matter: a deadline that stays in 2026 is final.
    assert CAL.deadline(received, 1) == Deadline(end_of_day("2026-12-31"), provisional=False)


def test_start_in_unknown_year_is_not_itself_inspected() -> None:
    # The day of receipt never counts, so only the days after it decide provisionality.
    assert CAL.add_working_days(d("2026-12-31"), 1).provisional is True
    cal = WorkCalendar(loaded_years=frozenset({2027}))
    assert cal.add_working_days(d("2026-12-31"), 1) == WorkingDayResult(d("2027-01-01"), provisional=False)


# --- overrides for a known year -------------------------------------------------------------------


def test_overrides_take_precedence_over_chinese_calendar() -> None:
    cal = WorkCalendar(
        overrides={
            d("2025-06-10"): False,  # local holiday on a Tuesday
            d("2025-06-14"): True,  # Saturday worked locally
            d("2025-10-08"): True,  # correction: a statutory holiday declared a working day
        }
    )
    assert CAL.is_working_day(d("2025-06-10")) and not cal.is_working_day(d("2025-06-10"))
    assert not CAL.is_working_day(d("2025-06-14")) and cal.is_working_day(d("2025-06-14"))
    assert not CAL.is_working_day(d("2025-10-08")) and cal.is_working_day(d("2025-10-08"))
    # Mon 9 counts, Tue 10 does not, Wed 11 is the 2nd.
    assert cal.add_working_days(d("2025-06-06"), 2) == WorkingDayResult(d("2025-06-11"), provisional=False)
    assert cal.add_working_days(d("2025-06-12"), 2).day == d("2025-06-14")
    assert cal.add_working_days(d("2025-09-30"), 1).day == d("2025-10-08")


def test_calendar_is_immune_to_later_changes_of_the_callers_dict() -> None:
    overrides = {d("2025-06-10"): False}
    cal = WorkCalendar(overrides=overrides)
    overrides[d("2025-06-10")] = True
    assert not cal.is_working_day(d("2025-06-10"))


def test_datetime_override_keys_rejected() -> None:
    with pytest.raises(TypeError):
        WorkCalendar(overrides={datetime(2025, 6, 10): False})


# --- working_days_between -------------------------------------------------------------------------


def test_working_days_between() -> None:
    # (Sep 30, Oct 13] in 2025: Oct 9, 10, 11 (make-up Sat) and 13.
    assert CAL.working_days_between(d("2025-09-30"), d("2025-10-13")) == 4
    # (Fri 6, Mon 9] June 2025: only Monday.
    assert CAL.working_days_between(d("2025-06-06"), d("2025-06-09")) == 1
    assert CAL.working_days_between(d("2025-06-10"), d("2025-06-10")) == 0
    assert CAL.working_days_between(d("2025-06-12"), d("2025-06-10")) == 0


@pytest.mark.parametrize("start", ["2025-09-26", "2025-09-30", "2026-02-13", "2026-12-30"])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 10])
def test_working_days_between_inverts_add_working_days(start: str, n: int) -> None:
    result = CAL.add_working_days(d(start), n)
    assert CAL.working_days_between(d(start), result.day) == n


# --- add_calendar_months --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2025-11-30T10:00:00", 3, "2026-02-28T10:00:00"),  # 2026 is not a leap year
        ("2023-11-30T10:00:00", 3, "2024-02-29T10:00:00"),  # 2024 is
        ("2025-01-31T08:30:00", 1, "2025-02-28T08:30:00"),
        ("2024-01-31T08:30:00", 1, "2024-02-29T08:30:00"),
        ("2025-03-31T12:00:00", 1, "2025-04-30T12:00:00"),
        ("2025-10-15T09:00:00", 3, "2026-01-15T09:00:00"),  # across a year end
        ("2025-03-15T09:00:00", 6, "2025-09-15T09:00:00"),
        ("2025-08-31T09:00:00", 6, "2026-02-28T09:00:00"),
        ("2025-12-31T23:59:59", 12, "2026-12-31T23:59:59"),
        ("2025-05-31T09:00:00", -3, "2025-02-28T09:00:00"),
    ],
)
def test_add_calendar_months(start: str, months: int, expected: str) -> None:
    result = add_calendar_months(shanghai(start), months)
    assert result == shanghai(expected)
    assert result.tzinfo is SHANGHAI


def test_add_calendar_months_keeps_other_timezones() -> None:
    result = add_calendar_months(datetime(2025, 11, 30, 16, 0, tzinfo=UTC), 3)
    assert result == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert result.tzinfo is UTC
