"""Loading the demo county into a running stack through its public APIs, and what to try next.

Every call is one a city system could make: PUTs are idempotent and POSTs carry an
Idempotency-Key, so `minyi up --demo` on a home that already holds the county changes nothing.
QR codes given in `known_codes` that still resolve to their owner are kept (issuing a new one
would void the one already printed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from minyi.demo_county import (
    CHINA,
    ELECTION_DAY,
    FEATURED_DEPUTY,
    GRID_PLATFORM,
    UNITS,
    County,
)

Say = Callable[[str], None]
# (roles, region) → a bearer token the stack accepts. Region "" (everywhere) only for admin and
# integration: staff always act for a place.
Signer = Callable[[Sequence[str], str], str]


class DemoError(Exception):
    """A step of loading failed: which call, and what the service said."""


@dataclass(frozen=True)
class Endpoints:
    identity: str
    intake: str
    routing: str
    suggestions: str
    scoring: str
    # The pages people use; empty when the web tier is not running.
    web: str = ""


@dataclass(frozen=True)
class GridPlatform:
    url: str
    secret: str


@dataclass
class Loaded:
    county: str
    codes: dict[str, str] = field(default_factory=dict)  # deputy or station id → QR code
    sample_receipt: str | None = None
    registry: dict[str, int] = field(default_factory=dict)  # source → records accepted or unchanged
    voters: int = 0
    election: str = ""


class _Api:
    def __init__(self, client: httpx.AsyncClient, endpoints: Endpoints, sign: Signer) -> None:
        self.client, self.endpoints, self.sign = client, endpoints, sign

    async def call(self, method: str, service: str, path: str, roles: Sequence[str], *, ok: Sequence[int] = (200,),
                   json: Any = None, key: str | None = None, region: str = "") -> Any:
        url = f"{getattr(self.endpoints, service)}{path}"
        headers = {"Authorization": f"Bearer {self.sign(roles, region)}"}
        if key:
            headers["Idempotency-Key"] = f"minyi-demo-{key}"
        try:
            resp = await self.client.request(method, url, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise DemoError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code not in ok:
            raise DemoError(f"{method} {url} answered {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    async def code(self, collection: str, owner: str, known: str | None) -> str:
        if known:
            resp = await self.client.get(f"{self.endpoints.identity}/v1/codes/{known}")
            if resp.status_code == 200 and resp.json().get("id") == owner:
                return known
        issued = await self.call("POST", "identity", f"/v1/{collection}/{owner}/code", ["admin"], ok=(201,))
        return str(issued["code"])


async def load(county: County, endpoints: Endpoints, sign: Signer, *, grid: GridPlatform | None = None,
               known_codes: Mapping[str, str] | None = None, say: Say = print,
               now: datetime | None = None) -> Loaded:
    """Regions, stations, deputies with codes, units, the grid platform, registries and an election."""
    loaded = Loaded(county.code, election=county.election_id)
    known_codes = known_codes or {}
    at = now or datetime.now(CHINA)
    async with httpx.AsyncClient(timeout=30) as client:
        api = _Api(client, endpoints, sign)
        say(f"demo: [1/6] {len(county.regions)} regions, {len(county.stations)} stations")
        for region in county.regions:
            await api.call("PUT", "identity", f"/v1/regions/{region.code}", ["admin"], ok=(200, 201),
                           json={"name": region.name, "parent_code": region.parent})
        for station in county.stations:
            await api.call("PUT", "identity", f"/v1/stations/{station.id}", ["admin"], ok=(200, 201),
                           json={"name": station.name, "kind": station.kind, "region_code": station.region})
            loaded.codes[station.id] = await api.code("stations", station.id, known_codes.get(station.id))

        say(f"demo: [2/6] {len(county.deputies)} deputies, one at every level, each with a QR code")
        for deputy in county.deputies:
            body: dict[str, Any] = {"name": deputy.name, "level": deputy.level, "region_code": deputy.region,
                                    "station_ids": list(deputy.stations), "district_id": deputy.district}
            if deputy.phone:
                body["phone"] = deputy.phone
            await api.call("PUT", "identity", f"/v1/deputies/{deputy.id}", ["admin"], ok=(200, 201), json=body)
            loaded.codes[deputy.id] = await api.code("deputies", deputy.id, known_codes.get(deputy.id))

        say(f"demo: [3/6] {len(county.units)} handling units")
        for unit in county.units:
            await api.call("PUT", "suggestions", f"/v1/units/{unit.id}", ["admin"], ok=(200, 201),
                           json={"name": unit.name, "region_code": unit.region, "parent_id": unit.parent})

        if grid is not None:
            say(f"demo: [4/6] grid platform {GRID_PLATFORM} for region {county.code} at {grid.url}")
            await api.call("PUT", "routing", f"/v1/grid-platforms/{GRID_PLATFORM}", ["admin"], ok=(200, 201),
                           json={"name": "演示区基层治理四平台（模拟器）", "region_prefixes": [county.code],
                                 "transport": "http", "url": grid.url, "secret": grid.secret})
        else:
            say("demo: [4/6] no grid platform given; reports stay with deputies and staff")

        say("demo: [5/6] registry records (population, migrant)")
        for source, records in (("population", county.population_records(at)),
                                ("migrant", county.migrant_records(at))):
            answer = await api.call("POST", "identity", f"/v1/registry/{source}/records", ["integration"],
                                    json=records)
            if answer["rejected"]:
                raise DemoError(f"the {source} registry rejected demo records: {answer['rejected']}")
            loaded.registry[source] = answer["accepted"] + answer["unchanged"]

        say(f"demo: [6/6] election {county.election_id} on {ELECTION_DAY} with {len(county.districts)} districts, "
            "its voter roll and a reconciliation")
        await api.call("PUT", "identity", f"/v1/elections/{county.election_id}", ["npc_staff"], ok=(200, 201),
                       region=county.code,
                       json={"region_code": county.code, "election_date": ELECTION_DAY.isoformat(),
                             "districts": [{"id": d, "region_codes": list(codes)}
                                           for d, codes in county.districts.items()]})
        election = county.election_id
        roll = await api.call("POST", "identity", f"/v1/elections/{election}/voters", ["npc_staff"], ok=(200,),
                              region=county.code,
                              json=county.voters())
        loaded.voters = roll["accepted"] + sum(1 for r in roll["rejected"] if _already_registered(r))
        await api.call("POST", "identity", f"/v1/elections/{election}/reconciliation", ["npc_staff"], ok=(202,),
                       region=county.code)

        sample = await api.call(
            "POST", "intake", "/v1/reports", ["citizen"], ok=(201,), key=f"sample-{loaded.codes[FEATURED_DEPUTY]}",
            json={"channel": "h5", "code": loaded.codes[FEATURED_DEPUTY], "anonymous": True,
                  "content": "宝石社区东门外的路灯坏了一个多星期，晚上回家很不安全，希望尽快修好。"})
        loaded.sample_receipt = sample["receipt_code"]
    return loaded


def _already_registered(rejection: dict[str, Any]) -> bool:
    # A second load meets its own roll: those people are on it already.
    return "已在本选区登记" in str(rejection.get("error", ""))


# The station whose kiosk the walkthrough shows.
KIOSK_STATION = "demo-station"


def next_steps(loaded: Loaded, endpoints: Endpoints) -> list[str]:
    code, county = loaded.codes[FEATURED_DEPUTY], loaded.county
    body = ('{"channel":"h5","code":"' + code + '","anonymous":false,'
            '"reporter":{"name":"张三","phone":"13900000000"},"content":"小区门口的人行道地砖松动，老人容易绊倒"}')
    lines = ["", f"Demo county loaded (演示区, region {county}). Try:"]
    if endpoints.web:
        station = KIOSK_STATION if KIOSK_STATION in loaded.codes else None
        lines += [
            "  • in a browser (or a phone on this network), what a scan of deputy 王丽娟's QR code opens:",
            f"      {endpoints.web}/q/{code}",
            f"  • follow the sample report: {endpoints.web}/r/{loaded.sample_receipt}"
            + (f"   a station's kiosk: {endpoints.web}/kiosk/{loaded.codes[station]}" if station else ""),
            f"  • public boards: {endpoints.web}/public/stats?region_code={county}",
            "  • the workbench, signed in as deputy 王丽娟, a station clerk or a handling unit (one-time links):",
            f"      minyi login-url --role deputy --deputy {FEATURED_DEPUTY} --region {county}",
            f"      minyi login-url --role station_staff --region {county}",
            f"      minyi login-url --role unit --unit {UNITS[0]} --region {county}",
        ]
    lines += [
        "  • a citizen scans deputy 王丽娟's QR code and files a report:",
        f"      curl -s -X POST {endpoints.intake}/v1/reports -H 'Content-Type: application/json' "
        f"-H 'Idempotency-Key: try-1' -d '{body}'",
        "  • follow a report by its receipt (a sample one was filed for you):",
        f"      curl -s {endpoints.intake}/v1/receipts/{loaded.sample_receipt}",
        "  • act as that deputy (list, acknowledge, reply to the reports aimed at her):",
        f"      TOKEN=$(minyi token --role deputy --deputy {FEATURED_DEPUTY} --region {county})",
        f"      curl -s {endpoints.intake}/v1/reports -H \"Authorization: Bearer $TOKEN\"",
        "  • the deputy's QR code to print, and what it resolves to:",
        f"      {endpoints.identity}/v1/deputies/{FEATURED_DEPUTY}/code.svg   "
        f"{endpoints.identity}/v1/codes/{code}",
        "  • congress staff: the voter-roll reconciliation, and supervision topics from hotspots:",
        f"      TOKEN=$(minyi token --role npc_staff --region {county})",
        f"      curl -s {endpoints.identity}/v1/elections/{loaded.election}/reconciliation "
        "-H \"Authorization: Bearer $TOKEN\"",
        f"      curl -s {endpoints.suggestions}/v1/supervision-topics -H \"Authorization: Bearer $TOKEN\"",
        f"  • deputies ranked in the county: {endpoints.scoring}/v1/rankings?year={datetime.now(CHINA).year}"
        f"&region_code={county}",
    ]
    return lines
