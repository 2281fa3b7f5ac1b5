"""HTTP API of QR codes (亮码): issue, revoke and print a deputy's or station's code; resolve a code."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import code_details, code_store, domain, qr
from services.identity.codes import CodeKind
from services.identity.models import Deputy, Station
from shared.auth import Principal, require_region, require_roles
from shared.errors import conflict, not_found
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="opaque id chosen by the caller")]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles("admin", "npc_staff", "station_staff", "integration"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="a retried POST with the same key gets the same code")]

_UNKNOWN = {"deputy": "代表不存在。", "station": "联络站不存在。"}
_NO_CODE = {"deputy": "该代表没有有效的亮码。", "station": "该联络站没有有效的亮码。"}
_PNG = {200: {"content": {"image/png": {}}, "description": "the code with the name under it, 600 px wide"},
        **problems((404, "no live code, or outside the caller's region"))}
_SVG = {200: {"content": {"image/svg+xml": {}}, "description": "the code with the name under it"},
        **problems((404, "no live code, or outside the caller's region"))}
_ISSUED = problems((404, "unknown deputy or station"),
                   (409, "the code issued with this Idempotency-Key was revoked or replaced"))
_REVOKED = problems((404, "unknown deputy or station, or no live code"))


class CodeOut(BaseModel):
    code: str = Field(description="what the QR encodes at the end of `url`; reveals nothing about its owner")
    url: str = Field(description="the address a scan opens: `{public_base_url}/q/{code}`")


class StationRef(BaseModel):
    id: str
    name: str
    kind: domain.StationKind


class DeputyRef(BaseModel):
    id: str
    name: str
    level: domain.DeputyLevel


class ResolvedCode(BaseModel):
    kind: CodeKind
    id: str
    name: str
    region_code: str
    region_name: str | None = Field(description="the name of `region_code`; null when that region is not registered")
    level: domain.DeputyLevel | None = Field(description="a deputy's level; null for a station")
    stations: list[StationRef] = Field(description="a deputy's stations; [] for a station")
    station_kind: domain.StationKind | None = Field(description="a station's kind; null for a deputy")
    deputies: list[DeputyRef] = Field(description="the deputies attached to a station, by level (national first) "
                                                  "then name; [] for a deputy")


async def _target(session: AsyncSession, kind: CodeKind, target_id: str) -> tuple[str, str]:
    """Name and region of the deputy or station, locked until the transaction ends."""
    model = Deputy if kind == "deputy" else Station
    target = await session.get(model, target_id, with_for_update=True)
    if target is None:
        raise not_found(_UNKNOWN[kind])
    return target.name, target.region_code


async def _issue(kind: CodeKind, target_id: str, who: Principal, runtime: Runtime, key: str | None) -> CodeOut:
    book = code_store.codebook(runtime)
    async with runtime.transaction() as session:
        name, region_code = await _target(session, kind, target_id)
        require_region(who, region_code)
        if key:
            earlier = await code_store.issued_with_key(session, kind, target_id, key)
            if earlier is not None:
                if earlier.revoked_at is not None:
                    raise conflict("该幂等键签发的亮码已被撤销或重新签发，请使用新的幂等键。")
                return CodeOut(code=earlier.code, url=book.url(earlier.code))
        code = await code_store.issue(runtime, session, kind, target_id, name, region_code, issue_key=key)
        # The code itself is a bearer secret of sorts (it files reports in the owner's name): not recorded.
        await runtime.record_audit(session, who, "code.issued", subject_type=kind, subject_id=target_id,
                                   region_code=region_code)
    return CodeOut(code=code, url=book.url(code))


async def _revoke(kind: CodeKind, target_id: str, who: Principal, runtime: Runtime) -> Response:
    async with runtime.transaction() as session:
        _, region_code = await _target(session, kind, target_id)
        require_region(who, region_code)
        if not await code_store.revoke(runtime, session, kind, target_id):
            raise not_found(_NO_CODE[kind])
        await runtime.record_audit(session, who, "code.revoked", subject_type=kind, subject_id=target_id,
                                   region_code=region_code)
    return Response(status_code=204)


async def _live(kind: CodeKind, target_id: str, who: Principal, runtime: Runtime) -> tuple[str, str]:
    """URL and name of the live code, for a caller who may see its region."""
    async with runtime.database.sessions() as session:
        row = await code_store.live_code(session, kind, target_id)
    if row is None or not who.can_see(row.region_code):
        raise not_found(_NO_CODE[kind])
    return code_store.codebook(runtime).url(row.code), row.name


async def _svg(kind: CodeKind, target_id: str, who: Principal, runtime: Runtime) -> Response:
    url, name = await _live(kind, target_id, who, runtime)
    return Response(qr.render_svg(url, name), media_type="image/svg+xml; charset=utf-8",
                    headers={"Cache-Control": "no-store",
                             "Content-Disposition": f'inline; filename="{kind}-{target_id}-code.svg"'})


async def _png(kind: CodeKind, target_id: str, who: Principal, runtime: Runtime) -> Response:
    url, name = await _live(kind, target_id, who, runtime)
    png = await asyncio.to_thread(qr.render_png, url, name, runtime.settings.label_font_file)
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "no-store",
                             "Content-Disposition": f'inline; filename="{kind}-{target_id}-code.png"'})


@router.post("/deputies/{deputy_id}/code", response_model=CodeOut, status_code=201, responses=_ISSUED,
             summary="Issue the deputy's QR code (亮码), revoking the previous one")
async def issue_deputy_code(deputy_id: EntityId, who: Admin, runtime: RuntimeDep,
                            idempotency_key: IdempotencyKey = None) -> CodeOut:
    return await _issue("deputy", deputy_id, who, runtime, idempotency_key)


@router.post("/stations/{station_id}/code", response_model=CodeOut, status_code=201, responses=_ISSUED,
             summary="Issue the station's QR code (亮码), revoking the previous one")
async def issue_station_code(station_id: EntityId, who: Admin, runtime: RuntimeDep,
                             idempotency_key: IdempotencyKey = None) -> CodeOut:
    return await _issue("station", station_id, who, runtime, idempotency_key)


@router.delete("/deputies/{deputy_id}/code", status_code=204, response_class=Response, responses=_REVOKED,
               summary="Revoke the deputy's QR code without issuing another")
async def revoke_deputy_code(deputy_id: EntityId, who: Admin, runtime: RuntimeDep) -> Response:
    return await _revoke("deputy", deputy_id, who, runtime)


@router.delete("/stations/{station_id}/code", status_code=204, response_class=Response, responses=_REVOKED,
               summary="Revoke the station's QR code without issuing another")
async def revoke_station_code(station_id: EntityId, who: Admin, runtime: RuntimeDep) -> Response:
    return await _revoke("station", station_id, who, runtime)


@router.get("/deputies/{deputy_id}/code.svg", response_class=Response, responses=_SVG,
            summary="The deputy's QR code with the name under it, as SVG for printing")
async def deputy_code_svg(deputy_id: EntityId, who: Staff, runtime: RuntimeDep) -> Response:
    return await _svg("deputy", deputy_id, who, runtime)


@router.get("/deputies/{deputy_id}/code.png", response_class=Response, responses=_PNG,
            summary="The deputy's QR code with the name under it, as PNG for printing")
async def deputy_code_png(deputy_id: EntityId, who: Staff, runtime: RuntimeDep) -> Response:
    return await _png("deputy", deputy_id, who, runtime)


@router.get("/stations/{station_id}/code.svg", response_class=Response, responses=_SVG,
            summary="The station's QR code with the name under it, as SVG for printing")
async def station_code_svg(station_id: EntityId, who: Staff, runtime: RuntimeDep) -> Response:
    return await _svg("station", station_id, who, runtime)


@router.get("/stations/{station_id}/code.png", response_class=Response, responses=_PNG,
            summary="The station's QR code with the name under it, as PNG for printing")
async def station_code_png(station_id: EntityId, who: Staff, runtime: RuntimeDep) -> Response:
    return await _png("station", station_id, who, runtime)


@router.get("/codes/{code}", response_model=ResolvedCode, summary="What a scanned QR code leads to (no token)",
            description="The deputy or station behind the code, with what the citizen's page shows about it: "
                        "the region's name, a deputy's level and stations, a station's kind and deputies. "
                        "Nothing personal (no phone).",
            responses=problems((404, "forged, malformed or revoked code")))
async def resolve_code(code: str, runtime: RuntimeDep) -> ResolvedCode:
    found = await code_store.resolve(runtime, code)
    if found is None:
        raise not_found("亮码无效或已失效。")
    async with runtime.database.sessions() as session:
        more = await code_details.details(session, found)
    return ResolvedCode.model_validate({**found.as_dict(), **asdict(more)})
