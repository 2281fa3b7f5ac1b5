"""What the console's scoring pages ask of the services, as the signed-in staff member (their token).

Scoring: the year's ranking a page at a time (live until published, frozen after), publishing it,
the talk list (约谈), the units' board, a deputy's year, the rules in force and a new rules version.
Suggestions: the names of the handling units. Every call carries the staff member's Bearer token,
so the pages see and do exactly what the services let congress staff of that region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, TypeAdapter

from services.web.deputy_calls import Score
from services.web.signed_calls import SignedInCalls
from services.web.upstreams import BoardRow, Model

# Rows per call when an export reads the whole ranking: scoring's largest page.
RANKING_BATCH = 1000


class RankRow(Model):
    deputy_id: str
    name: str = ""
    total: float
    rank: int
    stars: int = 0


@dataclass(frozen=True)
class RankingPage:
    rows: list[RankRow]
    total: int
    published_at: str | None
    ranked_at: str | None


class TalkRow(Model):
    deputy_id: str
    name: str = ""
    total: float
    rank: int
    stars: int = 0
    consecutive: bool = False


class Publication(Model):
    id: str
    year: int
    region_code: str
    level: str | None = None
    published_by: str = ""
    published_at: str
    deputies: int = 0


class RuleSetDoc(Model):
    region_code: str = ""
    effective_from: str
    version: int = 0
    rules: list[dict[str, Any]] = Field(default_factory=list)
    grading: dict[str, Any] = Field(default_factory=dict)
    board: dict[str, Any] = Field(default_factory=dict)


_RANK_ROWS = TypeAdapter(list[RankRow])
_TALKS = TypeAdapter(list[TalkRow])
_BOARD = TypeAdapter(list[BoardRow])


def rules_path(region_code: str) -> str:
    """Scoring names the rules everywhere `default`; a staff member whose region is everywhere edits those."""
    return f"/v1/rules/{region_code or 'default'}"


class ScoringCalls(SignedInCalls):
    def _params(self, year: int, region_code: str, level: str | None, **more: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"year": year, "region_code": region_code, **more}
        if level:
            params["level"] = level
        return params

    async def ranking(self, year: int, region_code: str, level: str | None, *, limit: int,
                      offset: int) -> RankingPage:
        response = await self.up.scoring.call("GET", "/v1/rankings", headers=self.headers(),
                                              params=self._params(year, region_code, level, limit=limit,
                                                                  offset=offset))
        assert response is not None
        count = response.headers.get("minyi-total-count", "")
        rows = _RANK_ROWS.validate_python(response.json())
        return RankingPage(rows=rows, total=int(count) if count.isdigit() else offset + len(rows),
                           published_at=response.headers.get("minyi-published-at"),
                           ranked_at=response.headers.get("minyi-ranked-at"))

    async def whole_ranking(self, year: int, region_code: str, level: str | None, most: int) -> RankingPage:
        """Every row (at most `most`), for an export."""
        first = await self.ranking(year, region_code, level, limit=min(RANKING_BATCH, most), offset=0)
        rows = list(first.rows)
        while len(rows) < min(first.total, most):
            page = await self.ranking(year, region_code, level, limit=min(RANKING_BATCH, most - len(rows)),
                                      offset=len(rows))
            if not page.rows:
                break
            rows += page.rows
        return RankingPage(rows=rows, total=first.total, published_at=first.published_at, ranked_at=first.ranked_at)

    async def publish(self, year: int, region_code: str, level: str | None) -> Publication:
        body = await self.up.scoring.json("POST", "/v1/rankings/publications", headers=self.headers(),
                                          json={"year": year, "region_code": region_code, "level": level})
        return Publication.model_validate(body)

    async def talks(self, year: int, region_code: str, level: str | None) -> list[TalkRow]:
        return _TALKS.validate_python(await self.up.scoring.json(
            "GET", "/v1/talks", headers=self.headers(), params=self._params(year, region_code, level)))

    async def board(self, year: int, region_code: str) -> list[BoardRow]:
        return _BOARD.validate_python(await self.up.scoring.json(
            "GET", "/v1/units/board", headers=self.headers(), params={"year": year, "region_code": region_code}))

    async def score(self, deputy_id: str, year: int) -> Score:
        body = await self.up.scoring.json("GET", f"/v1/deputies/{deputy_id}/score", headers=self.headers(),
                                          params={"year": year})
        return Score.model_validate(body)

    async def rules(self, region_code: str, on: str | None = None) -> RuleSetDoc:
        body = await self.up.scoring.json("GET", rules_path(region_code), headers=self.headers(),
                                          params={"on": on} if on else None)
        return RuleSetDoc.model_validate(body)

    async def put_rules(self, region_code: str, doc: Mapping[str, Any]) -> RuleSetDoc:
        body = await self.up.scoring.json("PUT", rules_path(region_code), headers=self.headers(),
                                          json=dict(doc))
        return RuleSetDoc.model_validate(body)
