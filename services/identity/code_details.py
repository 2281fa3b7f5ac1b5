"""What a citizen who scanned a code sees besides its owner: the region's name, a deputy's level
and stations, a station's kind and deputies. Read fresh on every scan, not cached like the code
itself, since a deputy joining a station changes none of the code's own rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.code_store import Resolution
from services.identity.domain import deputy_sort_key
from services.identity.models import Deputy, Region, Station


@dataclass(frozen=True)
class StationRef:
    id: str
    name: str
    kind: str


@dataclass(frozen=True)
class DeputyRef:
    id: str
    name: str
    level: str


@dataclass(frozen=True)
class Details:
    region_name: str | None = None
    level: str | None = None
    stations: list[StationRef] = field(default_factory=list)
    station_kind: str | None = None
    deputies: list[DeputyRef] = field(default_factory=list)


async def details(session: AsyncSession, found: Resolution) -> Details:
    """Nothing personal: names, levels and kinds only (a deputy's phone stays in its table)."""
    region_name = await session.scalar(select(Region.name).where(Region.code == found.region_code))
    if found.kind == "deputy":
        deputy = (await session.execute(
            select(Deputy.level, Deputy.station_ids).where(Deputy.id == found.id))).one_or_none()
        if deputy is None:
            return Details(region_name=region_name)
        stations = (await session.execute(
            select(Station.id, Station.name, Station.kind).where(Station.id.in_(list(deputy.station_ids or [])))
            .order_by(Station.id))).all()
        return Details(region_name=region_name, level=deputy.level,
                       stations=[StationRef(s.id, s.name, s.kind) for s in stations])
    kind = await session.scalar(select(Station.kind).where(Station.id == found.id))
    rows = (await session.execute(
        select(Deputy.id, Deputy.name, Deputy.level).where(Deputy.station_ids.contains([found.id])))).all()
    deputies = sorted((DeputyRef(d.id, d.name, d.level) for d in rows),
                      key=lambda d: deputy_sort_key(d.level, d.name, d.id))
    return Details(region_name=region_name, station_kind=kind, deputies=deputies)
