"""Rules of citizens' reports (群众意见): plain functions, no I/O.

A report moves `submitted` → `acknowledged` → `dispatched` → `answered` → `closed`. Status only
moves forward, except that a poor rating with a comment reopens it (a new round) and a grid
platform may hand it back (退回). Whether the deputy took it up (受理) is kept apart from the
status, because the grid platform may already be working on it when the deputy acknowledges.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from shared import idnumber
from shared.calendar import SHANGHAI, WorkCalendar
from shared.errors import FieldError

Channel = Literal["miniprogram", "h5", "kiosk", "hotline", "paper", "api"]
Status = Literal["submitted", "acknowledged", "dispatched", "answered", "closed"]
TargetKind = Literal["deputy", "station", "region"]
TimerKind = Literal["ack_remind", "ack_due", "reply_remind", "reply_due", "auto_close"]

STATUS_ORDER: tuple[Status, ...] = ("submitted", "acknowledged", "dispatched", "answered", "closed")
OPEN_STATUSES: tuple[Status, ...] = ("submitted", "acknowledged", "dispatched")
MAX_CONTENT = 5000
# Channels whose reports staff type in after the fact, so the clock may start before submission.
BACKDATED_CHANNELS: frozenset[str] = frozenset({"paper", "hotline", "kiosk"})
# Ratings this low, with a comment saying why, send the report back for handling.
REOPEN_AT_MOST = 2


class Refused(Exception):
    """A request that conflicts with the report's state (HTTP 409); `message` is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---- receipt codes ------------------------------------------------------------------------------

# No 0/O, 1/I/L or U/V: a citizen reads the code off a slip or a screen and types it back.
RECEIPT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
RECEIPT_RANDOM = 11  # 29**11 ≈ 2**53: unguessable at any rate the flood limit lets through


def _check_char(body: str) -> str:
    total = sum((i + 1) * RECEIPT_ALPHABET.index(c) for i, c in enumerate(body))
    return RECEIPT_ALPHABET[total % len(RECEIPT_ALPHABET)]


def new_receipt_code() -> str:
    # One draw below 29**11 written in base 29: the same uniform codes as eleven draws, for a fraction.
    n = secrets.randbelow(len(RECEIPT_ALPHABET) ** RECEIPT_RANDOM)
    chars: list[str] = []
    for _ in range(RECEIPT_RANDOM):
        n, digit = divmod(n, len(RECEIPT_ALPHABET))
        chars.append(RECEIPT_ALPHABET[digit])
    body = "".join(chars)
    return body + _check_char(body)


def normalize_receipt_code(text: str) -> str | None:
    """The stored form of a typed code (case, spaces and dashes ignored); None when it cannot be one.

    The check character catches a mistyped character before any lookup, so a typo reads as a typo
    rather than as "no such report".
    """
    code = "".join(ch for ch in text.upper() if ch not in " -")
    if len(code) != RECEIPT_RANDOM + 1 or any(ch not in RECEIPT_ALPHABET for ch in code):
        return None
    return code if _check_char(code[:-1]) == code[-1] else None


def display_receipt_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


# ---- validation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reporter:
    name: str
    phone: str
    id_number: str | None


def check_submission(
    *,
    channel: str,
    code: str | None,
    region_code: str | None,
    content: str,
    has_voice: bool,
    anonymous: bool,
    reporter: Reporter | None,
    received_at: datetime | None,
    roles: frozenset[str],
    now: datetime,
) -> tuple[list[FieldError], str | None]:
    """Everything wrong with a report that can be told without looking anything up.

    Returns the errors and the canonical ID number of a real-name reporter (when one was given).
    """
    errors: list[FieldError] = []
    if not code and not region_code:
        errors.append(FieldError("code", "请扫描代表或联络站的二维码，或选择所在地区（code、region_code 至少填一项）"))
    if not content.strip() and not has_voice:
        errors.append(FieldError("content", "请填写反映的内容，或附上一段语音"))
    elif len(content) > MAX_CONTENT:
        errors.append(FieldError("content", f"内容不能超过 {MAX_CONTENT} 个字"))
    id_number: str | None = None
    if anonymous:
        if reporter is not None:
            errors.append(FieldError("reporter", "匿名反映不能同时填写个人信息"))
    elif reporter is None:
        errors.append(FieldError("reporter", "实名反映请填写姓名和联系电话"))
    else:
        if not reporter.name.strip():
            errors.append(FieldError("reporter.name", "实名反映请填写姓名"))
        if not reporter.phone.strip():
            errors.append(FieldError("reporter.phone", "实名反映请填写联系电话"))
        if reporter.id_number:
            try:
                id_number = idnumber.normalize(reporter.id_number, today=now.astimezone(SHANGHAI).date())
            except idnumber.InvalidIdNumber as exc:
                errors.append(FieldError("reporter.id_number", exc.message))
    if received_at is not None:
        if "station_staff" not in roles:
            errors.append(FieldError("received_at", "只有联络站工作人员登记纸质、电话或一体机反映时才能填写收到时间"))
        elif channel not in BACKDATED_CHANNELS:
            errors.append(FieldError("received_at", "只有纸质、电话或一体机反映可以填写收到时间"))
        elif received_at > now + timedelta(seconds=60):
            errors.append(FieldError("received_at", "收到时间不能晚于当前时间"))
        elif received_at < now - timedelta(days=366):
            errors.append(FieldError("received_at", "收到时间不能早于一年前"))
    if channel == "paper" and "station_staff" not in roles:
        errors.append(FieldError("channel", "纸质反映由联络站工作人员登记"))
    return errors, id_number


