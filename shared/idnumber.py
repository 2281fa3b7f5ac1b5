"""Chinese resident identity numbers (公民身份号码, GB 11643-1999).

An 18-character number reads::

    RRRRRR YYYYMMDD SSS C
    region birth    seq check

* ``RRRRRR``: administrative division code of the place of first registration (GB/T 2260).
* ``YYYYMMDD``: date of birth.
* ``SSS``: sequence number; its last digit (the 17th character) is odd for men, even for women.
* ``C``: ISO 7064 MOD 11-2 check character, a digit or ``X`` (standing for 10).

First-generation cards carry 15 digits (``RRRRRR YYMMDD SSS``, century 19, no check character);
:func:`normalize` upgrades them to the 18-character form, which is the only form stored or passed
to the other functions here.

Every function is pure.  The number is personal data, so :class:`InvalidIdNumber` carries a fixed
message chosen by its error code alone: nothing of the input can reach a log line or an error body
through it.
"""

from __future__ import annotations

from datetime import date
from operator import mul
from typing import Final, Literal

__all__ = [
    "PROVINCE_CODES",
    "ErrorCode",
    "Gender",
    "InvalidIdNumber",
    "age_on",
    "birth_date",
    "check_character",
    "gender",
    "is_valid",
    "mask",
    "normalize",
]

ErrorCode = Literal["length", "characters", "region", "birth_date", "future_birth_date", "check_digit"]
Gender = Literal["male", "female"]

_MESSAGES: Final[dict[ErrorCode, str]] = {
    "length": "身份证号码应为18位",
    "characters": "身份证号码只能包含数字，末位可以是X",
    "region": "身份证号码的地区代码无效",
    "birth_date": "出生日期无效",
    "future_birth_date": "出生日期不能晚于今天",
    "check_digit": "校验位不正确",
}

# Province-level codes (first two digits). Only this level is checked: prefecture and county codes
# are renamed, merged and created every year, while numbers issued under a retired code stay valid
# for life, so a full county table would reject real people and need constant upkeep.
PROVINCE_CODES: Final[frozenset[str]] = frozenset(
    {
        # North China: Beijing, Tianjin, Hebei, Shanxi, Inner Mongolia.
        "11", "12", "13", "14", "15",
        # North-east: Liaoning, Jilin, Heilongjiang.
        "21", "22", "23",
        # East: Shanghai, Jiangsu, Zhejiang, Anhui, Fujian, Jiangxi, Shandong.
        "31", "32", "33", "34", "35", "36", "37",
        # Central and south: Henan, Hubei, Hunan, Guangdong, Guangxi, Hainan.
        "41", "42", "43", "44", "45", "46",
        # South-west: Chongqing, Sichuan, Guizhou, Yunnan, Tibet.
        "50", "51", "52", "53", "54",
        # North-west: Shaanxi, Gansu, Qinghai, Ningxia, Xinjiang.
        "61", "62", "63", "64", "65",
        # Taiwan, Hong Kong, Macao as GB/T 2260 lists them.
        "71", "81", "82",
        # Residence permits for Hong Kong, Macao and Taiwan residents (港澳台居民居住证, since 2018)
        # carry 810000, 820000 or 830000 in the same 18-character layout; 83 is not in GB/T 2260.
        "83",
    }
)

_WEIGHTS: Final[tuple[int, ...]] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Indexed by the weighted sum mod 11; equivalent to choosing C so the full weighted sum is 1 mod 11.
_ASCII_ZERO_WEIGHT: Final[int] = ord("0") * sum(_WEIGHTS)
_CHECK_CHARACTERS: Final[str] = "10X98765432"
_LAST_CHARACTERS: Final[frozenset[str]] = frozenset("0123456789X")
_EARLIEST_BIRTH: Final[date] = date(1900, 1, 1)


