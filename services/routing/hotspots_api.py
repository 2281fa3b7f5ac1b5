"""HTTP API of hotspots (共性事项): staff and deputies read them, staff correct the clustering, and
anyone may ask whether a matter is reported already (no token).

The public endpoints show a hotspot as a matter, never its reports: no content, no reporter, no
list of member reports; only the one report a citizen may support (its first), and the places
and words at least two of its reports name (`hotspot_life.shared_terms`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import hotspot_corrections, hotspot_life, hotspots
from services.routing.models import Hotspot, HotspotCorrection, HotspotReport
from services.routing.taxonomy import BY_CODE
from shared.auth import Principal, require_region, require_roles
from shared.client_source import source_of
from shared.errors import invalid, not_found
from shared.flood import FloodGuard
from shared.inputs import StorableText
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=COMMON)
public_router = APIRouter(prefix="/v1/public", tags=["public"], responses=problems(400, 422))

HotspotId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the hotspot's id")]
ReportId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
HotspotReaders = Annotated[Principal, Depends(require_roles("npc_staff", "deputy"))]
Staff = Annotated[Principal, Depends(require_roles("npc_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
State = Literal["open", "converted", "closed", "merged"]
FLOOD_KEY = "routing.hotspot_lookups"


class Strict(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HotspotOut(BaseModel):
    id: str
    region_code: str = Field(description="the narrowest region (grid, township or county) holding its reports")
    category: str = Field(description="the category most of its reports got")
    count: int
    keywords: list[str]
    report_ids: list[str]
    first_at: datetime
    last_at: datetime
    state: State
    supporters: int = Field(description="citizens who said \"me too\" (我也遇到) on one of its reports")
    places: list[str]
    category_counts: dict[str, int]
    topic_title: str | None = Field(description="the title of the suggestion its topic became")
    suggestion_id: str | None
    detected_at: datetime | None = Field(description="when it became a hotspot; null: a cluster below the threshold")


class MemberOut(BaseModel):
    report_id: str
    region_code: str
    category: str
    received_at: datetime
    similarity: float = Field(description=(
        "how sure placement was that the report belongs here, 0–1: the matcher's probability (the hand-made "
        "score where the report or the cluster had no meaning vector); 1 for the report that started the "
        "cluster and for reports staff moved"))
    placed_by: Literal["auto", "staff"]


class CorrectionOut(BaseModel):
    kind: str = Field(description="split, merge, convert or close")
    other_hotspot_id: str | None = Field(description="the hotspot split from or into, or merged with")
    report_ids: list[str]
    actor: str
    note: str | None
    at: datetime


class HotspotDetail(HotspotOut):
    merged_into: str | None
    close_note: str | None
    members: list[MemberOut]
    corrections: list[CorrectionOut]


def _out(hotspot: Hotspot, report_ids: list[str]) -> HotspotOut:
    return HotspotOut.model_validate(hotspots.summary(hotspot, report_ids))


async def _detail(session: AsyncSession, hotspot: Hotspot) -> HotspotDetail:
    members = list((await session.scalars(
        select(HotspotReport).where(HotspotReport.hotspot_id == hotspot.id)
        .order_by(HotspotReport.received_at, HotspotReport.report_id))).all())
    corrections = (await session.scalars(
        select(HotspotCorrection).where(or_(HotspotCorrection.hotspot_id == hotspot.id,
                                            HotspotCorrection.other_hotspot_id == hotspot.id))
        .order_by(HotspotCorrection.at, HotspotCorrection.id))).all()
    listed = hotspots.summary(hotspot, [m.report_id for m in members])
    return HotspotDetail.model_validate({
        **listed, "merged_into": hotspot.merged_into, "close_note": hotspot.close_note,
        "members": [MemberOut(report_id=m.report_id, region_code=m.region_code, category=m.category,
                              received_at=m.received_at, similarity=m.similarity,
                              placed_by="staff" if m.placed_by == "staff" else "auto") for m in members],
        # Seen from either side: the other hotspot is the one that is not this one.
        "corrections": [CorrectionOut(kind=c.kind, report_ids=list(c.report_ids), actor=c.actor, note=c.note, at=c.at,
                                      other_hotspot_id=c.hotspot_id if c.other_hotspot_id == hotspot.id
                                      else c.other_hotspot_id) for c in corrections],
    })


@router.get("/hotspots", response_model=list[HotspotOut], summary="Hotspots (共性事项), most recent first")
async def list_hotspots(who: HotspotReaders, runtime: RuntimeDep,
                        region_code: Annotated[str | None, Query(pattern=r"^[0-9]{2,12}$")] = None,
                        days: Annotated[int, Query(ge=1, le=3660, description="with a report in the last N days")] = 30,
                        category: Annotated[str | None, Query(max_length=40)] = None,
                        state: Annotated[State | None, Query(description="default: all but merged")] = None,
                        ) -> list[HotspotOut]:
    if category is not None and category not in BY_CODE:
        raise invalid("category", "未知的类别")
    scope = region_code or who.region
    if region_code is not None:
        require_region(who, region_code)
    since = datetime.now(UTC) - timedelta(days=days)
    query = (select(Hotspot).where(Hotspot.detected_at.is_not(None), Hotspot.last_at >= since)
             .order_by(Hotspot.last_at.desc(), Hotspot.id).limit(500))
    if scope:
        # A hotspot of a county shows to a township's staff too when its reports reach into the township.
        query = query.where(Hotspot.region_code.startswith(scope[:6], autoescape=True))
    if category:
        query = query.where(Hotspot.category == category)
    query = query.where(Hotspot.state == state) if state else query.where(Hotspot.state != hotspot_life.MERGED)
    async with runtime.sessions()() as session:
        found = [h for h in (await session.scalars(query)).all()
                 if not scope or h.region_code.startswith(scope) or scope.startswith(h.region_code)]
        members = await hotspots.member_ids(session, [h.id for h in found])
    return [_out(h, members[h.id]) for h in found]


@router.get("/hotspots/{hotspot_id}", response_model=HotspotDetail,
            summary="A hotspot with its reports, how each was placed, and the corrections made to it",
            responses=problems((404, "unknown, or outside the caller's region")))
async def get_hotspot(hotspot_id: HotspotId, who: HotspotReaders, runtime: RuntimeDep) -> HotspotDetail:
    async with runtime.sessions()() as session:
        hotspot = await session.get(Hotspot, hotspot_id)
        if hotspot is None or not hotspot_corrections.visible(who, hotspot.region_code):
            raise not_found(hotspot_corrections.UNKNOWN)
        return await _detail(session, hotspot)


Note = Annotated[str | None, Field(default=None, max_length=2000)]


class SplitIn(Strict):
    report_ids: list[ReportId] = Field(min_length=1, max_length=500,
                                       description="the member reports that are another matter")
    note: Note = None


class MergeIn(Strict):
    hotspot_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                            description="the hotspot whose reports move into this one")
    note: Note = None


class ClosureIn(Strict):
    note: str = Field(min_length=2, max_length=2000, description="why; told to the citizens of an announced hotspot")


@router.post("/hotspots/{hotspot_id}/split", status_code=201, response_model=HotspotDetail,
             summary="Move some reports of a hotspot into a new one (staff); answers the new one",
             responses=problems((404, "unknown, or outside the caller's region"),
                                (409, "closed or merged"),
                                (422, "a report that is not a member, or every member")))
async def split_hotspot(hotspot_id: HotspotId, body: SplitIn, who: Staff, runtime: RuntimeDep) -> HotspotDetail:
    async with runtime.transaction() as session:
        source = await hotspot_corrections.for_staff(session, who, hotspot_id)
        new = await hotspot_corrections.split(runtime, session, who, source, body.report_ids, body.note,
                                              datetime.now(UTC))
        return await _detail(session, new)


@router.post("/hotspots/{hotspot_id}/merge", response_model=HotspotDetail,
             summary="Move every report of another hotspot into this one (staff); the other is then merged",
             responses=problems((404, "unknown, or outside the caller's region"),
                                (409, "into itself, or either one closed or merged, or both converted")))
async def merge_hotspot(hotspot_id: HotspotId, body: MergeIn, who: Staff, runtime: RuntimeDep) -> HotspotDetail:
    async with runtime.transaction() as session:
        merged = await hotspot_corrections.merge(runtime, session, who, hotspot_id, body.hotspot_id, body.note,
                                                 datetime.now(UTC))
        return await _detail(session, merged)


@router.post("/hotspots/{hotspot_id}/closure", response_model=HotspotDetail,
             summary="Close a hotspot that is wrong or not worth a supervision topic (staff)",
             description="For clusters the clustering got wrong, or not worth a supervision topic. A hotspot's "
                         "topic is staff's to close in suggestions (`POST /v1/supervision-topics/{id}/closure`), "
                         "which closes the hotspot too; one converted into a suggestion closes with it.",
             responses=problems((404, "unknown, or outside the caller's region"),
                                (409, "converted, closed or merged already")))
async def close_hotspot(hotspot_id: HotspotId, body: ClosureIn, who: Staff, runtime: RuntimeDep) -> HotspotDetail:
    async with runtime.transaction() as session:
        hotspot = await hotspot_corrections.for_staff(session, who, hotspot_id)
        closed = await hotspot_corrections.close(runtime, session, who, hotspot, body.note, datetime.now(UTC))
        return await _detail(session, closed)


# ---- public ------------------------------------------------------------------------------------


def _flood(runtime: Runtime) -> FloodGuard:
    return runtime.kept(FLOOD_KEY, lambda: FloodGuard(runtime.settings.lookup_limit))


def _label(category: str) -> str:
    found = BY_CODE.get(category)
    return found.label if found is not None else category


class SimilarIn(Strict):
    region_code: str = Field(pattern=r"^\d{6,12}$", description="where the matter is: county, township or grid")
    content: str = Field(min_length=1, max_length=5000, description="what the citizen is about to report; kept nowhere")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _point(self) -> SimilarIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat 与 lon 须同时提供")
        return self


class PublicMatter(BaseModel):
    category: str
    category_label: str
    region_code: str
    places: list[str] = Field(description="places at least two of its reports name")
    keywords: list[str] = Field(description="words at least two of its reports use")
    count: int
    supporters: int
    state: State
    first_at: datetime
    last_at: datetime
    report_id: str | None = Field(description="its first report: the one to support (我也遇到); null once merged")


class SimilarMatch(PublicMatter):
    hotspot_id: str
    score: float


class SimilarOut(BaseModel):
    matches: list[SimilarMatch]


class PublicHotspot(PublicMatter):
    id: str
    topic_title: str | None
    suggestion_id: str | None
    merged_into: str | None = Field(description="merged into that hotspot: show it instead")


def _matter(hotspot: Hotspot, first_report: str | None) -> dict[str, object]:
    places, keywords = hotspots.public_terms(hotspot)
    return {"category": hotspot.category, "category_label": _label(hotspot.category),
            "region_code": hotspot.region_code, "places": places, "keywords": keywords, "count": hotspot.count,
            "supporters": hotspot.supporters, "state": hotspot.state, "first_at": hotspot.first_at,
            "last_at": hotspot.last_at, "report_id": first_report}


async def _first_reports(session: AsyncSession, hotspot_ids: list[str]) -> dict[str, str]:
    if not hotspot_ids:
        return {}
    rows = await session.execute(
        select(HotspotReport.hotspot_id, HotspotReport.report_id).where(HotspotReport.hotspot_id.in_(hotspot_ids))
        .ext(distinct_on(HotspotReport.hotspot_id))
        .order_by(HotspotReport.hotspot_id, HotspotReport.received_at, HotspotReport.report_id))
    return {hotspot_id: report_id for hotspot_id, report_id in rows.all()}


@public_router.post("/hotspots/similar", response_model=SimilarOut,
                    summary="Is this matter reported already? Open hotspots like it, best first (no token)",
                    description="The text is compared and forgotten. A match shows the matter (category, where, "
                                "how many reported and supported it) and the report to support instead of filing "
                                "the same again; never any report's content or reporter.",
                    responses=problems((429, "too many lookups from one source")))
async def similar_hotspots(body: SimilarIn, request: Request, runtime: RuntimeDep) -> SimilarOut:
    await _flood(runtime).check("hotspots", source_of(request))
    location = {"lat": body.lat, "lon": body.lon} if body.lat is not None and body.lon is not None else None
    # Words and kinds only: this answers while a citizen types, 50 times a second in a busy county,
    # and the meaning model costs 15 to 70 ms of CPU a text (meaning.py); the report, once sent,
    # is placed by meaning too.
    async with runtime.sessions()() as session:
        found = await hotspots.similar(runtime, session, region_code=body.region_code, content=body.content,
                                       location=location, now=datetime.now(UTC))
        first = await _first_reports(session, [h.id for h, _ in found])
    return SimilarOut(matches=[SimilarMatch.model_validate({**_matter(h, first.get(h.id)), "hotspot_id": h.id,
                                                            "score": round(score, 3)}) for h, score in found])


@public_router.get("/hotspots/{hotspot_id}", response_model=PublicHotspot,
                   summary="A hotspot as anyone may see it (no token)",
                   responses=problems((404, "unknown"), (429, "too many lookups from one source")))
async def public_hotspot(hotspot_id: HotspotId, request: Request, runtime: RuntimeDep) -> PublicHotspot:
    await _flood(runtime).check("hotspots", source_of(request))
    async with runtime.sessions()() as session:
        hotspot = await session.get(Hotspot, hotspot_id)
        if hotspot is None:
            raise not_found("没有找到该共性事项。")
        first = await _first_reports(session, [hotspot.id])
    return PublicHotspot.model_validate({**_matter(hotspot, first.get(hotspot.id)), "id": hotspot.id,
                                         "topic_title": hotspot.topic_title, "suggestion_id": hotspot.suggestion_id,
                                         "merged_into": hotspot.merged_into})
