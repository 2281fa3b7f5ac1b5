"""Congress staff's year by deputy and station (`GET /v1/stats/targets`) on real PostgreSQL and NATS,
with identity resolving the codes: letters registered by station staff with their real receipt time,
taken up and answered on time or late and rated, then every count checked; the region the figures
cover, the caller's region, and the year's edges in China time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import Servers
from intakeutil import Intake, bearer, directory, intake_stack

from services.intake import stats
from shared.calendar import SHANGHAI

# Regions and ids of this module's own: the session's database and directory hold other modules' too.
REGION = "340661"
TOWN = "340661001"
NEIGHBOUR = "340662"
EMPTY = "340663"
D1, D2, S1, N1 = "ts-d1", "ts-d2", "ts-s1", "ts-n1"
NPC = bearer("npc_staff", REGION)
PATH = "/v1/stats/targets"
ZERO = {"received": 0, "ack_decided": 0, "ack_on_time": 0, "reply_decided": 0, "reply_on_time": 0, "rated": 0,
        "satisfied": 0, "overdue": 0}


def cst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# When the figures are read: every letter below was received before, the newest with its deadlines ahead.
NOW = cst("2026-06-01T10:00:00")


class Desk:
    """Station staff registering letters (纸质来信) with their real receipt time and handling them; citizens rating."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def letter(self, to: str | None, received: str, *, region: str = REGION,
                     town: str | None = None) -> dict[str, Any]:
        at = cst(received)
        self.intake.clock.at = at + timedelta(minutes=5)
        body: dict[str, Any] = {"channel": "paper", "content": f"来信反映：{received} 收到的问题。",
                                "anonymous": True, "received_at": at.isoformat()}
        if to is not None:
            body["code"] = self.intake.codes[to]
        if to is None or town is not None:
            body["region_code"] = town or region
        resp = await self.intake.client.post("/v1/reports", headers=bearer("station_staff", region), json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def handle(self, report: dict[str, Any], action: str, at: datetime, **body: Any) -> None:
        self.intake.clock.at = at
        resp = await self.intake.client.post(f"/v1/reports/{report['id']}/{action}",
                                             headers=bearer("station_staff", REGION), json=body or None)
        assert resp.status_code == 200, resp.text

    async def rate(self, report: dict[str, Any], stars: int, at: datetime) -> None:
        self.intake.clock.at = at
        resp = await self.intake.client.post(f"/v1/receipts/{report['receipt_code']}/rating", json={"stars": stars})
        assert resp.status_code == 201, resp.text


def due(report: dict[str, Any], which: str) -> datetime:
    return datetime.fromisoformat(report[which])


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-target-stats"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {D1: [S1], D2: []}, [S1])
        await directory(it, NEIGHBOUR, None, {N1: []}, [])
        desk = Desk(it)
        hour = timedelta(hours=1)

        # Deputy 1: taken up at the very deadline and answered in time, 5 stars; taken up and answered late,
        # 2 stars; never handled; and one of today in a town of the county, its deadlines ahead.
        prompt = await desk.letter(D1, "2026-03-02T09:00:00")
        await desk.handle(prompt, "acknowledge", due(prompt, "ack_due"))
        await desk.handle(prompt, "reply", due(prompt, "reply_due") - hour, content="已修复。")
        await desk.rate(prompt, 5, due(prompt, "reply_due"))
        late = await desk.letter(D1, "2026-03-09T09:00:00")
        await desk.handle(late, "acknowledge", due(late, "ack_due") + hour)
        await desk.handle(late, "reply", due(late, "reply_due") + hour, content="已安排。")
        await desk.rate(late, 2, due(late, "reply_due") + 2 * hour)
        await desk.letter(D1, "2026-04-01T09:00:00")
        today = await desk.letter(D1, "2026-06-01T09:00:00", town=TOWN)
        assert due(today, "ack_due") > NOW

        # The station: answered in time and not rated yet; taken up in time, its answer now overdue.
        answered = await desk.letter(S1, "2026-04-13T09:00:00")
        await desk.handle(answered, "acknowledge", due(answered, "ack_due") - hour)
        await desk.handle(answered, "reply", due(answered, "reply_due") - hour, content="已答复。")
        waiting = await desk.letter(S1, "2026-04-20T09:00:00")
        await desk.handle(waiting, "acknowledge", due(waiting, "ack_due") - hour)
        assert due(waiting, "reply_due") < NOW

        # Deputy 2: New Year's Eve half an hour before midnight in China, and half an hour after it, which
        # is still 31 December in UTC. Neither handled.
        await desk.letter(D2, "2025-12-31T23:30:00")
        await desk.letter(D2, "2026-01-01T00:30:00")

        # Aimed at a region alone, and at a deputy of the neighbouring county.
        await desk.letter(None, "2026-03-02T10:00:00")
        await desk.letter(N1, "2026-03-02T11:00:00", region=NEIGHBOUR)
        it.clock.at = NOW
        yield it


async def figures(intake: Intake, region: str = REGION, year: int = 2026, headers: dict[str, str] = NPC
                  ) -> httpx.Response:
    return await intake.client.get(PATH, params={"region_code": region, "year": year}, headers=headers)


def counts(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    return {(t["kind"], t["id"]): {k: v for k, v in t.items() if k not in ("kind", "id")} for t in body["targets"]}


async def test_each_deputy_and_station_is_counted_with_the_boards_rules(intake: Intake) -> None:
    resp = await figures(intake)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["region_code"], body["year"], body["generated_at"]) == (REGION, 2026, "2026-06-01T10:00:00+08:00")
    # By kind and id; the letter aimed at the county alone is nobody's, the neighbour's is not in this county.
    assert [(t["kind"], t["id"]) for t in body["targets"]] == [("deputy", D1), ("deputy", D2), ("station", S1)]
    assert counts(body) == {
        # Taken up at 23:59:59 of its deadline day is on time; the late one and the unhandled one are not.
        ("deputy", D1): {"received": 4, "ack_decided": 3, "ack_on_time": 1, "reply_decided": 3, "reply_on_time": 1,
                         "rated": 2, "satisfied": 1, "overdue": 1},
        # Only the letter received after midnight in China belongs to 2026.
        ("deputy", D2): {**ZERO, "received": 1, "ack_decided": 1, "reply_decided": 1, "overdue": 1},
        ("station", S1): {**ZERO, "received": 2, "ack_decided": 2, "ack_on_time": 2, "reply_decided": 2,
                          "reply_on_time": 1, "overdue": 1},
    }


async def test_overdue_is_what_the_list_behind_it_holds(intake: Intake) -> None:
    body = (await figures(intake)).json()
    for target in body["targets"]:
        listed = await intake.client.get("/v1/reports", headers=NPC, params={
            f"{target['kind']}_id": target["id"], "open": "true", "overdue": "true",
            "received_from": "2026-01-01T00:00:00+08:00", "received_to": "2027-01-01T00:00:00+08:00"})
        assert listed.status_code == 200, listed.text
        assert listed.json()["total"] == target["overdue"], target


async def test_the_year_runs_from_midnight_to_midnight_in_china(intake: Intake) -> None:
    assert stats.year_window(2026) == (cst("2026-01-01T00:00:00"), cst("2027-01-01T00:00:00"))
    last_year = (await figures(intake, year=2025)).json()
    assert counts(last_year) == {("deputy", D2): {**ZERO, "received": 1, "ack_decided": 1, "reply_decided": 1,
                                                  "overdue": 1}}
    assert (await figures(intake, year=2024)).json()["targets"] == []


async def test_the_figures_cover_the_region_asked_within_the_callers(intake: Intake) -> None:
    town = (await figures(intake, TOWN)).json()
    assert counts(town) == {("deputy", D1): {**ZERO, "received": 1}}
    neighbour = bearer("npc_staff", NEIGHBOUR)
    outside = await figures(intake, headers=neighbour)
    assert outside.status_code == 403, outside.text
    assert outside.headers["content-type"] == "application/problem+json"
    assert "管辖范围" in outside.json()["detail"]
    # A town's staff may not ask for the whole county either.
    assert (await figures(intake, headers=bearer("npc_staff", TOWN))).status_code == 403
    own = (await figures(intake, NEIGHBOUR, headers=neighbour)).json()
    assert counts(own) == {("deputy", N1): {**ZERO, "received": 1, "ack_decided": 1, "reply_decided": 1,
                                            "overdue": 1}}
    assert (await figures(intake, EMPTY, headers=bearer("npc_staff", EMPTY))).json()["targets"] == []


async def test_only_congress_staff_read_the_figures(intake: Intake) -> None:
    assert (await intake.client.get(PATH, params={"region_code": REGION, "year": 2026})).status_code == 401
    for headers in (bearer("station_staff", REGION), bearer("deputy", REGION, deputy_id=D1), bearer("admin")):
        assert (await figures(intake, headers=headers)).status_code == 403
    for params in ({"region_code": REGION}, {"year": 2026}, {"region_code": REGION, "year": 1999},
                   {"region_code": "34 66", "year": 2026}):
        refused = await intake.client.get(PATH, params=params, headers=NPC)
        assert refused.status_code == 422, (params, refused.text)
