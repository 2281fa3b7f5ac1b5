"""`GET /v1/suggestion-counts`: a year's suggestions counted by colour, status and lead unit.

Congress staff's overview shows these figures for their region; counting them in the database
spares reading every suggestion of the year (each with its whole text) to count it elsewhere. The
counts cover exactly what `GET /v1/suggestions` would list for the same token and year.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.suggestions import access
from services.suggestions.api import Readers, RuntimeDep
from services.suggestions.domain import Color
from services.suggestions.models import SuggestionRow
from services.suggestions.queries import is_carried, is_key, readable_by, row_color_is
from shared.errors import forbidden
from shared.problems import COMMON

router = APIRouter(prefix="/v1", tags=["suggestions"], responses=COMMON)
# More lead units than a county has; the largest first.
MAX_UNITS = 1000


class UnitCounts(BaseModel):
    unit_id: str = Field(description="the lead unit (主办单位)")
    total: int
    colors: dict[str, int] = Field(description="green, yellow, red, blue, grey: as each suggestion's `color`")


class Counts(BaseModel):
    year: int
    total: int = Field(description="on the year's list, carried-over ones included")
    colors: dict[str, int]
    statuses: dict[str, int] = Field(description="by status; a status no suggestion has is left out")
    key: int = Field(description="as `GET /v1/suggestions?key=true`")
    carried: int = Field(description="as `GET /v1/suggestions?carried=true` for the year")
    units: list[UnitCounts] = Field(description="by lead unit, the most suggestions first; unassigned ones are in "
                                                "no unit")


@router.get("/suggestion-counts", response_model=Counts,
            summary="A year's suggestions counted by colour, status and lead unit (staff's overview)")
async def suggestion_counts(who: Readers, runtime: RuntimeDep,
                            year: Annotated[int, Query(ge=2000, le=2100)]) -> Counts:
    if not access.has_scope(who):
        raise forbidden("登录凭证未注明代表、承办单位或管辖地区，无法统计建议。")
    now = datetime.now(UTC)
    where = (readable_by(who), SuggestionRow.years.contains([year]))
    by_color = [func.count().filter(row_color_is(c, now)) for c in Color]
    async with runtime.sessions()() as session:
        totals = (await session.execute(select(
            func.count(), func.count().filter(is_key()), func.count().filter(is_carried(year)), *by_color)
            .select_from(SuggestionRow).where(*where))).one()
        statuses = (await session.execute(select(SuggestionRow.status, func.count()).where(*where)
                                          .group_by(SuggestionRow.status))).all()
        units = (await session.execute(
            select(SuggestionRow.lead_unit_id, func.count(), *by_color)
            .where(*where, SuggestionRow.lead_unit_id.is_not(None))
            .group_by(SuggestionRow.lead_unit_id)
            .order_by(func.count().desc(), SuggestionRow.lead_unit_id).limit(MAX_UNITS))).all()

    def colors(values: tuple[int, ...]) -> dict[str, int]:
        return {c.value: int(n or 0) for c, n in zip(Color, values, strict=True)}

    return Counts(year=year, total=int(totals[0] or 0), key=int(totals[1] or 0), carried=int(totals[2] or 0),
                  colors=colors(tuple(totals[3:])), statuses={status: int(n) for status, n in statuses},
                  units=[UnitCounts(unit_id=u[0], total=int(u[1]), colors=colors(tuple(u[2:]))) for u in units])
