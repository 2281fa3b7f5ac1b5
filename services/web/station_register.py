"""A report a clerk registers for a citizen who wrote, called or used the kiosk: the citizen's form
plus the channel, the time it really came in, and who it is for. Pure functions, no I/O.

The clock starts from the time the letter arrived or the call was taken, not from when it was
typed in, so a report registered on Monday for Friday's call is due when Friday's would be.
Intake takes that time only from station staff, for paper, hotline and kiosk reports, not in the
future and not over a year back; the page checks the same so the clerk hears it next to the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.web import report_form
from services.web.report_form import Draft, Upload
from services.web.words import SHANGHAI, beijing

CHANNELS = {"paper": "纸质来信", "hotline": "电话", "kiosk": "一体机（代为录入）"}
# The same bounds as intake's, with a minute's grace for a clock a little ahead.
MAX_AGE = timedelta(days=366)
# A code as printed under a QR symbol, or the address the symbol holds (…/q/{code}).
_CODE = re.compile(r"^[0-9A-Za-z]{4,64}$")
_CODE_IN_URL = re.compile(r"/(?:q|kiosk)/([0-9A-Za-z]{4,64})(?:[/?#].*)?$")
_REGION = re.compile(r"^\d{6,12}$")
FIELD_ORDER = ("form", "channel", "received_at", "target", "content", "category", "photos", "voice", "address",
               "identity", "name", "phone", "id_number", "consent")


@dataclass
class Registration:
    """What the clerk typed, kept to fill the form again when something must be corrected."""

    draft: Draft
    channel: str = "paper"
    received_at: str = ""  # as the datetime-local input holds it: 2026-12-05T09:30, Beijing time
    target_code: str = ""  # pasted: a code or the link a QR symbol holds
    target_pick: str = ""  # picked from the region's stations and deputies: their live code
    region_code: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def default_received_at(now: datetime) -> str:
    return now.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def read(form: Mapping[str, Any], uploads: list[Upload]) -> Registration:
    def text(name: str, limit: int = 200) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    return Registration(draft=report_form.read_draft(form, uploads), channel=text("channel", 20),
                        received_at=text("received_at", 40), target_code=text("target_code", 300),
                        target_pick=text("target_pick", 64), region_code=text("region_code", 20))


def code_of(typed: str) -> str | None:
    """The QR code in what the clerk typed or pasted: the bare code, or the link the symbol holds."""
    typed = typed.strip()
    if _CODE.match(typed):
        return typed
    found = _CODE_IN_URL.search(typed)
    return found.group(1) if found else None


def chosen_code(reg: Registration) -> str | None:
    """The code the report goes to: a pasted one wins over the picker (the letter names someone the
    list does not hold, or the clerk pasted it on purpose); None for a report to a region."""
    if reg.target_code:
        return code_of(reg.target_code)
    return reg.target_pick if _CODE.match(reg.target_pick) else None


def received_time(text: str) -> datetime | None:
    """A datetime-local value read as Beijing time (seconds allowed); None when it is not one."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return beijing(at)


def check(reg: Registration, *, now: datetime, region_choices: set[str],
          categories: set[str] | None) -> dict[str, str]:
    """Field → what to do about it, in Chinese; empty when the registration may be sent."""
    errors = report_form.check(reg.draft, categories=categories)
    if "consent" in errors:
        errors["consent"] = "实名登记需要反映人同意。请向反映人说明个人信息的用途，取得同意后勾选。"
    if reg.channel not in CHANNELS:
        errors["channel"] = "请选择反映是怎么来的：纸质来信、电话或一体机。"
    at = received_time(reg.received_at)
    if not reg.received_at:
        errors["received_at"] = "请填写收到反映的时间（来信签收或接听电话的时间）。"
    elif at is None:
        errors["received_at"] = "收到时间的格式不对，请重新选择日期和时间。"
    elif at > now + timedelta(minutes=1):
        errors["received_at"] = "收到时间不能晚于现在。"
    elif at < now - MAX_AGE:
        errors["received_at"] = "收到时间不能早于一年前。更早的来信请按档案办理。"
    if reg.target_code and code_of(reg.target_code) is None:
        errors["target"] = "没有认出二维码编号。请粘贴扫码得到的链接（含 /q/），或者留空按地区登记。"
    elif not reg.target_code and reg.target_pick and chosen_code(reg) is None:
        errors["target"] = "所选的代表或联络站无法使用，请重新选择，或者按地区登记。"
    elif chosen_code(reg) is None and reg.region_code not in region_choices:
        errors["target"] = "请选择问题所在的地区，或者选择、粘贴代表或联络站的二维码。"
    return errors


def body(reg: Registration, *, code: str | None, attachment_ids: list[str]) -> dict[str, Any]:
    """Intake's `POST /v1/reports` body for a checked registration."""
    out = report_form.report_body(reg.draft, channel="h5", code=code,
                                  region_code=None if code else reg.region_code, attachment_ids=attachment_ids)
    # The citizen's form always comes through the web; here the clerk says how it really came.
    out["channel"] = reg.channel
    at = received_time(reg.received_at)
    if at is not None:
        out["received_at"] = at.isoformat()
    return out


def field_of(intake_field: str) -> str:
    """The form field an intake field error belongs to."""
    if intake_field in ("received_at", "channel"):
        return intake_field
    if intake_field in ("code", "region_code"):
        return "target"
    return report_form.field_of(intake_field)
