"""The QR code pages' view models: the list of a region's stations and deputies with their codes,
the printable sheet, and the QR symbols themselves. Pure.

A symbol is drawn here, as inline SVG made with segno, so printing a sheet asks nothing of any other
site, and what it encodes is exactly the address a scan should open: `{public base URL}/q/{code}`,
the citizens' report page (as identity forms a code's `url`). Full QR (never Micro QR), error
correction M raised where that costs no extra size, four modules of quiet zone: a scuffed sticker
on a station's door still scans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import segno
from markupsafe import Markup

from services.web import words
from services.web.console_admin_calls import DeputyRow, StationRow
from services.web.console_admin_directory import CURSOR, MAX_Q, focus_of

KINDS = {"station": "联络站", "deputy": "人大代表"}
SHEET_KINDS = {"all": "联络站和代表", "station": "联络站", "deputy": "人大代表"}
CODE = re.compile(r"^[0-9A-Za-z]{4,64}$")
TARGET_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
IDEM = re.compile(r"^[0-9a-f]{32}$")
# The list's filters carried through a form and back: a query string of ours, nothing else.
BACK = re.compile(r"^[A-Za-z0-9_=&%.+-]{0,600}$")
PAGE_SIZE = 20
# Codes on one printed sheet at most; a county's stations and deputies fit, a province's do not.
SHEET_MAX = 300
# Two columns of three on A4: a symbol about 6 cm wide, readable from a step away on a wall.
PER_PAGE = 6
QUIET_ZONE = 4


def code_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/q/{code}"


def qr_svg(url: str, label: str) -> Markup:
    """The QR symbol for `url` as an inline <svg> scaled by CSS, named `label` for screen readers."""
    symbol = segno.make_qr(url, error="m", boost_error=True)
    svg = symbol.svg_inline(scale=1, border=QUIET_ZONE, omitsize=True, title=label, svgclass="qr", lineclass=None,
                            dark="#000", light="#fff")
    # segno escapes the title; the role makes the title the image's name.
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))


# ---- the list -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodesQuery:
    region: str = ""
    kind: str = "station"
    q: str = ""
    after: str | None = None

    def query(self, **changes: str | None) -> str:
        chosen = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [("region", chosen.region), ("kind", chosen.kind), ("q", chosen.q), ("after", chosen.after)]
        return urlencode([(k, v) for k, v in pairs if v])


def read_codes_query(params: Mapping[str, str], session_region: str) -> CodesQuery:
    kind = params.get("kind", "station")
    after = params.get("after")
    return CodesQuery(region=focus_of(params.get("region"), session_region),
                      kind=kind if kind in KINDS else "station", q=(params.get("q") or "").strip()[:MAX_Q],
                      after=after if after and CURSOR.match(after) else None)


@dataclass(frozen=True)
class CodeRow:
    kind: str
    id: str
    name: str
    about: str
    region_code: str
    code: str | None
    url: str | None


def station_rows(stations: Sequence[StationRow], public_base_url: str) -> list[CodeRow]:
    return [CodeRow("station", s.id, s.name, words.STATION_KIND.get(s.kind, s.kind), s.region_code, s.code,
                    code_url(public_base_url, s.code) if s.code else None) for s in stations]


def deputy_rows(deputies: Sequence[DeputyRow], public_base_url: str) -> list[CodeRow]:
    return [CodeRow("deputy", d.id, d.name, words.LEVEL.get(d.level, d.level), d.region_code, d.code,
                    code_url(public_base_url, d.code) if d.code else None) for d in deputies]


def issue_key(idem: str, kind: str, target_id: str) -> str:
    """The Idempotency-Key of one issue: a form sent twice gets the code the first sending made."""
    return f"web-code-{idem}-{kind}-{target_id}"


def safe_back(value: str) -> str:
    return value if BACK.match(value) else ""


DONE = {
    "issued": "已签发二维码，可以打印了。",
    "reissued": "已重新签发二维码，旧的二维码已经作废，请换上新打印的。",
    "revoked": "二维码已作废，再扫这个码会提示“无法识别”。",
}


def done_notice(done: str, count: str, kind: str) -> str | None:
    """The line shown after an action, from the redirect's query (only words of ours, never typed text)."""
    if done == "issued_many":
        n = int(count) if count.isdigit() else 0
        what = KINDS.get(kind, "联络站")
        return f"已为 {n} 个{what}签发二维码。" if n else f"本地区的{what}都已经有二维码，没有新签发。"
    return DONE.get(done)


# ---- the printable sheet ------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    kind: str
    id: str
    name: str
    about: str
    url: str
    svg: Markup


def cards(rows: Sequence[CodeRow]) -> tuple[list[Card], list[CodeRow]]:
    """A card for every row with a live code, and the rows without one (left off the sheet)."""
    made = [Card(r.kind, r.id, r.name, r.about, r.url, qr_svg(r.url, f"{r.name}的二维码"))
            for r in rows if r.url]
    return made, [r for r in rows if not r.url]


def sheet_pages(found: Sequence[Card], per_page: int = PER_PAGE) -> list[list[Card]]:
    """The cards cut into printed pages, each page a grid that never breaks across paper."""
    return [list(found[i:i + per_page]) for i in range(0, len(found), per_page)]


def sheet_kind(value: str | None) -> str:
    return value if value in SHEET_KINDS else "all"
