"""Intake's public reads on real PostgreSQL: a region's monthly figures for the public board, counted
with the service's clock moved through months of reports; and QR codes printed with intake's
address, which lead on to the web tier's page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Servers
from intakeutil import Clock, bearer, declare_upstream_streams, intake_app

from services.intake import stats
from shared.calendar import SHANGHAI
from shared.settings import Settings

# Regions of this module's own: the session's database holds other modules' reports too.
COUNTY = "340641"
TOWN = "340641001"
NEIGHBOUR = "340642"
STAFF = bearer("station_staff", COUNTY)
PROBLEM_JSON = "application/problem+json"
ZERO = dict.fromkeys(stats.COUNTS, 0)


def cst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
async def home(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    await declare_upstream_streams(servers.nats_url)
    yield tmp_path_factory.mktemp("intake-public")


class Desk:
    """Station staff registering letters (纸质来信) with their real receipt time, and the citizen's side."""

    def __init__(self, client: httpx.AsyncClient, clock: Clock) -> None:
        self.client, self.clock = client, clock

    def at(self, when: str) -> None:
        self.clock.at = cst(when)

    async def letter(self, received_at: str, region: str = COUNTY) -> dict[str, Any]:
        resp = await self.client.post("/v1/reports", headers=bearer("station_staff", region), json={
            "channel": "paper", "region_code": region, "content": f"来信反映：{received_at} 收到的问题。",
            "anonymous": True, "received_at": received_at})
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def handle(self, report: dict[str, Any], action: str, **body: Any) -> None:
        resp = await self.client.post(f"/v1/reports/{report['id']}/{action}", headers=STAFF, json=body or None)
        assert resp.status_code == 200, resp.text

    async def rate(self, report: dict[str, Any], stars: int) -> None:
        resp = await self.client.post(f"/v1/receipts/{report['receipt_code']}/rating", json={"stars": stars})
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "closed"

    async def figures(self, region: str = COUNTY, **params: Any) -> dict[str, Any]:
        resp = await self.client.get("/v1/public/stats", params={"region_code": region, **params})  # no token
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


