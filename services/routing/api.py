"""HTTP API of the routing service (paths under /v1, see docs/integrators.md): grid platforms, tickets, decisions.
Hotspots are in `hotspots_api`."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select

from services.routing import destinations, domain, platforms, tickets
from services.routing.models import GridPlatform, RoutingDecision, Ticket, TicketEntry
from services.routing.taxonomy import BY_CODE, GRID_CATEGORIES
from shared.auth import Principal, require_region, require_roles
from shared.errors import FieldError, Problem, invalid, not_found
from shared.inputs import StorableText
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["routing"], responses=COMMON)

EntityId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque id chosen by the caller")]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
PlatformReaders = Annotated[Principal, Depends(require_roles("admin", "npc_staff"))]
# Who may call: tickets for npc_staff and station_staff (hotspots: hotspots_api); not admin.
TicketReaders = Annotated[Principal, Depends(require_roles("npc_staff", "station_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class PlatformIn(StorableText):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"name": "西湖区基层治理四平台", "region_prefixes": ["330106"], "transport": "nats",
         "secret": "9c1f6e2b7a4d48e0b3f5c8a1d2e7f604", "categories": ["roads_traffic", "municipal_facilities"]}]})

    name: str = Field(min_length=1, max_length=200)
    region_prefixes: list[str] = Field(min_length=1, max_length=200,
                                       description="regions it serves; the longest matching prefix wins")
    transport: Literal["http", "nats", "open311"]
    url: str | None = Field(default=None, max_length=500,
                            description="base URL; http: tickets go to {url}/tickets; open311: the GeoReport v2 "
                                        "endpoint, e.g. https://host/open311/v2 (requests go to {url}/requests.json)")
    secret: str | None = Field(default=None, min_length=16, max_length=200,
                               description="shared HMAC secret, required for http and nats; never shown again")
    categories: list[str] | None = Field(default=None, max_length=20,
                                         description="the grid categories it takes; all of them when left out")
    api_key: str | None = Field(default=None, min_length=1, max_length=200,
                                description="open311 only, required there: the GeoReport API key; never shown again")
    jurisdiction_id: str | None = Field(default=None, min_length=1, max_length=200,
                                        description="open311 only: the jurisdiction_id, for endpoints serving several")
    service_codes: dict[str, str] | None = Field(
        default=None, max_length=20,
        description="open311 only: grid category → the platform's service_code; when left out, services.json is "
                    "read and the service whose code is the category's code or whose name its Chinese label is used")
    service_request_updates: bool | None = Field(
        default=None, description="open311 only: whether it offers mySociety's servicerequestupdates.json; "
                                  "found out (a 404 says no) when left out")

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

    @field_validator("service_codes")
    @classmethod
    def _service_codes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        unknown = [c for c in value if c not in GRID_CATEGORIES]
        if unknown:
            raise ValueError(f"“{unknown[0][:40]}”不是网格平台可受理的类别")
        codes = {category: code.strip() for category, code in value.items()}
        if any(not code or len(code) > 100 for code in codes.values()):
            raise ValueError("服务代码（service_code）应为 1 至 100 个字符")
        return codes

    @model_validator(mode="after")
    def _url(self) -> PlatformIn:
        if self.transport == "http":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("http 方式须提供以 http:// 或 https:// 开头的 url")
        elif self.transport == "nats" and self.url:
            raise ValueError("nats 方式不需要 url")
        return self


def registration_errors(body: PlatformIn) -> list[FieldError]:
    """What a transport needs that the body lacks, field by field (the model checks each field alone)."""
    errors: list[FieldError] = []
    if body.transport == "open311":
        if not body.url or not body.url.startswith(("http://", "https://")):
            errors.append(FieldError("url", "open311 方式须提供以 http:// 或 https:// 开头的 GeoReport 接口地址"))
        if not body.api_key:
            errors.append(FieldError("api_key", "open311 方式须提供平台分配的 api_key"))
    else:
        if body.secret is None:
            errors.append(FieldError("secret", f"{body.transport} 方式须提供至少 16 个字符的共享密钥"))
        given = [name for name in ("api_key", "jurisdiction_id", "service_codes", "service_request_updates")
                 if getattr(body, name) is not None]
        errors += [FieldError(name, "仅 open311 方式使用此项") for name in given]
    return errors


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
    jurisdiction_id: str | None = Field(default=None, description="open311: its jurisdiction_id")
    service_codes: dict[str, str] | None = Field(default=None,
                                                 description="open311: the admin's category → service_code mapping")
    service_request_updates: bool | None = Field(
        default=None, description="open311: whether it offers servicerequestupdates.json (null: not known yet)")


def _platform_out(p: GridPlatform, queued: int) -> PlatformOut:
    return PlatformOut(id=p.id, name=p.name, region_prefixes=list(p.region_prefixes), categories=list(p.categories),
                       transport=p.transport, url=p.url, version=p.version, failures=p.failures, retry_at=p.retry_at,
                       last_error=p.last_error, queued=queued, jurisdiction_id=p.jurisdiction_id,
                       service_codes=p.service_codes, service_request_updates=p.updates_feed)


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
            description="An http or open311 platform's URL must resolve only to addresses the destination "
                        "policy allows (MINYI_GRID_ALLOWED_DESTINATIONS, MINYI_GRID_DENIED_DESTINATIONS); "
                        "otherwise 422. An open311 platform speaks Open311 GeoReport v2: tickets become service "
                        "requests and their statuses are read back by polling.",
            responses={201: {"model": PlatformOut, "description": "registered"}})
async def put_platform(platform_id: EntityId, body: PlatformIn, who: Admin, runtime: RuntimeDep,
                       response: Response) -> PlatformOut:
    for prefix in body.region_prefixes:
        require_region(who, prefix)
    errors = registration_errors(body)
    if errors:
        raise Problem(422, "平台登记有误：" + "；".join(e.message for e in errors) + "。", title="Validation Failed",
                      errors=errors)
    if body.transport in ("http", "open311") and body.url:
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
        if platform.url != body.url:
            platform.updates_since = None
        platform.transport, platform.url = body.transport, body.url
        # Without a secret (open311) one nobody knows: no callback can be signed for its tickets.
        platform.secret = platforms.seal(runtime.keyring, body.secret or secrets.token_urlsafe(32))
        platform.api_key = platforms.seal_api_key(runtime.keyring, body.api_key) if body.api_key else None
        platform.jurisdiction_id, platform.service_codes = body.jurisdiction_id, body.service_codes
        platform.updates_feed = body.service_request_updates
        session.info[tickets.QUEUED] = True
        await runtime.record_audit(session, who, "grid_platform.changed", subject_type="grid_platform",
                                   subject_id=platform_id, region_code=min(body.region_prefixes, key=len),
                                   detail={"version": platform.version, "region_prefixes": body.region_prefixes,
                                           "transport": body.transport, "url": body.url, "categories": categories,
                                           "jurisdiction_id": body.jurisdiction_id,
                                           "service_codes": body.service_codes})
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
    remote_id: str | None = Field(default=None, description="open311: the platform's service_request_id")
    created_at: datetime
    updated_at: datetime
    history: list[TicketEntryOut] = Field(default_factory=list)


def _ticket_out(t: Ticket, history: list[TicketEntry] | None = None) -> TicketOut:
    return TicketOut(
        id=t.id, report_id=t.report_id, platform_id=t.platform_id, transport=t.transport, region_code=t.region_code,
        category=t.category, category_label=BY_CODE[t.category].label if t.category in BY_CODE else t.category,
        status=t.status, attempts=t.attempts, next_attempt_at=t.next_attempt_at, last_error=t.last_error,
        delivered_at=t.delivered_at, remote_id=t.remote_id, created_at=t.created_at, updated_at=t.updated_at,
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
