"""Identity numbers (GB 11643-1999): validation, the 15 to 18 upgrade, masking, age and gender.

Test numbers are built here from real region codes (320923 Funing county, Jiangsu; 110105 Chaoyang,
Beijing; 440305 Nanshan, Shenzhen; 650102 Tianshan, Urumqi) and made-up dates and sequence numbers.
A few check characters are worked out by hand below, and every generated number is also verified
against the standard's own definition (weights 2^(18-i) mod 11, full weighted sum congruent to 1),
which shares no code with the module.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from shared.idnumber import (
    PROVINCE_CODES,
    InvalidIdNumber,
    age_on,
    birth_date,
    check_character,
    gender,
    is_valid,
    mask,
    normalize,
    normalize_born,
)

TODAY = date(2026, 5, 1)


def build(region: str, born: str, sequence: str) -> str:
    body = region + born + sequence
    return body + check_character(body)


def satisfies_iso7064(number: str) -> bool:
    values = [10 if ch == "X" else int(ch) for ch in number]
    return sum(value * pow(2, 17 - i, 11) for i, value in enumerate(values)) % 11 == 1


# --- check character -------------------------------------------------------------------------------


def test_check_character_by_hand_digit() -> None:
    # 3 2 0 9 2 3 1 9 9 0 0 3 0 7 1 2 3 times 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    # = 21+18+0+45+16+12+2+9+54+0+0+27+0+35+8+8+6 = 261; 261 mod 11 = 8 -> "10X98765432"[8] = "4"
    assert check_character("32092319900307123") == "4"
    assert normalize("320923199003071234", today=TODAY) == "320923199003071234"


def test_check_character_by_hand_x() -> None:
    # Same body with sequence 120: 261 - 6 = 255; 255 mod 11 = 2 -> "X"
    assert check_character("32092319900307120") == "X"
    assert normalize("32092319900307120X", today=TODAY) == "32092319900307120X"


def test_check_character_by_hand_zero() -> None:
    # 1 1 0 1 0 5 2 0 0 0 0 1 0 1 0 0 1 times the weights
    # = 7+9+0+5+0+20+4+0+0+0+0+9+0+5+0+0+2 = 61; 61 mod 11 = 6 -> "10X98765432"[6] = "6"
    assert check_character("11010520000101001") == "6"


def test_check_character_rejects_bad_input() -> None:
    with pytest.raises(InvalidIdNumber) as short:
        check_character("3209231990030712")
    assert short.value.code == "length"
    with pytest.raises(InvalidIdNumber) as letters:
        check_character("3209231990030712A")
    assert letters.value.code == "characters"


def test_every_check_character_round_trips() -> None:
    regions = ("320923", "110105", "440305", "650102", "810000", "830000")
    seen: set[str] = set()
    count = 0
    for region_index, region in enumerate(regions):
        for day_offset in range(0, 40_000, 997):
            born = (date(1900, 1, 1) + timedelta(days=day_offset + region_index)).strftime("%Y%m%d")
            for sequence in range(0, 1000, 37):
                body = f"{region}{born}{sequence:03d}"
                check = check_character(body)
                number = body + check
                seen.add(check)
                count += 1
                assert satisfies_iso7064(number), number
                assert normalize(number, today=TODAY) == number
                assert normalize(f"  {number.lower()}\n", today=TODAY) == number
                for wrong in "0123456789X":
                    if wrong != check:
                        assert not is_valid(body + wrong, today=TODAY)
    assert seen == set("0123456789X")
    assert count > 5_000


# --- normalize: accepted forms ---------------------------------------------------------------------


def test_lower_case_x_and_whitespace_are_normalized() -> None:
    assert normalize(" 32092319900307120x\t", today=TODAY) == "32092319900307120X"
    assert normalize("\u300032092319900307120X\u3000", today=TODAY) == "32092319900307120X"


@pytest.mark.parametrize("region", ["110105", "440305", "650102", "710000", "810000", "820000", "830000"])
def test_known_regions_accepted(region: str) -> None:
    number = build(region, "19851120", "452")
    assert normalize(number, today=TODAY) == number


def test_province_table_is_exactly_the_documented_list() -> None:
    expected = {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
    assert expected == PROVINCE_CODES
    for prefix in range(100):
        province = f"{prefix:02d}"
        number = build(province + "0101", "19851120", "452")
        assert is_valid(number, today=TODAY) is (province in expected), province


def test_leap_days() -> None:
    assert birth_date(normalize(build("320923", "20000229", "001"), today=TODAY)) == date(2000, 2, 29)
    assert birth_date(normalize(build("320923", "20240229", "001"), today=TODAY)) == date(2024, 2, 29)
    for bad in ("19000229", "19990229", "21000229"):
        with pytest.raises(InvalidIdNumber) as info:
            normalize(build("320923", bad, "001"), today=date(2200, 1, 1))
        assert info.value.code == "birth_date", bad


@pytest.mark.parametrize("raw", [build("320923", "20000229", "001"), " 11010119900307109x", "320923851120452"])
def test_normalize_born_is_normalize_and_the_birth_date(raw: str) -> None:
    number, born = normalize_born(raw, today=TODAY)
    assert number == normalize(raw, today=TODAY)
    assert born == birth_date(number)


def test_normalize_born_refuses_what_normalize_refuses() -> None:
    for bad in (build("320923", "20260502", "001"), "32092319851120452", build("990923", "19851120", "452")):
        with pytest.raises(InvalidIdNumber) as expected:
            normalize(bad, today=TODAY)
        with pytest.raises(InvalidIdNumber) as got:
            normalize_born(bad, today=TODAY)
        assert got.value.code == expected.value.code, bad


def test_birth_date_today_and_earliest_are_accepted() -> None:
    assert is_valid(build("320923", "20260501", "001"), today=TODAY)
    assert is_valid(build("320923", "19000101", "001"), today=TODAY)


def test_default_today_is_the_real_date() -> None:
    tomorrow = date.today() + timedelta(days=1)
    assert is_valid(build("320923", date.today().strftime("%Y%m%d"), "001"))
    assert not is_valid(build("320923", tomorrow.strftime("%Y%m%d"), "001"))


# --- the 15 to 18 upgrade --------------------------------------------------------------------------


def test_first_generation_upgrade() -> None:
    # 320923 900307 123 -> 320923 19 900307 123 + check "4" (worked out above)
    assert normalize("320923900307123", today=TODAY) == "320923199003071234"
    assert normalize(" 320923900307120 ", today=TODAY) == "32092319900307120X"
    # 110105 000101 001 -> 11010519000101001, born 1900-01-01:
    # 7+9+0+5+0+20+2+9+0+0+0+9+0+5+0+0+2 = 68; 68 mod 11 = 2 -> "X"
    assert normalize("110105000101001", today=TODAY) == "11010519000101001X"


def test_first_generation_upgrade_keeps_gender() -> None:
    assert gender(normalize("320923900307123", today=TODAY)) == "male"
    assert gender(normalize("320923900307120", today=TODAY)) == "female"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("32092390030712X", "characters"),
        ("32092390030712x", "characters"),
        ("3209239003071a3", "characters"),
        ("000000900307123", "region"),
        ("320923990230123", "birth_date"),  # 1999-02-30
        ("320923000229123", "birth_date"),  # 1900-02-29: 1900 is not a leap year
        ("320923901301123", "birth_date"),
    ],
)
def test_first_generation_errors(raw: str, code: str) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        normalize(raw, today=TODAY)
    assert info.value.code == code


# --- normalize: each error code --------------------------------------------------------------------

VALID = "320923199003071234"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "length"),
        ("   ", "length"),
        (VALID[:17], "length"),
        (VALID + "1", "length"),
        ("3209231990030712", "length"),
        ("320923 199003071234", "length"),
        ("32092319900307123Y", "characters"),
        ("3209231990030712X4", "characters"),
        ("32092319900307123 ", "length"),  # the trailing space is stripped first
        ("３２０９２３199003071234", "characters"),  # full-width digits
        ("\u0663" + VALID[1:], "characters"),  # Arabic-Indic three: isdigit() but not ASCII
        ("32092319900307123\u00df", "characters"),  # "ß".upper() is two characters
        (build("000000", "19900307", "123"), "region"),
        (build("100000", "19900307", "123"), "region"),
        (build("720000", "19900307", "123"), "region"),
        (build("990000", "19900307", "123"), "region"),
        (build("320923", "19990230", "123"), "birth_date"),
        (build("320923", "19991301", "123"), "birth_date"),
        (build("320923", "19990001", "123"), "birth_date"),
        (build("320923", "19990100", "123"), "birth_date"),
        (build("320923", "19990431", "123"), "birth_date"),
        (build("320923", "18991231", "123"), "birth_date"),
        (build("320923", "20260502", "123"), "future_birth_date"),
        (build("320923", "30000101", "123"), "future_birth_date"),
        ("320923199003071235", "check_digit"),
        ("32092319900307123X", "check_digit"),
        ("320923199003071204", "check_digit"),
    ],
)
def test_error_codes(raw: str, code: str) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        normalize(raw, today=TODAY)
    assert info.value.code == code
    assert isinstance(info.value, ValueError)
    assert not is_valid(raw, today=TODAY)


def test_check_order_reports_region_before_date_and_check() -> None:
    # Bad region, impossible date and wrong check character all at once: region wins.
    with pytest.raises(InvalidIdNumber) as info:
        normalize("990000199902300000", today=TODAY)
    assert info.value.code == "region"


def test_messages_are_chinese_and_fixed() -> None:
    expected = {
        "length": "身份证号码应为18位",
        "characters": "身份证号码只能包含数字，末位可以是X",
        "region": "身份证号码的地区代码无效",
        "birth_date": "出生日期无效",
        "future_birth_date": "出生日期不能晚于今天",
        "check_digit": "校验位不正确",
    }
    for code, message in expected.items():
        error = InvalidIdNumber(code)  # type: ignore[arg-type]
        assert error.code == code
        assert error.message == message
        assert str(error) == message


# --- the number never leaks through the exception --------------------------------------------------

LEAK_CASES = [
    "3209231990030712",
    "32092319900307123Y",
    build("990000", "19900307", "123"),
    build("320923", "19990230", "123"),
    build("320923", "20300101", "123"),
    "320923199003071235",
    "320923990230123",
    "  32092319900307123Y  ",
]


@pytest.mark.parametrize("raw", LEAK_CASES)
def test_exception_text_does_not_contain_the_number(raw: str) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        normalize(raw, today=TODAY)
    error = info.value
    stripped = raw.strip()
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        # The messages' only digits are the "18" of the length message; no run of the input survives.
        assert not re.search(r"\d{3,}", text), text
        for start in range(len(stripped) - 3):
            assert stripped[start : start + 4] not in text
    assert error.__cause__ is None
    assert error.__context__ is None
    assert vars(error) == {"code": error.code, "message": error.message}


def test_exception_pickles_without_the_number() -> None:
    with pytest.raises(InvalidIdNumber) as info:
        normalize("320923199003071235", today=TODAY)
    payload = pickle.dumps(info.value)
    assert b"320923" not in payload
    copy = pickle.loads(payload)
    assert isinstance(copy, InvalidIdNumber)
    assert (copy.code, copy.message, copy.args) == ("check_digit", "校验位不正确", ("校验位不正确",))


def test_repr_shows_code_and_message() -> None:
    assert repr(InvalidIdNumber("birth_date")) == "InvalidIdNumber(code='birth_date', message='出生日期无效')"


# --- accessors -------------------------------------------------------------------------------------


def test_birth_date() -> None:
    assert birth_date("320923199003071234") == date(1990, 3, 7)
    assert birth_date("32092319900307120X") == date(1990, 3, 7)


def test_gender_from_seventeenth_digit() -> None:
    for digit in range(10):
        number = build("320923", "19900307", f"12{digit}")
        assert gender(number) == ("male" if digit % 2 else "female")


def test_mask() -> None:
    assert mask("32092319900307120X") == "3209**********120X"
    assert mask("320923199003071234") == "3209**********1234"
    masked = mask(VALID)
    assert len(masked) == 18
    assert masked.count("*") == 10
    assert "19900307" not in masked


@pytest.mark.parametrize(
    ("function", "raw", "code"),
    [
        (mask, "320923900307123", "length"),  # 15-digit numbers must go through normalize first
        (mask, "32092319900307120x", "characters"),  # only the canonical upper-case X
        (gender, "", "length"),
        (birth_date, "3209231990030712", "length"),
        (birth_date, "320923199902301234", "birth_date"),
    ],
)
def test_accessors_require_the_canonical_form(function: Callable[[str], object], raw: str, code: str) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        function(raw)
    assert info.value.code == code


# --- age -------------------------------------------------------------------------------------------

BORN_2008_03_05 = build("320923", "20080305", "121")
BORN_2008_02_29 = build("320923", "20080229", "121")


def test_age_turns_18_on_the_birthday() -> None:
    assert age_on(BORN_2008_03_05, date(2026, 3, 4)) == 17
    assert age_on(BORN_2008_03_05, date(2026, 3, 5)) == 18
    assert age_on(BORN_2008_03_05, date(2026, 3, 6)) == 18
    assert age_on(BORN_2008_03_05, date(2027, 3, 4)) == 18


def test_age_day_of_birth_and_before() -> None:
    assert age_on(BORN_2008_03_05, date(2008, 3, 5)) == 0
    assert age_on(BORN_2008_03_05, date(2009, 3, 4)) == 0
    with pytest.raises(ValueError) as info:
        age_on(BORN_2008_03_05, date(2008, 3, 4))
    assert not isinstance(info.value, InvalidIdNumber)
    assert not re.search(r"\d", str(info.value))


def test_age_of_a_leap_day_birthday_advances_on_march_first_in_common_years() -> None:
    # 2026 is a common year: still 17 on 28 February, 18 on 1 March.
    assert age_on(BORN_2008_02_29, date(2026, 2, 28)) == 17
    assert age_on(BORN_2008_02_29, date(2026, 3, 1)) == 18
    # 2028 is a leap year: the birthday exists and counts on the day.
    assert age_on(BORN_2008_02_29, date(2028, 2, 28)) == 19
    assert age_on(BORN_2008_02_29, date(2028, 2, 29)) == 20
    # First birthday, 2009.
    assert age_on(BORN_2008_02_29, date(2009, 2, 28)) == 0
    assert age_on(BORN_2008_02_29, date(2009, 3, 1)) == 1


def test_age_over_a_long_span() -> None:
    born = build("110105", "19000101", "001")
    assert age_on(born, date(1999, 12, 31)) == 99
    assert age_on(born, date(2000, 1, 1)) == 100
