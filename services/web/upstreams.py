"""The five services as the web tier sees them: their public HTTP APIs, one typed client each.

The web tier owns no domain data; everything a page shows comes through these calls, so anything
a page does an integrator can do with the same API. Each service has one pooled `httpx` client
with its own timeouts. A problem+json answer becomes `UpstreamError` (status, Chinese detail,
fields); no answer at all becomes `Unavailable`. Pages turn both into pages, never into JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter

from shared.proxy import ADDRESS_HEADER, SECRET_HEADER
from shared.settings import Settings

log = logging.getLogger("minyi.web.upstreams")

ServiceName = Literal["intake", "routing", "suggestions", "scoring", "identity"]


@dataclass
class UpstreamError(Exception):
    """A service refused the call with a problem+json answer."""

    service: str
    status: int
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.service} answered {self.status}: {self.detail}"

    def field_errors(self) -> dict[str, str]:
        return {str(e.get("field", "")): str(e.get("message", "")) for e in self.errors}


@dataclass
class Unavailable(Exception):
    """A service did not answer (down, timed out, or answered something that is not its API)."""

    service: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service} unavailable: {self.reason}"


class Model(BaseModel):
    # Services may add fields; the pages read what they know.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StationRef(Model):
    id: str
    name: str
    kind: str


class DeputyRef(Model):
    id: str
    name: str
    level: str


class ResolvedCode(Model):
    kind: Literal["deputy", "station"]
    id: str
    name: str
    region_code: str
    region_name: str | None = None
    level: str | None = None
    stations: list[StationRef] = []
    station_kind: str | None = None
    deputies: list[DeputyRef] = []


class Region(Model):
    code: str
    name: str
    has_children: bool = False


class RegionPath(Model):
    code: str
    name: str
    parent_code: str | None = None
    path: list[Region] = []


class Category(Model):
    code: str
    label: str


class Attachment(Model):
    id: str
    kind: str
    size: int


class ReportCreated(Model):
    id: str
    receipt_code: str
    status: str
    ack_due: str
    reply_due: str


class Step(Model):
    at: str
    status: str
    note: str
    # What kind of entry: a status change, or news of the common matter the report joined ("lineage").
    kind: str | None = None


class ReplyView(Model):
    content: str
    at: str
    by: str


class RatingView(Model):
    stars: int
    comment: str | None = None
    at: str


class Receipt(Model):
    status: str
    category: str | None = None
    received_at: str
    ack_due: str
    reply_due: str
    timeline: list[Step] = []
    reply: ReplyView | None = None
    rating: RatingView | None = None
    can_rate: bool = False
    # Others who said they have the same problem (附议), and the common matter it joined, if any.
    supporters: int = 0
    hotspot_id: str | None = None


class RatingOut(Model):
    status: str
    stars: int
    reopened: bool


class RankingRow(Model):
    deputy_id: str
    name: str = ""
    total: float
    rank: int
    stars: int = 0


class Ranking(Model):
    rows: list[RankingRow]
    published_at: str | None


class BoardRow(Model):
    unit_id: str
    on_time_rate: float | None = None
    satisfaction_rate: float | None = None
    board: str | None = None
    replies: int = 0
    evaluations: int = 0


class Unit(Model):
    id: str
    name: str
    region_code: str = ""


class PublicReply(Model):
    id: str
    title: str
    year: int
    region_code: str
    unit: str | None = None
    outcome: str | None = None
    outcome_label: str | None = None
    status: str
    reply: str = ""
    replied_at: str | None = None


class PublicReplies(Model):
    items: list[PublicReply]
    next: str | None = None


class ReportCounts(Model):
    """What intake counts of a set of reports: received, decided on time or not, rated."""

    received: int = 0
    ack_decided: int = 0
    ack_on_time: int = 0
    reply_decided: int = 0
    reply_on_time: int = 0
    rated: int = 0
    satisfied: int = 0


class MonthStats(ReportCounts):
    month: str
    closed: int = 0
    open_overdue: int = 0


class Stats(Model):
    region_code: str
    generated_at: str
    months: list[MonthStats]


_REGIONS = TypeAdapter(list[Region])
_CATEGORIES = TypeAdapter(list[Category])
_RANKING = TypeAdapter(list[RankingRow])
_BOARD = TypeAdapter(list[BoardRow])
_UNITS = TypeAdapter(list[Unit])
_REPLIES = TypeAdapter(PublicReplies)


@dataclass(frozen=True)
class Citizen:
    """On whose behalf a call is made: the address intake's flood control counts, or None."""

    address: str | None = None


