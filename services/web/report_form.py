"""The citizen's report form: what was typed, checked the way intake will check it, in plain words.

Pure functions, no I/O. The page checks first so that a person hears about a mistake next to the
field, in Chinese, before anything is uploaded; intake checks again, and its field errors are
mapped back onto the same fields (`field_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_CONTENT = 5000
MAX_PHOTOS = 6
MAX_FILE_BYTES = 10 * 1024 * 1024
# Six photos and a recording at the largest size, plus the form around them.
MAX_FORM_BYTES = (MAX_PHOTOS + 1) * MAX_FILE_BYTES + 256 * 1024
MAX_ADDRESS = 200
PHOTO_TYPES = "image/jpeg,image/png,image/webp"
VOICE_TYPES = "audio/*"
# Mobile numbers (11 digits from 13x to 19x) or fixed lines with an area code; spaces and dashes allowed.
_PHONE = re.compile(r"^(?:\+?86)?(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?)$")
_NAME = re.compile(r"^[^\x00-\x1f<>]{1,50}$")
_ID_NUMBER = re.compile(r"^\d{17}[\dXx]$|^\d{15}$")

Channel = Literal["h5", "kiosk"]

# Intake's field names as the form's own.
_INTAKE_FIELDS = {
    "content": "content", "category": "category", "reporter.name": "name", "reporter.phone": "phone",
    "reporter.id_number": "id_number", "reporter": "name", "location": "address", "code": "form",
    "region_code": "region", "anonymous": "identity",
}


@dataclass(frozen=True)
class Upload:
    """A file the citizen chose, as it arrived in the form."""

    field: Literal["photos", "voice"]
    filename: str
    media_type: str
    data: bytes


@dataclass
class Draft:
    """What the form holds: kept to fill the form again when something must be corrected."""

    content: str = ""
    category: str = ""
    anonymous: bool = True
    name: str = ""
    phone: str = ""
    id_number: str = ""
    consent: bool = False
    lat: str = ""
    lon: str = ""
    address: str = ""
    region_code: str = ""
    idempotency_key: str = ""
    uploads: list[Upload] = field(default_factory=list)

    @property
    def photos(self) -> list[Upload]:
        return [u for u in self.uploads if u.field == "photos"]

    @property
    def voice(self) -> Upload | None:
        return next((u for u in self.uploads if u.field == "voice"), None)


def _text(form: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


def read_draft(form: Mapping[str, Any], uploads: list[Upload]) -> Draft:
    """The form's fields, trimmed; a value far over its limit is cut just past it so the check says so."""
    return Draft(
        content=_text(form, "content", MAX_CONTENT).replace("\r\n", "\n"),
        category=_text(form, "category", 40),
        anonymous=_text(form, "identity") != "real",
        name=_text(form, "name", 50),
        phone=_text(form, "phone", 30),
        id_number=_text(form, "id_number", 20),
        consent=_text(form, "consent") in ("yes", "on", "1"),
        lat=_text(form, "lat", 20),
        lon=_text(form, "lon", 20),
        address=_text(form, "address", MAX_ADDRESS),
        region_code=_text(form, "region_code", 40),
        idempotency_key=_text(form, "idem", 80),
        uploads=uploads,
    )


def check(draft: Draft, *, categories: set[str] | None = None) -> dict[str, str]:
    """Field → what to do about it, in Chinese; empty when the draft may be sent."""
    errors: dict[str, str] = {}
    has_voice = draft.voice is not None
    if not draft.content and not has_voice:
        errors["content"] = "请写下您要反映的事情，或者录一段语音。"
    elif len(draft.content) > MAX_CONTENT:
        errors["content"] = f"内容最多 {MAX_CONTENT} 字，现在有 {len(draft.content)} 字，请删减一些。"
    if draft.category and categories is not None and draft.category not in categories:
        errors["category"] = "请从列出的类别中选择，或者不选。"
    photos = draft.photos
    if len(photos) > MAX_PHOTOS:
        errors["photos"] = f"照片最多 {MAX_PHOTOS} 张，您选了 {len(photos)} 张。"
    elif any(len(p.data) > MAX_FILE_BYTES for p in photos):
        errors["photos"] = "每张照片不能超过 10 MB。"
    if sum(1 for u in draft.uploads if u.field == "voice") > 1:
        errors["voice"] = "只能附一段语音。"
    elif has_voice and len(draft.voice.data) > MAX_FILE_BYTES:  # type: ignore[union-attr]
        errors["voice"] = "语音不能超过 10 MB（大约 10 分钟）。"
    if len(draft.address) > MAX_ADDRESS:
        errors["address"] = f"地点最多 {MAX_ADDRESS} 字。"
    if (draft.lat or draft.lon) and _coordinates(draft) is None:
        errors["address"] = "定位信息有误，请重新定位或直接填写地点。"
    if not draft.anonymous:
        errors.update(check_reporter(name=draft.name, phone=draft.phone, consent=draft.consent,
                                     id_number=draft.id_number))
    return errors


def check_reporter(*, name: str, phone: str, consent: bool, id_number: str = "") -> dict[str, str]:
    """A real-name person's details, checked the same wherever a citizen gives them (a report, a me-too)."""
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "实名反映请填写姓名。"
    elif not _NAME.match(name):
        errors["name"] = "姓名最多 50 个字，不能含有尖括号。"
    if not phone:
        errors["phone"] = "实名反映请填写联系电话，方便代表联系您。"
    elif not _PHONE.match(phone.replace(" ", "")):
        errors["phone"] = "请填写 11 位手机号，或带区号的固定电话（如 0571-88886666）。"
    if id_number and not _ID_NUMBER.match(id_number):
        errors["id_number"] = "身份证号应为 18 位（最后一位可以是 X），也可以不填。"
    if not consent:
        errors["consent"] = "实名反映需要您同意个人信息的使用说明。"
    return errors


def _coordinates(draft: Draft) -> tuple[float, float] | None:
    try:
        lat, lon = float(draft.lat), float(draft.lon)
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def report_body(draft: Draft, *, channel: Channel, code: str | None, region_code: str | None,
                attachment_ids: list[str]) -> dict[str, Any]:
    """The body of intake's `POST /v1/reports` for a checked draft."""
    content = draft.content
    location: dict[str, Any] | None = None
    coordinates = _coordinates(draft) if draft.lat and draft.lon else None
    if coordinates is not None:
        location = {"lat": coordinates[0], "lon": coordinates[1], "address": draft.address or None}
    elif draft.address:
        # Intake keeps a location only with coordinates; a typed place still belongs with the report.
        content = f"{content}\n地点：{draft.address}" if content else f"地点：{draft.address}"
    body: dict[str, Any] = {
        "channel": channel, "content": content, "anonymous": draft.anonymous, "attachment_ids": attachment_ids,
    }
    if code:
        body["code"] = code
    if region_code:
        body["region_code"] = region_code
    if draft.category:
        body["category"] = draft.category
    if location is not None:
        body["location"] = location
    if not draft.anonymous:
        reporter: dict[str, Any] = {"name": draft.name, "phone": draft.phone.replace(" ", "")}
        if draft.id_number:
            reporter["id_number"] = draft.id_number.upper()
        body["reporter"] = reporter
    return body


def field_of(intake_field: str) -> str:
    """The form field an intake field error belongs to ('form' for the form as a whole)."""
    if intake_field.startswith("attachment_ids"):
        return "photos"
    return _INTAKE_FIELDS.get(intake_field, "form")
