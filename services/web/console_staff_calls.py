"""The services as congress staff's console uses them, each call with the signed-in person's token.

Suggestions: the year's list and counts, one suggestion, assignment and the director's decisions,
supervision topics (convert, close), the micro-suggestion fund. Routing: hotspots, their members,
split, merge, close. Intake: the region's reports (masked), monthly figures and the year's figures by
deputy and station. Identity: the region's deputies and stations by name. Every service: its audit log.

The services alone decide what staff see: a staff token covers its region, and the pages pass it
on unchanged, so nothing here can widen it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, TypeAdapter

from services.web.signed_calls import SignedInCalls
from services.web.station_calls import ReportPage
from services.web.unit_calls import Fund, Suggestion
from services.web.upstreams import Model, ReportCounts, Stats, Unavailable, Upstream, UpstreamError

# The services whose audit logs the console reads, in the order its selector lists them.
AUDITED = ("suggestions", "routing", "intake", "identity", "scoring")
# Identity's largest page, and how many of the region's deputies or stations are read at most.
DIRECTORY_PAGE = 100
DIRECTORY_MAX = 1000


class StaffSuggestion(Suggestion):
    """A suggestion as staff read it: who leads it and where it came from, besides what a unit sees."""

    lead_deputy_id: str = ""
    co_signer_ids: tuple[str, ...] = ()
    key_requested: bool = False
    topic_id: str | None = None
    term: int | None = None
    dissatisfied: int = 0


class UnitCount(Model):
    unit_id: str
    total: int
    colors: dict[str, int] = Field(default_factory=dict)


class Counts(Model):
    year: int
    total: int
    colors: dict[str, int] = Field(default_factory=dict)
    statuses: dict[str, int] = Field(default_factory=dict)
    key: int = 0
    carried: int = 0
    units: list[UnitCount] = Field(default_factory=list)


class Topic(Model):
    """A supervision topic (人大监督): a hotspot of routing's for staff to convert or close, under its id."""

    id: str
    region_code: str
    category: str
    count: int
    keywords: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()
    first_at: str
    last_at: str
    status: str
    note: str | None = None
    suggestion_id: str | None = None


class Hotspot(Model):
    id: str
    region_code: str
    category: str
    count: int
    keywords: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()
    first_at: str
    last_at: str
    state: str
    supporters: int = 0
    places: tuple[str, ...] = ()
    topic_title: str | None = None
    suggestion_id: str | None = None


class Member(Model):
    report_id: str
    region_code: str
    category: str
    received_at: str
    similarity: float
    placed_by: str


class Correction(Model):
    kind: str
    other_hotspot_id: str | None = None
    report_ids: tuple[str, ...] = ()
    actor: str
    note: str | None = None
    at: str


class HotspotDetail(Hotspot):
    merged_into: str | None = None
    close_note: str | None = None
    members: tuple[Member, ...] = ()
    corrections: tuple[Correction, ...] = ()


class MaskedReporter(Model):
    name: str = ""
    phone: str = ""


class ReportBrief(Model):
    """A member report as intake shows it to staff: the first words, the reporter masked."""

    id: str
    status: str
    category: str | None = None
    excerpt: str = ""
    anonymous: bool = True
    reporter: MaskedReporter | None = None
    received_at: str
    supporters: int = 0


class AuditEntry(Model):
    seq: int
    at: str
    actor: str
    actor_roles: tuple[str, ...] = ()
    action: str
    subject_type: str
    subject_id: str
    region_code: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditPage(Model):
    items: list[AuditEntry]
    next_before: int | None = None


class Named(Model):
    id: str
    name: str


class TargetCounts(ReportCounts):
    """A deputy's or station's reports of a year as intake counts them (`GET /v1/stats/targets`)."""

    kind: str
    id: str
    overdue: int = 0


class TargetStats(Model):
    region_code: str
    year: int
    targets: list[TargetCounts] = Field(default_factory=list)


_SUGGESTIONS = TypeAdapter(list[StaffSuggestion])
_TOPICS = TypeAdapter(list[Topic])
_HOTSPOTS = TypeAdapter(list[Hotspot])