async def test_monthly_figures_count_open_overdue_reports_against_the_rates(servers: Servers, home: Path) -> None:
    clock = Clock(cst("2026-07-15T10:00:00"))
    async with intake_app(servers, home, clock, client_address="192.0.2.50") as (client, _, _):
        desk = Desk(client, clock)
        july = await desk.letter("2026-07-15T09:00:00+08:00")  # never handled

        desk.at("2026-09-10T10:00:00")
        answered = await desk.letter("2026-09-10T09:00:00+08:00")
        ignored = await desk.letter("2026-09-10T09:30:00+08:00")
        assert answered["ack_due"] == "2026-09-14T23:59:59+08:00"
        desk.at("2026-09-11T10:00:00")
        await desk.handle(answered, "acknowledge")
        desk.at("2026-09-15T10:00:00")
        await desk.handle(answered, "reply", content="已修复。")
        desk.at("2026-09-16T10:00:00")
        await desk.rate(answered, 5)

        desk.at("2026-10-12T10:00:00")
        late_ack = await desk.letter("2026-10-12T09:00:00+08:00")
        unanswered = await desk.letter("2026-10-12T09:10:00+08:00")
        # Half past midnight on 1 October in China is still 30 September in UTC: October here.
        holiday = await desk.letter("2026-10-01T00:30:00+08:00")
        await desk.letter("2026-10-12T09:20:00+08:00", region=NEIGHBOUR)
        assert (late_ack["ack_due"], late_ack["reply_due"]) == ("2026-10-14T23:59:59+08:00",
                                                                "2026-10-21T23:59:59+08:00")
        assert (holiday["ack_due"], holiday["reply_due"]) == ("2026-10-09T23:59:59+08:00",
                                                              "2026-10-15T23:59:59+08:00")
        desk.at("2026-10-13T10:00:00")
        await desk.handle(unanswered, "acknowledge")

        # Mid-October: the holiday letter is past its acknowledgement deadline, so it counts as decided
        # (and late) for acknowledgement; for the answer its deadline has not come yet.
        october = (await desk.figures(months=1))["months"]
        assert october == [{"month": "2026-10", **ZERO, "received": 3, "ack_decided": 2, "ack_on_time": 1,
                            "open_overdue": 1}]

        desk.at("2026-10-20T10:00:00")
        await desk.handle(late_ack, "acknowledge")
        desk.at("2026-10-20T11:00:00")
        await desk.handle(late_ack, "reply", content="已安排清运。")
        desk.at("2026-10-20T12:00:00")
        await desk.rate(late_ack, 2)

        desk.at("2026-11-19T10:00:00")
        await desk.letter("2026-11-19T09:00:00+08:00", region=TOWN)  # within the county, deadlines ahead

        desk.at("2026-11-20T10:00:00")
        board = await desk.figures(months=3)
        assert board["region_code"] == COUNTY and board["generated_at"] == "2026-11-20T10:00:00+08:00"
        assert board["months"] == [
            {"month": "2026-09", "received": 2, "ack_decided": 2, "ack_on_time": 1, "reply_decided": 2,
             "reply_on_time": 1, "rated": 1, "satisfied": 1, "closed": 1, "open_overdue": 1},
            {"month": "2026-10", "received": 3, "ack_decided": 3, "ack_on_time": 1, "reply_decided": 3,
             "reply_on_time": 1, "rated": 1, "satisfied": 0, "closed": 1, "open_overdue": 2},
            {"month": "2026-11", **ZERO, "received": 1},
        ]
        # Five months: July's letter, never handled, and an August without reports.
        longer = (await desk.figures(months=5))["months"]
        assert [m["month"] for m in longer] == ["2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
        assert longer[0] == {"month": "2026-07", **ZERO, "received": 1, "ack_decided": 1, "reply_decided": 1,
                             "open_overdue": 1}
        assert longer[1] == {"month": "2026-08", **ZERO}
        assert longer[2:] == board["months"]
        # By region prefix: the town alone, and the neighbouring county alone.
        assert [m["received"] for m in (await desk.figures(TOWN, months=3))["months"]] == [0, 0, 1]
        assert [m["received"] for m in (await desk.figures(NEIGHBOUR, months=3))["months"]] == [0, 1, 0]
        # Twelve months by default, the current one last.
        default = (await desk.figures())["months"]
        assert len(default) == 12 and default[0]["month"] == "2025-12" and default[-1]["month"] == "2026-11"
        assert sum(m["received"] for m in default) == 7
        assert july["id"] and ignored["id"] and unanswered["id"]


@pytest.mark.parametrize("params", [{}, {"region_code": "3"}, {"region_code": "34064x"}, {"region_code": "3" * 13},
                                    {"region_code": COUNTY, "months": 0}, {"region_code": COUNTY, "months": 37}],
                         ids=["no region", "one digit", "letters", "thirteen digits", "no months", "37 months"])
async def test_figures_need_a_region_and_a_sensible_number_of_months(
        servers: Servers, home: Path, params: dict[str, Any]) -> None:
    async with intake_app(servers, home, Clock()) as (client, _, _):
        resp = await client.get("/v1/public/stats", params=params)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == PROBLEM_JSON


async def test_figures_are_limited_per_source_like_receipt_lookups(servers: Servers, home: Path) -> None:
    async with intake_app(servers, home, Clock(), lookup_limit="2/minute") as (client, _, _):
        for _ in range(2):
            assert (await client.get("/v1/public/stats", params={"region_code": COUNTY})).status_code == 200
        limited = await client.get("/v1/public/stats", params={"region_code": COUNTY})
        assert limited.status_code == 429 and limited.headers["content-type"] == PROBLEM_JSON
        assert int(limited.headers["Retry-After"]) >= 1


def test_month_windows_run_in_china_and_across_years() -> None:
    # 16:30 UTC on 31 December is already 1 January in China.
    window = stats.month_window(datetime.fromisoformat("2026-12-31T16:30:00+00:00"), 3)
    assert window.months == ["2026-11", "2026-12", "2027-01"]
    assert window.start == cst("2026-11-01T00:00:00") and window.end == cst("2027-02-01T00:00:00")
    assert stats.month_window(cst("2026-03-05T00:00:00"), 1).months == ["2026-03"]
    assert len(stats.month_window(cst("2026-03-05T00:00:00"), 36).months) == 36
    for months in (0, 37):
        with pytest.raises(ValueError):
            stats.month_window(cst("2026-03-05T00:00:00"), months)
    assert stats.fill(stats.month_window(cst("2026-03-05T00:00:00"), 2), {"2026-03": {"received": 4}}) == [
        {"month": "2026-02", **ZERO}, {"month": "2026-03", **ZERO, "received": 4}]


# --- QR codes printed with intake's address -------------------------------------------------------------------------


async def test_a_code_printed_with_intakes_address_leads_on_to_the_page(servers: Servers, home: Path) -> None:
    async with intake_app(servers, home, Clock(), public_base_url="https://minyi.example/") as (client, _, _):
        resp = await client.get("/q/0ABCDEFGHJKMNPQRSTVWX")  # no token: a citizen's phone camera
        assert resp.status_code == 308
        assert resp.headers["location"] == "https://minyi.example/q/0ABCDEFGHJKMNPQRSTVWX"
        # Only a code goes on: nothing that would change the path it leads to.
        for bad in ("/q/ab.cd", "/q/..%2F..%2Fadmin", "/q/" + "A" * 65):
            refused = await client.get(bad)
            assert refused.status_code in (404, 422), (bad, refused.status_code)
            assert "location" not in refused.headers


def test_codes_lead_to_the_web_tier_by_default() -> None:
    assert Settings().public_base_url == "http://127.0.0.1:8100"
