"""What the pages about common matters (共性事项) decide without asking anyone: how a matter is named
and described, where a citizen's unsent words are searched for repeats (重复反映), the me-too form
(附议) read and checked as the report form checks its reporter, and the sealed thank-you count.

Pure functions and constants; the pages (matter_pages.py, report_pages.py) and their tests share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.web import report_form
from services.web.matter_calls import MatterMatch
from services.web.sealed import Sealer

# Fewer characters than this say too little to be matched against anything.
MIN_SEARCH_CHARS = 6
# Routing reads at most this much of an unsent report; the start of a report says what it is about.
MAX_SEARCH_CHARS = 2000
# Routing takes region codes of 6 to 12 digits (county down to village); a grid's code is its village's
# with a suffix.
_SEARCH_REGION = re.compile(r"^(\d{6,12})(?:\D.*)?$")
MATTER_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
KIOSK_CODE = re.compile(r"^[0-9A-Za-z]{4,64}$")
# Merged matters point at the one they were merged into; a chain longer than this is not followed.
MAX_MERGE_HOPS = 4

STATE = {"open": "处理中", "converted": "已列为监督议题", "closed": "已办结", "merged": "已并入其他事项"}
# States in which the matter still takes the support of someone who has the same problem.
SUPPORTABLE = ("open", "converted")


def search_region(code: str | None) -> str | None:
    """The region a form's words are searched in, or None where none narrow enough is known (a form
    for a whole city: matters are kept per county)."""
    found = _SEARCH_REGION.match(code or "")
    return found.group(1) if found else None


def search_text(content: str, address: str = "") -> str:
    """The words routing compares: the report as it would be filed, its typed place included (a
    report without coordinates carries its place in its text, see report_form.report_body)."""
    text = content.strip()
    place = address.strip()
    if place:
        text = f"{text}\n地点：{place}" if text else f"地点：{place}"
    return text[:MAX_SEARCH_CHARS]


def worth_searching(content: str) -> bool:
    return len(content.strip()) >= MIN_SEARCH_CHARS


def coordinates(lat: str, lon: str) -> tuple[float, float] | None:
    """The form's position when both halves are there and make sense; otherwise none is sent."""
    try:
        la, lo = float(lat), float(lon)
    except ValueError:
        return None
    return (la, lo) if -90 <= la <= 90 and -180 <= lo <= 180 else None


def title(places: Sequence[str], keywords: Sequence[str]) -> str:
    """A matter named by where it is, else by what it is about: it has no title of its own until a
    deputy makes it a supervision topic."""
    if places:
        return "、".join(places[:3])
    if keywords:
        return "、".join(keywords[:4])
    return "共性事项"


def place_name(path: Sequence[Any]) -> str:
    """演示区三墩镇: the matter's place from its county down, as an address is written."""
    # Six-digit codes ending in 00 are a province's or a city's.
    return "".join(r.name for r in path if len(r.code) > 6 or (len(r.code) == 6 and not r.code.endswith("00")))


def counts_text(count: int, supporters: int) -> str:
    """已有 6 人反映 · 2 人附议: the supporters only when there are some."""
    text = f"已有 {count} 人反映"
    return f"{text} · {supporters} 人附议" if supporters > 0 else text


def state_label(state: str) -> str:
    return STATE.get(state, "处理中")


def kiosk_code(value: str | None) -> str | None:
    return value if value and KIOSK_CODE.match(value) else None


def matter_href(hotspot_id: str, kiosk: str | None = None) -> str:
    return f"/matters/{hotspot_id}" + (f"?kiosk={kiosk}" if kiosk else "")


# ---- what a search found, as the form shows it ---------------------------------------------------


@dataclass(frozen=True)
class MatchView:
    """One matter in the list of likely repeats."""

    hotspot_id: str
    title: str
    category: str
    counts: str
    state: str
    state_key: str
    last_at: str | None
    href: str


def match_views(matches: Sequence[MatterMatch], kiosk: str | None = None) -> list[MatchView]:
    """Routing's matches as the form lists them; a closed matter takes no more support, so it is left out."""
    return [MatchView(hotspot_id=m.hotspot_id, title=title(m.places, m.keywords), category=m.category_label or "",
                      counts=counts_text(m.count, m.supporters), state=state_label(m.state), state_key=m.state,
                      last_at=m.last_at, href=matter_href(m.hotspot_id, kiosk))
            for m in matches if m.state in SUPPORTABLE]


@dataclass(frozen=True)
class Found:
    """The outcome of a search for repeats: the matches, or why there are none to show."""

    matches: Sequence[MatchView] = ()
    # A sentence instead of the list: the search could not be made, or was refused.
    problem: str | None = None


TOO_SHORT = f"请先写几句要反映的事情（至少 {MIN_SEARCH_CHARS} 个字），再查找有没有人反映过。"
TOO_OFTEN = "查找太频繁了，请稍等一会儿再试。不查找也可以直接提交。"
NOT_NOW = "暂时无法查找相同的反映，您可以直接提交。"


# ---- the me-too form ----------------------------------------------------------------------------


@dataclass
class SupportDraft:
    """What the me-too form holds: kept to fill it again when something must be corrected."""

    anonymous: bool = True
    name: str = ""
    phone: str = ""
    consent: bool = False
    idempotency_key: str = ""
    kiosk: str | None = None


SUPPORT_FIELDS = ("form", "identity", "name", "phone", "consent")


def _text(form: Mapping[str, Any], name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


def read_support(form: Mapping[str, Any]) -> SupportDraft:
    return SupportDraft(
        anonymous=_text(form, "identity", 20) != "real",
        name=_text(form, "name", 50),
        phone=_text(form, "phone", 30),
        consent=_text(form, "consent", 10) in ("yes", "on", "1"),
        idempotency_key=_text(form, "idem", 80),
        kiosk=kiosk_code(_text(form, "kiosk", 64)),
    )


def check_support(draft: SupportDraft) -> dict[str, str]:
    """Field → what to do about it; a real-name supporter is checked exactly as a real-name reporter."""
    if draft.anonymous:
        return {}
    return report_form.check_reporter(name=draft.name, phone=draft.phone, consent=draft.consent)


def support_body(draft: SupportDraft) -> dict[str, Any]:
    """The body of intake's `POST /v1/reports/{id}/supports` for a checked draft."""
    body: dict[str, Any] = {"anonymous": draft.anonymous, "channel": "kiosk" if draft.kiosk else "h5"}
    if not draft.anonymous:
        body["reporter"] = {"name": draft.name, "phone": draft.phone.replace(" ", "")}
    return body


def support_error_field(intake_field: str) -> str:
    """The me-too form's field an intake field error belongs to."""
    found = report_form.field_of(intake_field)
    return found if found in SUPPORT_FIELDS else "form"


# ---- the thank-you ------------------------------------------------------------------------------


class Thanks:
    """The count intake gave after a citizen's support, carried to the page after the redirect
    sealed: a count typed into the address bar must not be shown as the matter's."""

    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(secret, purpose=b"minyi-web-support-thanks", version=b"t1", max_chars=300)

    def seal(self, hotspot_id: str, supporters: int) -> str:
        return self._sealer.seal({"h": hotspot_id, "n": supporters})

    def open(self, value: str | None, hotspot_id: str) -> int | None:
        """The count sealed for this matter, or None for anything else."""
        opened = self._sealer.open(value)
        if opened is None or opened.get("h") != hotspot_id:
            return None
        count = opened.get("n")
        return count if isinstance(count, int) and count >= 0 else None


def thanks_text(supporters: int) -> str:
    return f"感谢您的附议，已有 {supporters} 人附议。"