class StaffCalls(SignedInCalls):
    """The calls of one signed-in member of congress staff."""

    # ---- suggestions -----------------------------------------------------------------------------

    async def suggestions(self, params: Mapping[str, Any], *, limit: int, offset: int) -> list[StaffSuggestion]:
        body = await self.up.suggestions.json("GET", "/v1/suggestions", headers=self.headers(),
                                              params={**params, "limit": limit, "offset": offset})
        return _SUGGESTIONS.validate_python(body)

    async def suggestion(self, suggestion_id: str) -> StaffSuggestion:
        body = await self.up.suggestions.json("GET", f"/v1/suggestions/{suggestion_id}", headers=self.headers())
        return StaffSuggestion.model_validate(body)

    async def counts(self, year: int) -> Counts:
        body = await self.up.suggestions.json("GET", "/v1/suggestion-counts", params={"year": year},
                                              headers=self.headers())
        return Counts.model_validate(body)

    async def act(self, suggestion_id: str, action: str, body: Mapping[str, Any], idempotency_key: str) -> None:
        """assignment, director-decision, extension: the service takes each whole or not at all."""
        await self.up.suggestions.call("POST", f"/v1/suggestions/{suggestion_id}/{action}", json=dict(body),
                                       headers=self.headers(idempotency_key))

    async def fund(self, region_code: str, year: int) -> Fund:
        body = await self.up.suggestions.json("GET", f"/v1/micro-funds/{region_code}/{year}",
                                              headers=self.headers())
        return Fund.model_validate(body)

    async def topics(self, status: str | None = None) -> list[Topic]:
        params = {"status": status} if status else None
        body = await self.up.suggestions.json("GET", "/v1/supervision-topics", params=params,
                                              headers=self.headers())
        return _TOPICS.validate_python(body)

    async def convert(self, topic_id: str, body: Mapping[str, Any], idempotency_key: str) -> str:
        """The topic made a suggestion to be assigned as a key one; answers the suggestion's id."""
        answer = await self.up.suggestions.json("POST", f"/v1/supervision-topics/{topic_id}/conversion",
                                                json=dict(body), headers=self.headers(idempotency_key))
        return str(answer["suggestion"]["id"])

    async def close_topic(self, topic_id: str, note: str) -> None:
        await self.up.suggestions.call("POST", f"/v1/supervision-topics/{topic_id}/closure", json={"note": note},
                                       headers=self.headers())

    # ---- routing ---------------------------------------------------------------------------------

    async def hotspots(self, *, state: str | None, days: int) -> list[Hotspot]:
        params: dict[str, Any] = {"days": days, **({"state": state} if state else {})}
        body = await self.up.routing.json("GET", "/v1/hotspots", params=params, headers=self.headers())
        return _HOTSPOTS.validate_python(body)

    async def hotspot(self, hotspot_id: str) -> HotspotDetail:
        body = await self.up.routing.json("GET", f"/v1/hotspots/{hotspot_id}", headers=self.headers())
        return HotspotDetail.model_validate(body)

    async def correct(self, hotspot_id: str, action: str, body: Mapping[str, Any]) -> HotspotDetail:
        """split (answers the new hotspot), merge or closure (answer this one)."""
        answer = await self.up.routing.json("POST", f"/v1/hotspots/{hotspot_id}/{action}", json=dict(body),
                                            headers=self.headers())
        return HotspotDetail.model_validate(answer)

    # ---- intake ----------------------------------------------------------------------------------

    async def reports(self, params: Mapping[str, Any], *, page: int, page_size: int) -> ReportPage:
        body = await self.up.intake.json("GET", "/v1/reports", headers=self.headers(),
                                         params={**params, "page": page, "page_size": page_size})
        return ReportPage.model_validate(body)

    async def report_total(self, params: Mapping[str, Any]) -> int:
        """How many reports the filter holds: intake's total, over a page of one."""
        return (await self.reports(params, page=1, page_size=1)).total

    async def report_briefs(self, report_ids: Sequence[str]) -> dict[str, ReportBrief | None]:
        """Each report's masked view; None for one intake does not show (another region, gone)."""

        async def one(report_id: str) -> tuple[str, ReportBrief | None]:
            try:
                body = await self.up.intake.json("GET", f"/v1/reports/{report_id}", headers=self.headers(),
                                                 not_found_ok=True)
            except UpstreamError:
                return report_id, None
            return report_id, None if body is None else ReportBrief.model_validate(body)

        return dict(await asyncio.gather(*(one(r) for r in report_ids)))

    async def stats(self, region_code: str, months: int) -> Stats:
        return await self.up.stats(region_code, months)

    async def target_stats(self, region_code: str, year: int) -> TargetStats:
        body = await self.up.intake.json("GET", "/v1/stats/targets", params={"region_code": region_code, "year": year},
                                         headers=self.headers())
        return TargetStats.model_validate(body)

    # ---- identity --------------------------------------------------------------------------------

    async def directory(self, kind: str) -> list[Named]:
        """The region's deputies or stations ("deputies", "stations") by name, up to DIRECTORY_MAX."""
        found: list[Named] = []
        after: str | None = None
        while len(found) < DIRECTORY_MAX:
            params: dict[str, Any] = {"limit": DIRECTORY_PAGE, **({"after": after} if after else {})}
            body = await self.up.identity.json("GET", f"/v1/{kind}", params=params, headers=self.headers())
            found += [Named.model_validate(item) for item in body["items"]]
            after = body.get("next")
            if after is None:
                break
        return found[:DIRECTORY_MAX]

    # ---- audit -----------------------------------------------------------------------------------

    async def audit(self, service: str, params: Mapping[str, Any]) -> AuditPage:
        upstream: Upstream = getattr(self.up, service)
        body = await upstream.json("GET", "/v1/audit", params=dict(params), headers=self.headers())
        return AuditPage.model_validate(body)


async def settled(*calls: Any) -> list[Any]:
    """Each call's answer, or the exception that stopped it: a dashboard shows what it could read."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


def failed(result: object) -> bool:
    return isinstance(result, (UpstreamError, Unavailable))
