"""Lists of a region's deputies and stations, for the people who pick them at work.

A deputy looks for co-signers of a suggestion by name; a station clerk picks whom a paper letter is
for. Both need the names of colleagues, never their phones: each row carries what anyone working
in the region may see (id, name, level, region, stations). Staff also get the live QR code (亮码),
which is printed on posters anyway and which they can already draw through `…/code.svg`: intake
takes a report for a deputy or a station by that code.

Keyset paged by (name, id), so a page never shifts when a deputy is added meanwhile; the cursor is
opaque to callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.api import RuntimeDep
from services.identity.models import Code, Deputy, Station
from shared import cursors
from shared.auth import Principal, require_region, require_roles
from shared.errors import invalid
from shared.inputs import MESSAGE, storable
from shared.problems import COMMON, problems

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

Colleague = Annotated[Principal, Depends(require_roles("deputy", "station_staff", "npc_staff", "admin"))]
MAX_LIMIT = 100
MAX_CURSOR = cursors.MAX_CURSOR_CHARS
# Roles that get each row's live QR code; a deputy needs names only.
CODE_READERS = ("station_staff", "npc_staff", "admin")

RegionQuery = Annotated[str | None, Query(pattern=r"^[0-9A-Za-z-]{2,40}$", description=(
    "rows whose region code starts with it; inside the caller's region; without it, the caller's region"))]
NameQuery = Annotated[str | None, Query(max_length=50, description="part of the name, any case")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
AfterQuery = Annotated[str | None, Query(max_length=MAX_CURSOR, description="the `next` of the page before, "
                                                                             "with the same filters")]


# Not `StationRef`: the code resolver's has the kind too, and two schemas of one name in a document make
# client generators drop one of them.
class AttachedStation(BaseModel):
    """A station a listed deputy is attached to."""

    id: str
    name: str


class DeputyListed(BaseModel):
    id: str
    name: str
    level: str
    region_code: str
    stations: list[AttachedStation] = Field(description="the stations the deputy is attached to, in the caller's "
                                                        "region")
    code: str | None = Field(default=None, description="the live QR code; for station staff, congress staff "
                                                       "and admins only, null when none is issued")


class StationListed(BaseModel):
    id: str
    name: str
    kind: str
    region_code: str
    code: str | None = Field(default=None, description="as for deputies")


class DeputyList(BaseModel):
    items: list[DeputyListed]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


class StationList(BaseModel):
    items: list[StationListed]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


def _scope(who: Principal, region_code: str | None) -> str:
    """The region prefix to list: the asked one if the caller may see it, else the caller's own."""
    region = region_code if region_code is not None else who.region
    require_region(who, region)
    return region


def _paged(query: Select[Any], model: type[Deputy] | type[Station], q: str | None, after: str | None,
           limit: int) -> Select[Any]:
    words = (q or "").strip()
    if words:
        if not storable(words):
            raise invalid("q", MESSAGE)
        query = query.where(model.name.icontains(words, autoescape=True))
    if after is not None:
        try:
            name, ident = cursors.decode(after, 2)
        except cursors.BadCursor:
            raise invalid("after", "翻页参数无效，请从第一页重新开始。") from None
        query = query.where(tuple_(model.name, model.id) > tuple_(name, ident))
    return query.order_by(model.name, model.id).limit(limit + 1)


async def _codes(session: AsyncSession, kind: str, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Code.target_id, Code.code).where(
        and_(Code.kind == kind, Code.target_id.in_(ids), Code.revoked_at.is_(None))))
    return {r.target_id: r.code for r in rows}


@router.get("/deputies", response_model=DeputyList, summary="The deputies of a region, by name (no phones)",
            responses=problems((403, "the region is outside the caller's")))
async def list_deputies(who: Colleague, runtime: RuntimeDep, region_code: RegionQuery = None, q: NameQuery = None,
                        limit: LimitQuery = 20, after: AfterQuery = None) -> DeputyList:
    region = _scope(who, region_code)
    query = _paged(select(Deputy).where(Deputy.region_code.startswith(region, autoescape=True)), Deputy, q, after,
                   limit)
    async with runtime.database.sessions() as session:
        deputies = list((await session.scalars(query)).all())
        page = deputies[:limit]
        station_ids = sorted({s for d in page for s in d.station_ids})
        stations = {r.id: (r.name, r.region_code) for r in await session.execute(
            select(Station.id, Station.name, Station.region_code).where(Station.id.in_(station_ids)))} \
            if station_ids else {}
        codes = await _codes(session, "deputy", [d.id for d in page]) if who.has_any(CODE_READERS) else {}
    items = [DeputyListed(
        id=d.id, name=d.name, level=d.level, region_code=d.region_code, code=codes.get(d.id),
        # A deputy of this region may also sit at a station of the next county: that one is not named here.
        stations=[AttachedStation(id=s, name=stations[s][0]) for s in d.station_ids
                  if s in stations and who.can_see(stations[s][1])]) for d in page]
    last = page[-1] if len(deputies) > limit else None
    return DeputyList(items=items, next=cursors.encode(last.name, last.id) if last is not None else None)


@router.get("/stations", response_model=StationList, summary="The liaison stations of a region, by name",
            responses=problems((403, "the region is outside the caller's")))
async def list_stations(who: Colleague, runtime: RuntimeDep, region_code: RegionQuery = None, q: NameQuery = None,
                        limit: LimitQuery = 20, after: AfterQuery = None) -> StationList:
    region = _scope(who, region_code)
    query = _paged(select(Station).where(Station.region_code.startswith(region, autoescape=True)), Station, q, after,
                   limit)
    async with runtime.database.sessions() as session:
        stations = list((await session.scalars(query)).all())
        page = stations[:limit]
        codes = await _codes(session, "station", [s.id for s in page]) if who.has_any(CODE_READERS) else {}
    items = [StationListed(id=s.id, name=s.name, kind=s.kind, region_code=s.region_code, code=codes.get(s.id))
             for s in page]
    last = page[-1] if len(stations) > limit else None
    return StationList(items=items, next=cursors.encode(last.name, last.id) if last is not None else None)

