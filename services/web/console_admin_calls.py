"""What the administrator's console pages ask of the services, as the signed-in administrator.

Identity: the stations and deputies of a region with their live QR codes, issuing and revoking
codes, reading and saving a station or a deputy, adding a region (the region tree is public, read
through `Upstreams` and cached for every page). Suggestions: the handling units, reading and saving
one. Routing: the grid platforms and their health, reading and registering one, and which report
categories a platform may take. Intake: a year's holiday calendar and the regions' clock rules.
Every call but the public ones carries the administrator's own token, so the pages see and change
exactly what the services allow an administrator of that region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, TypeAdapter

from services.web.signed_calls import SignedInCalls
from services.web.upstreams import Model, Unit

# Identity's largest page; the sheet and the exports read this many rows at most.
IDENTITY_PAGE = 100
LIST_MAX = 2000


class StationRow(Model):
    id: str
    name: str
    kind: str
    region_code: str
    code: str | None = None


class DeputyStation(Model):
    id: str
    name: str


class DeputyRow(Model):
    id: str
    name: str
    level: str
    region_code: str
    stations: list[DeputyStation] = Field(default_factory=list)
    code: str | None = None


class StationPage(Model):
    items: list[StationRow]
    next: str | None = None


class DeputyPage(Model):
    items: list[DeputyRow]
    next: str | None = None


class StationDetail(Model):
    id: str
    name: str
    kind: str
    region_code: str
    version: int = 0


class DeputyDetail(Model):
    """A deputy as identity gives it to an administrator: the phone only masked, never whole."""

    id: str
    name: str
    level: str
    region_code: str
    station_ids: list[str] = Field(default_factory=list)
    district_id: str | None = None
    groups: list[str] = Field(default_factory=list)
    phone_masked: str | None = None
    version: int = 0


class RegionSaved(Model):
    code: str
    name: str
    level: str
    parent_code: str | None = None


class IssuedCode(Model):
    code: str
    url: str


class UnitDetail(Model):
    id: str
    name: str
    region_code: str
    parent_id: str | None = None


class Platform(Model):
    id: str
    name: str
    region_prefixes: list[str]
    categories: list[str] = Field(default_factory=list)
    transport: str
    url: str | None = None
    version: int = 0
    failures: int = 0
    retry_at: str | None = None
    last_error: str | None = None
    queued: int = 0
    # The open311 transport's settings as routing shows them (never the API key).
    jurisdiction_id: str | None = None
    service_codes: dict[str, str] | None = None
    service_request_updates: bool | None = None


class GridCategory(Model):
    code: str
    label: str
    grid: bool = False


class CalendarYear(Model):
    year: int
    source: str
    holidays: list[str]
    workdays: list[str]
    recomputed: int = 0


class ClockRule(Model):
    region_prefix: str
    ack_days: int
    reply_days: int
    remind_hour: int = 9
    close_days: int = 15


_UNITS = TypeAdapter(list[Unit])
_PLATFORMS = TypeAdapter(list[Platform])
_RULES = TypeAdapter(list[ClockRule])
_CATEGORIES = TypeAdapter(list[GridCategory])


class AdminCalls(SignedInCalls):
    """The calls of one signed-in administrator, each with their token."""

    # ---- stations, deputies and their codes ---------------------------------------------------

    @staticmethod
    def _list_params(region: str, q: str, after: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if region:  # none: the administrator's own region ("" everywhere)
            params["region_code"] = region
        if q:
            params["q"] = q
        if after:
            params["after"] = after
        return params

    async def stations(self, region: str, *, q: str = "", after: str | None = None,
                       limit: int = 20) -> StationPage:
        body = await self.up.identity.json("GET", "/v1/stations", params=self._list_params(region, q, after, limit),
                                           headers=self.headers())
        return StationPage.model_validate(body)

    async def deputies(self, region: str, *, q: str = "", after: str | None = None,
                       limit: int = 20) -> DeputyPage:
        body = await self.up.identity.json("GET", "/v1/deputies", params=self._list_params(region, q, after, limit),
                                           headers=self.headers())
        return DeputyPage.model_validate(body)

    async def all_stations(self, region: str, q: str = "", most: int = LIST_MAX) -> tuple[list[StationRow], bool]:
        """Every station of the region up to `most`, and whether there were more."""
        rows: list[StationRow] = []
        after: str | None = None
        while True:
            page = await self.stations(region, q=q, after=after, limit=IDENTITY_PAGE)
            rows += page.items
            after = page.next
            if after is None or len(rows) >= most:
                return rows[:most], after is not None or len(rows) > most

    async def all_deputies(self, region: str, q: str = "", most: int = LIST_MAX) -> tuple[list[DeputyRow], bool]:
        rows: list[DeputyRow] = []
        after: str | None = None
        while True:
            page = await self.deputies(region, q=q, after=after, limit=IDENTITY_PAGE)
            rows += page.items
            after = page.next
            if after is None or len(rows) >= most:
                return rows[:most], after is not None or len(rows) > most

    async def name_of(self, kind: str, target_id: str) -> str | None:
        """A station's or deputy's name as identity has it; None when unknown or outside the region."""
        path = f"/v1/{'deputies' if kind == 'deputy' else 'stations'}/{target_id}"
        body = await self.up.identity.json("GET", path, headers=self.headers(), not_found_ok=True)
        return None if body is None else str(body.get("name", ""))

    async def station(self, station_id: str) -> StationDetail | None:
        """The station; None when unknown or outside the administrator's region (identity says the same)."""
        body = await self.up.identity.json("GET", f"/v1/stations/{station_id}", headers=self.headers(),
                                           not_found_ok=True)
        return None if body is None else StationDetail.model_validate(body)

    async def save_station(self, station_id: str, body: Mapping[str, Any]) -> StationDetail:
        answer = await self.up.identity.json("PUT", f"/v1/stations/{station_id}", json=dict(body),
                                             headers=self.headers())
        return StationDetail.model_validate(answer)

    async def deputy(self, deputy_id: str) -> DeputyDetail | None:
        body = await self.up.identity.json("GET", f"/v1/deputies/{deputy_id}", headers=self.headers(),
                                           not_found_ok=True)
        return None if body is None else DeputyDetail.model_validate(body)

    async def save_deputy(self, deputy_id: str, body: Mapping[str, Any]) -> DeputyDetail:
        # The phone travels in this body only, to identity, which encrypts it: never in a URL or a log.
        answer = await self.up.identity.json("PUT", f"/v1/deputies/{deputy_id}", json=dict(body),
                                             headers=self.headers())
        return DeputyDetail.model_validate(answer)

    async def save_region(self, code: str, name: str, parent_code: str | None) -> RegionSaved:
        answer = await self.up.identity.json("PUT", f"/v1/regions/{code}", headers=self.headers(),
                                             json={"name": name, "parent_code": parent_code})
        return RegionSaved.model_validate(answer)

    @staticmethod
    def _code_path(kind: str, target_id: str) -> str:
        return f"/v1/{'deputies' if kind == 'deputy' else 'stations'}/{target_id}/code"

    async def issue_code(self, kind: str, target_id: str, *, idempotency_key: str) -> IssuedCode:
        body = await self.up.identity.json("POST", self._code_path(kind, target_id),
                                           headers=self.headers(idempotency_key))
        return IssuedCode.model_validate(body)

    async def revoke_code(self, kind: str, target_id: str) -> None:
        await self.up.identity.call("DELETE", self._code_path(kind, target_id), headers=self.headers())

    # ---- handling units -----------------------------------------------------------------------

    async def units(self, region: str) -> list[Unit]:
        # The public list takes digits only: a grid's id ("…-G01") narrows to its community.
        prefix = "".join(c for c in region[:12] if c.isdigit()) if region else ""
        params = {"region_code": prefix} if len(prefix) >= 2 else None
        return _UNITS.validate_python(await self.up.suggestions.json("GET", "/v1/public/units", params=params))

    async def unit(self, unit_id: str) -> UnitDetail | None:
        body = await self.up.suggestions.json("GET", f"/v1/units/{unit_id}", headers=self.headers(),
                                              not_found_ok=True)
        return None if body is None else UnitDetail.model_validate(body)

    async def save_unit(self, unit_id: str, body: Mapping[str, Any]) -> UnitDetail:
        answer = await self.up.suggestions.json("PUT", f"/v1/units/{unit_id}", json=dict(body),
                                                headers=self.headers())
        return UnitDetail.model_validate(answer)

    # ---- grid platforms -----------------------------------------------------------------------

    async def platforms(self) -> list[Platform]:
        return _PLATFORMS.validate_python(await self.up.routing.json("GET", "/v1/grid-platforms",
                                                                     headers=self.headers()))

    async def platform(self, platform_id: str) -> Platform | None:
        body = await self.up.routing.json("GET", f"/v1/grid-platforms/{platform_id}", headers=self.headers(),
                                          not_found_ok=True)
        return None if body is None else Platform.model_validate(body)

    async def save_platform(self, platform_id: str, body: Mapping[str, Any]) -> Platform:
        # The body holds the shared secret or the API key: it goes to routing, which seals it, and nowhere else.
        answer = await self.up.routing.json("PUT", f"/v1/grid-platforms/{platform_id}", json=dict(body),
                                            headers=self.headers())
        return Platform.model_validate(answer)

    async def grid_categories(self) -> list[GridCategory]:
        """The categories a grid platform may take (routing's public list, those marked `grid`)."""
        found = _CATEGORIES.validate_python(await self.up.routing.json("GET", "/v1/categories"))
        return [c for c in found if c.grid]

    # ---- calendar and clock rules -------------------------------------------------------------

    async def calendar(self, year: int) -> CalendarYear:
        """The year's calendar; a 404 UpstreamError, with intake's words, when it is neither built in nor loaded."""
        body = await self.up.intake.json("GET", f"/v1/calendar/{year}", headers=self.headers())
        return CalendarYear.model_validate(body)

    async def load_calendar(self, year: int, holidays: list[str], workdays: list[str]) -> CalendarYear:
        body = await self.up.intake.json("PUT", f"/v1/calendar/{year}", headers=self.headers(),
                                         json={"holidays": holidays, "workdays": workdays})
        return CalendarYear.model_validate(body)

    async def clock_rules(self) -> list[ClockRule]:
        return _RULES.validate_python(await self.up.intake.json("GET", "/v1/clock-rules", headers=self.headers()))

    async def save_clock_rule(self, prefix: str, body: Mapping[str, Any]) -> ClockRule:
        answer = await self.up.intake.json("PUT", f"/v1/clock-rules/{prefix}", json=dict(body),
                                           headers=self.headers())
        return ClockRule.model_validate(answer)
