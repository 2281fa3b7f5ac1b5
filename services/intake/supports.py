"""Rules of a citizen's "me too" (我也遇到 / 附议) on someone else's report: plain functions, no I/O.

Someone who meets a problem already reported adds their voice instead of a duplicate report: the
report's count of supporters grows, and the hotspot it belongs to weighs more. Supporters are not
reporters: they get no receipt and no timeline of their own, and the report's timeline does not
name them.
"""

from __future__ import annotations

import hashlib
import hmac

from services.intake.domain import Reporter
from shared.errors import FieldError

CLOSED = "这条反映已经办结，如问题仍在，请重新反映。"
REPEATED = "您已经附议过这条反映。"
OWN_REPORT = "这是您本人反映的问题，无需附议。"
_DIGEST_PREFIX = b"minyi.intake.support.person.v1\x00"


def check_support(*, channel: str, anonymous: bool, reporter: Reporter | None,
                  roles: frozenset[str]) -> list[FieldError]:
    """Everything wrong with a support that can be told without looking anything up."""
    errors: list[FieldError] = []
    if anonymous:
        if reporter is not None:
            errors.append(FieldError("reporter", "匿名附议不能同时填写个人信息"))
    elif reporter is None:
        errors.append(FieldError("reporter", "实名附议请填写姓名和联系电话"))
    else:
        if not reporter.name.strip():
            errors.append(FieldError("reporter.name", "实名附议请填写姓名"))
        if not any(ch.isdigit() for ch in reporter.phone):
            errors.append(FieldError("reporter.phone", "实名附议请填写联系电话"))
        if reporter.id_number:
            # Name and phone are enough to reach a supporter; an ID number would only be kept for nothing.
            errors.append(FieldError("reporter.id_number", "附议无需填写身份证号"))
    if channel == "paper" and "station_staff" not in roles:
        errors.append(FieldError("channel", "纸质附议由联络站工作人员登记"))
    return errors


def refusal(status: str) -> str | None:
    """Why the report cannot be supported any more, or None."""
    return CLOSED if status == "closed" else None


def person_digest(phone_index: bytes, report_id: str) -> bytes:
    """Who supported this report, as a digest that means nothing for any other report.

    `phone_index` is the keyed blind index of the phone (`shared.pii.blind_index`). Keying the
    digest again by the report keeps "once per person" checkable while no two reports' supporters
    can be matched, nor a supporter with the reports they filed themselves.
    """
    return hmac.new(phone_index, _DIGEST_PREFIX + report_id.encode(), hashlib.sha256).digest()