class Upstream:
    """One service's API: a pooled client, its timeouts, and problem answers turned into exceptions."""

    def __init__(self, name: ServiceName, base_url: str, *, timeout: float, proxy_secret: bytes | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self._proxy_secret = proxy_secret.decode("ascii") if proxy_secret else None
        self.client = httpx.AsyncClient(
            base_url=base_url, transport=transport,
            # Connecting is quick on a cluster network or not at all; waiting longer only keeps a citizen staring.
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"Accept": "application/json"},
        )

    def _headers(self, citizen: Citizen | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if citizen is not None and citizen.address and self._proxy_secret:
            headers[SECRET_HEADER] = self._proxy_secret
            headers[ADDRESS_HEADER] = citizen.address
        return headers

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   json: Any = None, files: Any = None, headers: Mapping[str, str] | None = None,
                   citizen: Citizen | None = None, not_found_ok: bool = False) -> httpx.Response | None:
        """The service's 2xx answer; None for a 404 when `not_found_ok`; otherwise an exception."""
        try:
            response = await self.client.request(method, path, params=params, json=json, files=files,
                                                 headers=self._headers(citizen, headers))
        except httpx.TimeoutException as exc:
            raise Unavailable(self.name, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise Unavailable(self.name, f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return response
        if response.status_code == 404 and not_found_ok:
            return None
        raise self._problem(response)

    def _problem(self, response: httpx.Response) -> Exception:
        status = response.status_code
        body: Any = None
        if response.headers.get("content-type", "").split(";")[0].strip() in ("application/problem+json",
                                                                               "application/json"):
            try:
                body = response.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            if status >= 500:
                return Unavailable(self.name, f"answered {status} without a problem document")
            body = {}
        retry_after = response.headers.get("retry-after")
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        error = UpstreamError(
            service=self.name, status=status, detail=str(body.get("detail") or ""),
            errors=[e for e in errors if isinstance(e, dict)],
            retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        )
        if status >= 500:
            log.warning("%s", error)
        return error

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        if response is None:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(self.name, f"{method} {path} answered something that is not JSON") from exc

    async def close(self) -> None:
        await self.client.aclose()


class Upstreams:
    """Every service the pages call, each through its own client."""

    def __init__(self, settings: Settings, *, proxy_secret: bytes | None = None,
                 transports: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> None:
        timeout = settings.web_upstream_timeout_seconds
        transports = transports or {}

        def make(name: ServiceName, secret: bytes | None = None) -> Upstream:
            return Upstream(name, settings.service_url(name), timeout=timeout, proxy_secret=secret,
                            transport=transports.get(name))

        # Intake, scoring and routing (its search for repeated reports) count citizens' requests against
        # flood limits, so only they get their addresses.
        self.intake = make("intake", proxy_secret)
        self.routing = make("routing", proxy_secret)
        self.suggestions = make("suggestions")
        self.scoring = make("scoring", proxy_secret)
        self.identity = make("identity")

    @property
    def all(self) -> Sequence[Upstream]:
        return (self.intake, self.routing, self.suggestions, self.scoring, self.identity)

    async def close(self) -> None:
        for upstream in self.all:
            await upstream.close()

    # ---- identity --------------------------------------------------------------------------------

    async def resolve_code(self, code: str) -> ResolvedCode | None:
        body = await self.identity.json("GET", f"/v1/codes/{code}", not_found_ok=True)
        return None if body is None else ResolvedCode.model_validate(body)

    async def regions(self, parent_code: str | None) -> list[Region]:
        params = {"parent_code": parent_code} if parent_code else None
        return _REGIONS.validate_python(await self.identity.json("GET", "/v1/public/regions", params=params))

    async def region(self, code: str) -> RegionPath | None:
        body = await self.identity.json("GET", f"/v1/public/regions/{code}", not_found_ok=True)
        return None if body is None else RegionPath.model_validate(body)

    # ---- routing ---------------------------------------------------------------------------------

    async def categories(self) -> list[Category]:
        return _CATEGORIES.validate_python(await self.routing.json("GET", "/v1/categories"))

    # ---- intake ----------------------------------------------------------------------------------

    async def upload(self, filename: str, data: bytes, media_type: str, *, idempotency_key: str,
                     citizen: Citizen) -> Attachment:
        body = await self.intake.json("POST", "/v1/attachments", files={"file": (filename, data, media_type)},
                                      headers={"Idempotency-Key": idempotency_key}, citizen=citizen)
        return Attachment.model_validate(body)

    async def submit_report(self, report: Mapping[str, Any], *, idempotency_key: str,
                            citizen: Citizen) -> ReportCreated:
        body = await self.intake.json("POST", "/v1/reports", json=report,
                                      headers={"Idempotency-Key": idempotency_key}, citizen=citizen)
        return ReportCreated.model_validate(body)

    async def receipt(self, receipt_code: str, *, citizen: Citizen) -> Receipt | None:
        body = await self.intake.json("GET", f"/v1/receipts/{receipt_code}", citizen=citizen, not_found_ok=True)
        return None if body is None else Receipt.model_validate(body)

    async def rate(self, receipt_code: str, stars: int, comment: str | None, *, idempotency_key: str,
                   citizen: Citizen) -> RatingOut:
        body = await self.intake.json("POST", f"/v1/receipts/{receipt_code}/rating",
                                      json={"stars": stars, "comment": comment},
                                      headers={"Idempotency-Key": idempotency_key}, citizen=citizen)
        return RatingOut.model_validate(body)

    async def stats(self, region_code: str, months: int) -> Stats:
        body = await self.intake.json("GET", "/v1/public/stats", params={"region_code": region_code,
                                                                          "months": months})
        return Stats.model_validate(body)

    # ---- scoring and suggestions -----------------------------------------------------------------

    async def ranking(self, year: int, region_code: str, level: str | None = None, *,
                      citizen: Citizen | None = None) -> Ranking:
        params: dict[str, Any] = {"year": year, "region_code": region_code}
        if level:
            params["level"] = level
        response = await self.scoring.call("GET", "/v1/rankings", params=params, citizen=citizen)
        assert response is not None
        return Ranking(rows=_RANKING.validate_python(response.json()),
                       published_at=response.headers.get("minyi-published-at"))

    async def board(self, year: int, region_code: str, *, citizen: Citizen | None = None) -> list[BoardRow]:
        return _BOARD.validate_python(await self.scoring.json("GET", "/v1/units/board", citizen=citizen,
                                                              params={"year": year, "region_code": region_code}))

    async def units(self, region_code: str) -> list[Unit]:
        return _UNITS.validate_python(await self.suggestions.json("GET", "/v1/public/units",
                                                                  params={"region_code": region_code}))

    async def public_replies(self, year: int, region_code: str, q: str, limit: int,
                             offset: int) -> list[PublicReply]:
        params: dict[str, Any] = {"year": year, "region_code": region_code, "limit": limit, "offset": offset}
        if q:
            params["q"] = q
        page = _REPLIES.validate_python(await self.suggestions.json("GET", "/v1/public/replies", params=params))
        return page.items