# ---- clocks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockRules:
    """How a region counts: working days to acknowledge and to answer, when to remind, when to close."""

    ack_days: int = 2
    reply_days: int = 7
    # Reminders go out at this hour (Shanghai) on the due day, which is always a working day.
    remind_hour: int = 9
    # An answered report nobody rates closes by itself after this many calendar days.
    close_days: int = 15


DEFAULT_RULES = ClockRules()


def rules_for(region_code: str, rules: Mapping[str, ClockRules]) -> ClockRules:
    """The rules of the longest configured prefix of `region_code`, else the statutory defaults."""
    best = ""
    for prefix in rules:
        if region_code.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return rules[best] if best else DEFAULT_RULES


@dataclass(frozen=True)
class Deadlines:
    ack_due: datetime
    reply_due: datetime
    provisional: bool


def deadlines(calendar: WorkCalendar, rules: ClockRules, start: datetime) -> Deadlines:
    ack = calendar.deadline(start, rules.ack_days)
    reply = calendar.deadline(start, rules.reply_days)
    return Deadlines(ack.at, reply.at, ack.provisional or reply.provisional)


def reminder_at(due: datetime, rules: ClockRules) -> datetime:
    day: date = due.astimezone(SHANGHAI).date()
    return datetime.combine(day, time(rules.remind_hour), tzinfo=SHANGHAI)


def timers_for_new_round(deadline: Deadlines, rules: ClockRules, *, acknowledged: bool,
                         now: datetime) -> dict[TimerKind, datetime]:
    """The timers of a report that waits for its answer. A reminder whose hour has passed is skipped;
    a deadline that has passed (a late-registered paper report) still fires, at once."""
    timers: dict[TimerKind, datetime] = {}
    if not acknowledged:
        timers["ack_due"] = deadline.ack_due
        remind = reminder_at(deadline.ack_due, rules)
        if remind > now:
            timers["ack_remind"] = remind
    timers["reply_due"] = deadline.reply_due
    remind = reminder_at(deadline.reply_due, rules)
    if remind > now:
        timers["reply_remind"] = remind
    return timers


def auto_close_at(answered_at: datetime, rules: ClockRules) -> datetime:
    return answered_at + timedelta(days=rules.close_days)


# ---- transitions --------------------------------------------------------------------------------


def advanced(current: str, new: Status) -> Status:
    """`new` if it lies ahead of `current`; a late or repeated event never moves a report back."""
    return new if STATUS_ORDER.index(new) > STATUS_ORDER.index(current) else current  # type: ignore[return-value]


def check_acknowledge(status: str, acknowledged: bool) -> bool:
    """True when acknowledging changes something; False when it was acknowledged already."""
    if acknowledged:
        return False
    if status == "closed":
        raise Refused("该事项已办结，无需受理。")
    return True


def check_reply(status: str) -> None:
    if status == "answered":
        raise Refused("该事项已答复；如需补充，请等待群众评价后再办理。")
    if status == "closed":
        raise Refused("该事项已办结，不能再答复。")


@dataclass(frozen=True)
class RatingOutcome:
    reopen: bool
    status: Status


def rate(status: str, already_rated: bool, stars: int, comment: str | None) -> RatingOutcome:
    if status != "answered":
        if already_rated or status == "closed":
            raise Refused("该事项已评价或已办结，不能再评价。")
        raise Refused("该事项尚未答复，答复后才能评价。")
    if already_rated:
        raise Refused("您已评价过本次答复。")
    reopen = stars <= REOPEN_AT_MOST and bool(comment and comment.strip())
    return RatingOutcome(reopen=reopen, status="acknowledged" if reopen else "closed")


def status_after_return(acknowledged: bool) -> Status:
    """A grid platform handed the matter back (退回): it is the deputy's again."""
    return "acknowledged" if acknowledged else "submitted"


# ---- presentation -------------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***: enough for staff to address the person, not to identify them."""
    name = name.strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def mask_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # +86: staff recognise the mobile number, not the country code
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def is_on_time(done_at: datetime, due: datetime) -> bool:
    return done_at <= due


NOTES: dict[str, str] = {
    "submitted": "已收到您的反映，等待代表受理。",
    "acknowledged": "代表已受理，正在办理。",
    "dispatched": "已转交基层治理平台办理。",
    "grid_accepted": "基层治理平台已接收。",
    "grid_in_progress": "基层治理平台正在处理。",
    "grid_returned": "基层治理平台已退回，由代表继续办理。",
    "grid_failed": "未能转交基层治理平台，由代表继续办理。",
    "grid_resolved": "基层治理平台已办结。",
    "reopened": "您对答复不满意，已重新交办。",
    "closed": "已办结。",
    "auto_closed": "答复后 {days} 日内未评价，已自动办结。",
    "ack_remind": "受理期限将至，已提醒代表。",
    "reply_remind": "答复期限将至，已提醒代表。",
    "ack_overdue": "受理已超期，已督促联络站和人大工作人员。",
    "reply_overdue": "答复已超期，已督促联络站和人大工作人员。",
}


def rated_note(stars: int) -> str:
    return f"您的评价：{stars} 星。"