class InvalidIdNumber(ValueError):
    """An identity number failed validation.

    ``code`` is a short machine code for clients and metrics; ``message`` is the Chinese text shown
    to the user.  The message is looked up from the code, never formatted, so it cannot contain the
    number.
    """

    code: ErrorCode
    message: str

    def __init__(self, code: ErrorCode) -> None:
        self.code = code
        self.message = _MESSAGES[code]
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[type[InvalidIdNumber], tuple[ErrorCode]]:
        # The default reduction replays ``args`` (the message) into ``__init__``, which takes a code.
        return (type(self), (self.code,))


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit alone accepts full-width and other scripts' digits, which int() would then parse.
    return text.isascii() and text.isdigit()


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``) for the first 17 digits."""
    if len(first17) != 17:
        raise InvalidIdNumber("length")
    if not _is_ascii_digits(first17):
        raise InvalidIdNumber("characters")
    # The ASCII codes carry each digit plus 48; one weighted sum over the bytes, less 48 times the
    # weights' sum, is the weighted digit sum without a conversion per digit (registry loads check
    # tens of millions of numbers).
    total = sum(map(mul, _WEIGHTS, first17.encode("ascii"))) - _ASCII_ZERO_WEIGHT
    return _CHECK_CHARACTERS[total % 11]


def _parse_birth_date(yyyymmdd: str) -> date:
    # Range checks instead of catching date()'s ValueError: an exception raised inside an except
    # block keeps the original as __context__, and we want nothing attached to InvalidIdNumber.
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])
    if year < _EARLIEST_BIRTH.year or not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise InvalidIdNumber("birth_date")
    return date(year, month, day)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _check_region(digits: str) -> None:
    if digits[:2] not in PROVINCE_CODES:
        raise InvalidIdNumber("region")


def _check_birth_date(yyyymmdd: str, today: date | None) -> date:
    born = _parse_birth_date(yyyymmdd)
    if born > (date.today() if today is None else today):
        raise InvalidIdNumber("future_birth_date")
    return born


def normalize(raw: str, *, today: date | None = None) -> str:
    """Validate an identity number as typed by a person and return its canonical 18-character form.

    Surrounding whitespace is dropped, a lower-case ``x`` check character becomes ``X`` and a
    15-digit first-generation number is upgraded (``19`` inserted before the year, check character
    appended).  Full-width digits and inner spaces are rejected rather than repaired: they are rare
    enough that a clear error beats guessing.

    Checks run in a fixed order (length, characters, region, birth date, check character) so the
    error reported for a given input never depends on anything but the input and ``today``
    (default: ``date.today()``, used to reject birth dates in the future).
    """
    return normalize_born(raw, today=today)[0]


def normalize_born(raw: str, *, today: date | None = None) -> tuple[str, date]:
    """:func:`normalize`, and the birth date it checked: registry loads need both for every record."""
    text = raw.strip()
    if len(text) == 15:
        return _upgrade_first_generation(text, today)
    if len(text) != 18:
        raise InvalidIdNumber("length")
    body, last = text[:17], text[17]
    if last == "x":
        last = "X"
    if not _is_ascii_digits(body) or last not in _LAST_CHARACTERS:
        raise InvalidIdNumber("characters")
    _check_region(body)
    born = _check_birth_date(body[6:14], today)
    if check_character(body) != last:
        raise InvalidIdNumber("check_digit")
    return body + last, born


def _upgrade_first_generation(text: str, today: date | None) -> tuple[str, date]:
    if not _is_ascii_digits(text):
        raise InvalidIdNumber("characters")
    _check_region(text)
    body = text[:6] + "19" + text[6:]
    born = _check_birth_date(body[6:14], today)
    return body + check_character(body), born


def is_valid(raw: str, *, today: date | None = None) -> bool:
    """Whether :func:`normalize` accepts ``raw``."""
    try:
        normalize(raw, today=today)
    except InvalidIdNumber:
        return False
    return True


def _require_canonical(id18: str) -> None:
    # The accessors below trust normalize() for the region and the check character, but refuse
    # anything not even shaped like its output so that slicing cannot silently return garbage.
    if len(id18) != 18:
        raise InvalidIdNumber("length")
    if not _is_ascii_digits(id18[:17]) or id18[17] not in _LAST_CHARACTERS:
        raise InvalidIdNumber("characters")


def birth_date(id18: str) -> date:
    """Date of birth of a canonical 18-character number (as returned by :func:`normalize`)."""
    _require_canonical(id18)
    return _parse_birth_date(id18[6:14])


def gender(id18: str) -> Gender:
    """Gender recorded in a canonical number: odd 17th digit for male, even for female."""
    _require_canonical(id18)
    return "male" if int(id18[16]) % 2 else "female"


def mask(id18: str) -> str:
    """Display form: first 4 and last 4 characters kept, the 10 between replaced by ``*``."""
    _require_canonical(id18)
    return id18[:4] + "*" * 10 + id18[14:]


def age_on(id18: str, day: date) -> int:
    """Age in full years (周岁) on ``day``.

    A person gains a year on the birthday itself (born 2008-03-05: 17 on 2026-03-04, 18 on
    2026-03-05).  Someone born on 29 February gains it on 1 March in common years: the anniversary
    has not been reached while 29 February has not occurred, which is the usual reading in China and
    never treats a person as older than they unarguably are.  Comparing (month, day) pairs yields this
    by itself, since a common year's 28 February sorts before (2, 29) and its 1 March after.

    Rules that count age from the day after the birthday (criminal responsibility, for instance) can
    ask for ``age_on(id18, day - timedelta(days=1))``.
    """
    born = birth_date(id18)
    if day < born:
        raise ValueError("the day is before the date of birth")
    years = day.year - born.year
    if (day.month, day.day) < (born.month, born.day):
        years -= 1
    return years
