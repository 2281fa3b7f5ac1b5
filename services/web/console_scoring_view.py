"""What the console's scoring pages show, worked out from scoring's answers. Pure.

The filters kept in the URL (region, year, level, page), the ranking's and the talk list's lines,
the words for the publication's state, and the rows of the exports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from services.web.console_scoring_calls import RankRow, TalkRow
from services.web.stats import points_text, stars_text
from services.web.words import LEVEL

PAGE_SIZE = 50
# The talk list on the page; a province's bottom share can be hundreds, and the export holds them all.
TALKS_SHOWN = 50
# An export holds at most this many deputies: more than any province's deputies at every level.
EXPORT_MAX = 20_000
YEARS_BACK = 5
REGION_CODE = re.compile(r"^\d{2,12}$")
DEPUTY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The levels scoring ranks by, in identity's names (scoring still takes its older `city` too).
LEVELS = {key: LEVEL[key] for key in ("national", "provincial", "municipal", "county", "township")}
DONE = {"published": "排名已发布并冻结，公开页面一分钟内显示。"}


@dataclass(frozen=True)
class Filters:
    region_code: str  # "" until one is chosen (a staff member whose region is everywhere)
    year: int
    level: str | None = None
    page: int = 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def params(self, **changes: object) -> dict[str, str]:
        values: dict[str, object] = {"region_code": self.region_code, "year": self.year, "level": self.level,
                                     "page": self.page, **changes}
        return {k: str(v) for k, v in values.items() if v not in (None, "") and not (k == "page" and v == 1)}

    def query(self, **changes: object) -> str:
        """This page's URL query with `changes` (page=…, level=None …): filters stay in the URL."""
        return urlencode(self.params(**changes))

    @property
    def level_label(self) -> str:
        return LEVELS.get(self.level or "", "")


def within(own_region: str, code: str) -> bool:
    """A region the staff member may choose: theirs or one inside it. Scoring checks again."""
    return bool(REGION_CODE.match(code)) and code.startswith(own_region)


def _number(text: str, low: int, high: int) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and low <= int(text) <= high else None


def parse_filters(query: Mapping[str, str], own_region: str, this_year: int) -> Filters:
    """Filters from the URL; a value that is not one of the choices falls back to the default rather
    than being refused, so an old bookmark still opens the page."""
    asked = (query.get("region_code") or "").strip()
    region = asked if within(own_region, asked) else (own_region if REGION_CODE.match(own_region) else "")
    year = _number(query.get("year") or "", 2000, 2100) or this_year
    level = query.get("level") or None
    page = _number(query.get("page") or "", 1, 10_000) or 1
    return Filters(region_code=region, year=year, level=level if level in LEVELS else None, page=page)


def years(this_year: int) -> list[int]:
    return list(range(this_year, this_year - YEARS_BACK - 1, -1))


def public_link(f: Filters) -> str:
    """The public board's page of this ranking, where citizens see it once it is published."""
    params = {"region_code": f.region_code, "year": str(f.year)}
    if f.level:
        params["level"] = f.level
    return "/public/deputies?" + urlencode(params)


@dataclass(frozen=True)
class RankLine:
    rank: int
    deputy_id: str
    name: str
    points: str
    stars: int
    stars_text: str


def rank_lines(rows: Sequence[RankRow]) -> list[RankLine]:
    return [RankLine(r.rank, r.deputy_id, r.name or "（未登记姓名）", points_text(r.total), r.stars,
                     stars_text(r.stars)) for r in rows]


@dataclass(frozen=True)
class TalkLine:
    rank: int
    deputy_id: str
    name: str
    points: str
    consecutive: bool


def talk_lines(rows: Sequence[TalkRow]) -> list[TalkLine]:
    """The talk list, those at the bottom two years running first (they are the ones to act on)."""
    ordered = sorted(rows, key=lambda r: (not r.consecutive, r.rank, r.deputy_id))
    return [TalkLine(r.rank, r.deputy_id, r.name or "（未登记姓名）", points_text(r.total), r.consecutive)
            for r in ordered]


def pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


# ---- exports ----------------------------------------------------------------------------------

RANKING_HEADERS = ("名次", "代表编号", "姓名", "总积分", "星级")
TALK_HEADERS = ("名次", "代表编号", "姓名", "总积分", "是否连续两年处于末位")


def ranking_rows(rows: Sequence[RankRow]) -> list[list[str | int]]:
    return [[r.rank, r.deputy_id, r.name, points_text(r.total), r.stars] for r in rows]


def talk_rows(rows: Sequence[TalkRow]) -> list[list[str | int]]:
    return [[line.rank, line.deputy_id, line.name, line.points, "是" if line.consecutive else "否"]
            for line in talk_lines(rows)]


def export_name(what: str, f: Filters, region_name: str | None) -> str:
    """履职积分排名-2026-演示区-县（区）人大代表: what, when, where and which level, for the file's name."""
    parts = [what, str(f.year), region_name or f.region_code]
    if f.level:
        parts.append(LEVELS[f.level])
    return "-".join(parts)
