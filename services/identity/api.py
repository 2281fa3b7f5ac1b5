"""HTTP API of the identity service (paths under /v1, see docs/integrators.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import code_store, domain
from services.identity.models import Deputy, Region, Station
from shared.auth import Principal, require_region, require_roles
from shared.errors import invalid, not_found
from shared.inputs import StorableText
from shared.pii import blind_index, decrypt, encrypt
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="opaque id chosen by the caller")]
RegionCodePath = Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{6,40}$", description="GB/T 2260 code or grid id")]

Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles("admin", "npc_staff", "station_staff", "integration"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class Strict(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegionIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    parent_code: str | None = Field(default=None, max_length=40)


class RegionOut(BaseModel):
    code: str
    name: str
    level: str
    parent_code: str | None


class StationIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: domain.StationKind
    region_code: str = Field(min_length=6, max_length=40)


class StationOut(BaseModel):
    id: str
    name: str
    kind: str
    region_code: str
    version: int


class DeputyIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    level: domain.DeputyLevel
    region_code: str = Field(min_length=6, max_length=40)
    station_ids: list[str] = Field(default_factory=list, max_length=50)
    district_id: str | None = Field(default=None, max_length=64)
    groups: list[str] = Field(default_factory=list, max_length=20, description="代表小组、专业小组")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{7,20}$")


class DeputyOut(BaseModel):
    id: str
    name: str
    level: str
    region_code: str
    station_ids: list[str]
    district_id: str | None
    groups: list[str]
    phone_masked: str | None
    version: int


async def _region(session: AsyncSession, code: str, field: str) -> Region:
    region = await session.get(Region, code)
    if region is None:
        raise invalid(field, "地区不存在，请先登记该地区")
    return region


@router.put("/regions/{code}", response_model=RegionOut, summary="Create or change an administrative region",
            responses={201: {"model": RegionOut, "description": "created"},
                       **problems((403, "not an admin, or the region or a parent it did not have before is "
                                        "outside the caller's region"))})
async def put_region(code: RegionCodePath, body: RegionIn, who: Admin, runtime: RuntimeDep,
                     response: Response) -> RegionOut:
    try:
        parsed = domain.parse_region_code(code)
    except domain.InvalidRegion as exc:
        raise invalid("code", exc.message) from exc
    try:
        parent = domain.parse_region_code(body.parent_code) if body.parent_code else None
        domain.check_parent(parsed, parent)
    except domain.InvalidRegion as exc:
        raise invalid("parent_code" if body.parent_code else "code", exc.message) from exc
    require_region(who, code)
    async with runtime.transaction() as session:
        if body.parent_code:
            await _region(session, body.parent_code, "parent_code")
        region = await session.get(Region, code, with_for_update=True)
        before = domain.region_state(region.name, region.parent_code) if region is not None else None
        after = domain.region_state(body.name, body.parent_code)
        if before == after:
            return RegionOut(code=code, name=body.name, level=parsed.level, parent_code=body.parent_code)
        if body.parent_code and (before is None or before["parent_code"] != body.parent_code):
            # Hanging a region under a parent changes the parent's tree too: a county's admin may
            # rename their county, not move it under another city.
            require_region(who, body.parent_code)
        if region is None:
            region = Region(code=code, name=body.name, level=parsed.level, parent_code=body.parent_code)
            session.add(region)
            response.status_code = 201
        else:
            region.name, region.parent_code = body.name, body.parent_code
        await runtime.record_audit(session, who, "region.changed", subject_type="region", subject_id=code,
                                   region_code=code, detail={"before": before, "after": after})
    return RegionOut(code=code, name=body.name, level=parsed.level, parent_code=body.parent_code)


@router.get("/regions/{code}", response_model=RegionOut, summary="A region", responses=problems(404))
async def get_region(code: RegionCodePath, who: Staff, runtime: RuntimeDep) -> RegionOut:
    require_region(who, code)
    async with runtime.database.sessions() as session:
        region = await session.get(Region, code)
    if region is None:
        raise not_found("地区不存在。")
    return RegionOut(code=region.code, name=region.name, level=region.level, parent_code=region.parent_code)


@router.put("/stations/{station_id}", response_model=StationOut,
            summary="Create or change a liaison station (联络站、代表之家 …)",
            responses={201: {"model": StationOut, "description": "created"}})
async def put_station(station_id: EntityId, body: StationIn, who: Admin, runtime: RuntimeDep,
                      response: Response) -> StationOut:
    require_region(who, body.region_code)
    async with runtime.transaction() as session:
        await _region(session, body.region_code, "region_code")
        station = await session.get(Station, station_id, with_for_update=True)
        before = None
        if station is None:
            station = Station(id=station_id, name=body.name, kind=body.kind, region_code=body.region_code, version=1)
            session.add(station)
            response.status_code = 201
        else:
            require_region(who, station.region_code)
            before = domain.station_state(station.name, station.kind, station.region_code)
            if before == domain.station_state(body.name, body.kind, body.region_code):
                return _station_out(station)
            station.name, station.kind, station.region_code = body.name, body.kind, body.region_code
            station.version += 1
        await code_store.sync_target(runtime, session, "station", station.id, station.name, station.region_code)
        await runtime.emit(session, "identity.station.updated",
                           domain.station_event(station.id, station.name, station.kind, station.region_code,
                                                station.version), subject=station.id)
        await runtime.record_audit(session, who, "station.changed", subject_type="station", subject_id=station.id,
                                   region_code=station.region_code,
                                   detail={"before": before, "after": domain.station_state(
                                       station.name, station.kind, station.region_code)})
        return _station_out(station)


@router.get("/stations/{station_id}", response_model=StationOut, summary="A station", responses=problems(404))
async def get_station(station_id: EntityId, who: Staff, runtime: RuntimeDep) -> StationOut:
    async with runtime.database.sessions() as session:
        station = await session.get(Station, station_id)
    if station is None or not who.can_see(station.region_code):
        raise not_found("联络站不存在。")
    return _station_out(station)


def _station_out(station: Station) -> StationOut:
    return StationOut(id=station.id, name=station.name, kind=station.kind, region_code=station.region_code,
                      version=station.version)


async def _check_stations(session: AsyncSession, who: Principal, wanted: list[str], current: list[str]) -> None:
    """The stations a deputy is attached to or detached from exist and lie in the caller's region.

    Attaching a deputy to a station lets the deputy read, and unmask the reporters of, what
    citizens file there: only the admin of the station's region may make or break that link.
    Links the change leaves as they are need no such right.
    """
    touched = sorted(set(wanted) ^ set(current))
    if not touched:
        return
    regions: dict[str, str] = {row.id: row.region_code for row in await session.execute(
        select(Station.id, Station.region_code).where(Station.id.in_(touched)))}
    added = set(wanted) - set(current)
    # One message for both: the answer must not tell whether another region's station exists.
    unknown = [s for s in touched if s in added and (s not in regions or not who.can_see(regions[s]))]
    if unknown:
        raise invalid("station_ids", f"联络站不存在或不在您的管辖范围内：{', '.join(unknown)}")
    kept_out = [s for s in touched if s not in added and s in regions and not who.can_see(regions[s])]
    if kept_out:
        raise invalid("station_ids", f"不能解除不在您管辖范围内的联络站：{', '.join(kept_out)}")


@router.put("/deputies/{deputy_id}", response_model=DeputyOut, summary="Create or change a deputy",
            responses={201: {"model": DeputyOut, "description": "created"}})
async def put_deputy(deputy_id: EntityId, body: DeputyIn, who: Admin, runtime: RuntimeDep,
                     response: Response) -> DeputyOut:
    require_region(who, body.region_code)
    keyring = runtime.keyring
    phone_index = phone_blob = None
    if body.phone:
        phone_index = blind_index(keyring, body.phone, kind="phone")
    async with runtime.transaction() as session:
        await _region(session, body.region_code, "region_code")
        deputy = await session.get(Deputy, deputy_id, with_for_update=True)
        if deputy is not None:
            require_region(who, deputy.region_code)
        station_ids = sorted(set(body.station_ids))
        groups = sorted(set(body.groups))
        after = domain.deputy_state(body.name, body.level, body.region_code, station_ids, body.district_id, groups)
        before = None
        if deputy is not None:
            before = domain.deputy_state(deputy.name, deputy.level, deputy.region_code, deputy.station_ids,
                                         deputy.district_id, deputy.groups)
            if before == after and deputy.phone_index == phone_index:
                return _deputy_out(deputy, body.phone)
        await _check_stations(session, who, station_ids, list(deputy.station_ids) if deputy is not None else [])
        phone_changed = deputy.phone_index != phone_index if deputy is not None else phone_index is not None
        if body.phone:
            phone_blob = encrypt(keyring, body.phone, context="identity.deputy.phone")
        if deputy is None:
            deputy = Deputy(id=deputy_id, version=1)
            session.add(deputy)
            response.status_code = 201
        else:
            deputy.version += 1
        deputy.name, deputy.level, deputy.region_code = body.name, body.level, body.region_code
        deputy.station_ids, deputy.district_id, deputy.groups = station_ids, body.district_id, groups
        deputy.phone_encrypted, deputy.phone_index = phone_blob, phone_index
        await code_store.sync_target(runtime, session, "deputy", deputy.id, deputy.name, deputy.region_code)
        await runtime.emit(session, "identity.deputy.updated",
                           domain.deputy_event(deputy.id, deputy.name, deputy.level, deputy.region_code,
                                               deputy.station_ids, deputy.district_id, deputy.groups,
                                               deputy.version), subject=deputy.id)
        # The phone is personal data: the log says only that it changed.
        await runtime.record_audit(session, who, "deputy.changed", subject_type="deputy", subject_id=deputy.id,
                                   region_code=deputy.region_code,
                                   detail={"before": before, "after": after, "phone_changed": phone_changed})
        return _deputy_out(deputy, body.phone)


@router.get("/deputies/{deputy_id}", response_model=DeputyOut, summary="A deputy", responses=problems(404))
async def get_deputy(deputy_id: EntityId, who: Staff, runtime: RuntimeDep) -> DeputyOut:
    async with runtime.database.sessions() as session:
        deputy = await session.get(Deputy, deputy_id)
    if deputy is None or not who.can_see(deputy.region_code):
        raise not_found("代表不存在。")
    phone = decrypt(runtime.keyring, deputy.phone_encrypted, context="identity.deputy.phone") \
        if deputy.phone_encrypted else None
    return _deputy_out(deputy, phone)


def _deputy_out(deputy: Deputy, phone: str | None) -> DeputyOut:
    return DeputyOut(id=deputy.id, name=deputy.name, level=deputy.level, region_code=deputy.region_code,
                     station_ids=list(deputy.station_ids), district_id=deputy.district_id,
                     groups=list(deputy.groups), phone_masked=domain.mask_phone(phone) if phone else None,
                     version=deputy.version)



