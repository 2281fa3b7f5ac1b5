"""HTTP API of the routing service (paths under /v1, see CONTRACT.md): grid platforms, tickets, decisions.
Hotspots are in `hotspots_api`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select

from services.routing import destinations, domain, platforms, tickets
from services.routing.models import GridPlatform, RoutingDecision, Ticket, TicketEntry
from services.routing.taxonomy import BY_CODE, GRID_CATEGORIES
from shared.auth import Principal, require_region, require_roles
from shared.errors import invalid, not_found
from shared.inputs import StorableText
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["routing"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque id chosen by the caller")]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
PlatformReaders = Annotated[Principal, Depends(require_roles("admin", "npc_staff"))]
# CONTRACT: tickets for npc_staff and station_staff (hotspots: hotspots_api); not admin.
TicketReaders = Annotated[Principal, Depends(require_roles("npc_staff", "station_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class PlatformIn(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    region_prefixes: list[str] = Field(min_length=1, max_length=200,
                                       description="regions it serves; the longest matching prefix wins")
    transport: Literal["http", "nats"]
    url: str | None = Field(default=None, max_length=500, description="base URL; tickets go to {url}/tickets")
    secret: str = Field(min_length=16, max_length=200, description="shared HMAC secret; never shown again")
    categories: list[str] | None = Field(default=None, max_length=20,
                                         description="the grid categories it takes; all of them when left out")

    @field_validator("region_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return domain.check_prefixes(value)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [c for c in value if c not in GRID_CATEGORIES]
        if unknown:
            raise ValueError(f"“{unknown[0][:40]}”不是网格平台可受理的类别")
        return sorted(set(value))

    @model_validator(mode="after")
    def _url(self) -> PlatformIn:
        if self.transport == "http":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("http 方式须提供以 http:// 或 https:// 开头的 url")
        elif self.url:
            raise ValueError("nats 方式不需要 url")
        return self


class PlatformOut(BaseModel):
    id: str
    name: str
    region_prefixes: list[str]
    categories: list[str]
    transport: str
    url: str | None
    version: int
    failures: int
    retry_at: datetime | None
    last_error: str | None
    queued: int = Field(description="tickets waiting to reach it")


def _platform_out(p: GridPlatform, queued: int) -> PlatformOut:
    return PlatformOut(id=p.id, name=p.name, region_prefixes=list(p.region_prefixes), categories=list(p.categories),
                       transport=p.transport, url=p.url, version=p.version, failures=p.failures, retry_at=p.retry_at,
                       last_error=p.last_error, queued=queued)


def _concerns(who: Principal, platform: GridPlatform) -> bool:
    """A platform serving any part of the caller's region, or a wider region holding it."""
    return any(who.can_see(p) or who.region.startswith(p) for p in platform.region_prefixes)


async def _queued(runtime: Runtime, platform_id: str) -> int:
    async with runtime.sessions()() as session:
        count = await session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.platform_id == platform_id, Ticket.status == "queued"))
    return int(count or 0)


@router.put("/grid-platforms/{platform_id}", response_model=PlatformOut,
            summary="Register or change a grid-governance platform (基层治理四平台, 12345)",
            description="An http platform's URL must resolve only to addresses the destination policy allows "
                        "(MINYI_GRID_ALLOWED_DESTINATIONS, MINYI_GRID_DENIED_DESTINATIONS); otherwise 422.",
            responses={201: {"model": PlatformOut, "description": "registered"}})
async def put_platform(platform_id: EntityId, body: PlatformIn, who: Admin, runtime: RuntimeDep,
                       response: Response) -> PlatformOut:
    for prefix in body.region_prefixes:
        require_region(who, prefix)
    if body.transport == "http" and body.url:
        try:
            await destinations.allowed_addresses(destinations.policy_of(runtime.settings), body.url)
        except destinations.DestinationRefused as exc:
            raise invalid("url", str(exc), detail=f"平台地址不允许：{exc}。") from exc
    categories = body.categories if body.categories is not None else sorted(GRID_CATEGORIES)
    async with runtime.transaction() as session:
        platform = await session.get(GridPlatform, platform_id, with_for_update=True)
        if platform is None:
            platform = GridPlatform(id=platform_id, version=1, failures=0)
            session.add(platform)
            response.status_code = 201
        else:
            for prefix in platform.region_prefixes:
                require_region(who, prefix)
            platform.version += 1
            # A changed address or secret deserves a fresh try at once.
            platform.failures, platform.retry_at = 0, None
        platform.name, platform.region_prefixes, platform.categories = body.name, body.region_prefixes, categories
        platform.transport, platform.url = body.transport, body.url
        platform.secret = platforms.seal(runtime.keyring, body.secret)
        session.info[tickets.QUEUED] = True
        await runtime.record_audit(session, who, "grid_platform.changed", subject_type="grid_platform",
                                   subject_id=platform_id, region_code=min(body.region_prefixes, key=len),
                                   detail={"version": platform.version, "region_prefixes": body.region_prefixes,
                                           "transport": body.transport, "url": body.url, "categories": categories})
    return _platform_out(platform, await _queued(runtime, platform_id))


@router.get("/grid-platforms", response_model=list[PlatformOut], summary="The grid platforms and their health")
async def list_platforms(who: PlatformReaders, runtime: RuntimeDep) -> list[PlatformOut]:
    async with runtime.sessions()() as session:
        rows = (await session.scalars(select(GridPlatform).order_by(GridPlatform.id))).all()
        counts = dict((await session.execute(
            select(Ticket.platform_id, func.count()).where(Ticket.status == "queued").group_by(Ticket.platform_id)
        )).all())
    return [_platform_out(p, int(counts.get(p.id, 0))) for p in rows if _concerns(who, p)]


@router.get("/grid-platforms/{platform_id}", response_model=PlatformOut, summary="A grid platform and its health",
            responses=problems(404))
async def get_platform(platform_id: EntityId, who: PlatformReaders, runtime: RuntimeDep) -> PlatformOut:
    async with runtime.sessions()() as session:
        platform = await session.get(GridPlatform, platform_id)
    if platform is None or not _concerns(who, platform):
        raise not_found("网格平台不存在。")
    return _platform_out(platform, await _queued(runtime, platform_id))


class TicketEntryOut(BaseModel):
    status: str
    note: str | None
    at: datetime
    source: str
    applied: bool


class TicketOut(BaseModel):
    id: str
    report_id: str
    platform_id: str
    transport: str
    region_code: str
    category: str
    category_label: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    history: list[TicketEntryOut] = Field(default_factory=list)


def _ticket_out(t: Ticket, history: list[TicketEntry] | None = None) -> TicketOut:
    return TicketOut(
        id=t.id, report_id=t.report_id, platform_id=t.platform_id, transport=t.transport, region_code=t.region_code,
        category=t.category, category_label=BY_CODE[t.category].label if t.category in BY_CODE else t.category,
        status=t.status, attempts=t.attempts, next_attempt_at=t.next_attempt_at, last_error=t.last_error,
        delivered_at=t.delivered_at, created_at=t.created_at, updated_at=t.updated_at,
        history=[TicketEntryOut(status=e.status, note=e.note, at=e.at, source=e.source, applied=e.applied)
                 for e in history or []],
    )


@router.get("/tickets/{ticket_id}", response_model=TicketOut, summary="A ticket and its history",
            responses=problems(404))
async def get_ticket(ticket_id: EntityId, who: TicketReaders, runtime: RuntimeDep) -> TicketOut:
    async with runtime.sessions()() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or not who.can_see(ticket.region_code):
            raise not_found("工单不存在。")
        history = (await session.scalars(select(TicketEntry).where(TicketEntry.ticket_id == ticket_id)
                                         .order_by(TicketEntry.id))).all()
    return _ticket_out(ticket, list(history))


TicketStatusFilter = Literal["queued", "sent", "accepted", "in_progress", "resolved", "returned", "failed"]


@router.get("/tickets", response_model=list[TicketOut], summary="Tickets in the caller's region, newest first")
async def list_tickets(who: TicketReaders, runtime: RuntimeDep,
                       status: Annotated[TicketStatusFilter | None, Query()] = None,
                       platform_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
                       report_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,36}$")] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[TicketOut]:
    query = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    if who.region:
        query = query.where(Ticket.region_code.startswith(who.region, autoescape=True))
    if status:
        query = query.where(Ticket.status == status)
    if platform_id:
        query = query.where(Ticket.platform_id == platform_id)
    if report_id:
        query = query.where(Ticket.report_id == report_id)
    async with runtime.sessions()() as session:
        rows = (await session.scalars(query)).all()
    return [_ticket_out(t) for t in rows]


class DecisionOut(BaseModel):
    report_id: str
    region_code: str
    category: str
    category_label: str
    category_source: str = Field(description="hint: the citizen's own; text: from the words; none: nothing found")
    confidence: float
    handler: str = Field(description="grid: a grid platform; deputy: the deputy and congress staff")
    platform_id: str | None
    reason: str
    decided_at: datetime


@router.get("/decisions/{report_id}", response_model=DecisionOut, summary="How a report was classified and routed",
            responses=problems((404, "not routed (yet), or outside the caller's region")))
async def get_decision(report_id: EntityId, who: TicketReaders, runtime: RuntimeDep) -> DecisionOut:
    async with runtime.sessions()() as session:
        d = await session.get(RoutingDecision, report_id)
    if d is None or not who.can_see(d.region_code):
        raise not_found("没有该反映的分拨记录。")
    return DecisionOut(report_id=d.report_id, region_code=d.region_code, category=d.category,
                       category_label=BY_CODE[d.category].label, category_source=d.category_source,
                       confidence=d.confidence, handler=d.handler, platform_id=d.platform_id, reason=d.reason,
                       decided_at=d.decided_at)
