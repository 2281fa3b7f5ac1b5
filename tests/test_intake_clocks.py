"""The report clocks on real PostgreSQL and NATS: statutory deadlines, reminders and escalation
that survive restarts, automatic closing, a year's calendar loaded late, and regions' own limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Servers
from intakeutil import Clock, bearer, declare_upstream_streams, intake_app, intake_events, wait_for

from shared.calendar import SHANGHAI

REGION = "340621"
STAFF = bearer("station_staff", REGION)
ADMIN = bearer("admin")


def cst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
async def home(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    await declare_upstream_streams(servers.nats_url)
    yield tmp_path_factory.mktemp("intake-clocks")


async def _paper(client: object, received_at: str, region: str = REGION, content: str = "纸质来信") -> dict[str, str]:
    resp = await client.post("/v1/reports", headers=STAFF if region.startswith(REGION) else  # type: ignore[attr-defined]
                             bearer("station_staff", region), json={
                                 "channel": "paper", "region_code": region, "content": content,
                                 "anonymous": True, "received_at": received_at})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_deadlines_skip_the_national_day_holiday_and_count_the_make_up_saturday(
        servers: Servers, home: Path) -> None:
    clock = Clock(cst("2025-10-01T10:00:00"))
    async with intake_app(servers, home, clock) as (client, _, _):
        # 2025: 1–8 October off; Saturday 11 October a working day. Received Tuesday 30 September.
        created = await _paper(client, "2025-09-30T16:30:00+08:00")
        assert created["ack_due"] == "2025-10-10T23:59:59+08:00"
        assert created["reply_due"] == "2025-10-16T23:59:59+08:00"
        # Received on the holiday itself: the day of receipt never counts, holidays neither.
        clock.at = cst("2025-10-04T10:00:00")
        created = await _paper(client, "2025-10-03T09:00:00+08:00")
        assert created["ack_due"] == "2025-10-10T23:59:59+08:00"
        assert created["reply_due"] == "2025-10-16T23:59:59+08:00"
        # 2026: 1–7 October off, Saturday 10 October worked. Received Friday 9 October, late evening.
        clock.at = cst("2026-10-09T23:00:00")
        created = await _paper(client, "2026-10-09T22:59:00+08:00")
        assert created["ack_due"] == "2026-10-12T23:59:59+08:00"
        assert created["reply_due"] == "2026-10-19T23:59:59+08:00"


async def test_reminders_and_escalation_fire_after_a_restart(servers: Servers, home: Path) -> None:
    clock = Clock(cst("2026-11-16T10:00:00"))
    async with intake_app(servers, home, clock) as (client, _, _):
        created = await _paper(client, "2026-11-16T09:00:00+08:00", content="重启前登记")
    rid = created["id"]
    assert created["ack_due"] == "2026-11-18T23:59:59+08:00"
    # The service is down over the reminder hour; a new process finds the timer waiting in the database.
    clock = Clock(cst("2026-11-18T09:30:00"))
    async with intake_app(servers, home, clock, clock_poll_seconds=0.2) as (client, runtime, _):
        events = await wait_for(lambda: _has(runtime.settings.nats_url, rid, "intake.report.reminder"),
                                what="the acknowledgement reminder")
        reminder = next(data for kind, data in events if kind == "intake.report.reminder")
        assert reminder["kind"] == "ack" and reminder["due_at"] == "2026-11-18T15:59:59+00:00"
        assert reminder["deputy_id"] is None and reminder["region_code"] == REGION
    clock = Clock(cst("2026-11-19T00:00:05"))
    async with intake_app(servers, home, clock, clock_poll_seconds=0.2) as (client, runtime, _):
        events = await wait_for(lambda: _has(runtime.settings.nats_url, rid, "intake.report.overdue"),
                                what="the escalation")
        overdue = [data for kind, data in events if kind == "intake.report.overdue"]
        assert len(overdue) == 1 and overdue[0]["kind"] == "ack"
        assert overdue[0]["escalate_to"] == ["station_staff", "npc_staff"]
        detail = (await client.get(f"/v1/reports/{rid}", headers=STAFF)).json()
        assert detail["ack_overdue"] is True and detail["reply_overdue"] is False
        assert any("受理已超期" in t["note"] and not t["public"] for t in detail["timeline"])
        # Late acknowledgement is recorded as late; the flag stays.
        resp = await client.post(f"/v1/reports/{rid}/acknowledge", headers=STAFF)
        assert resp.json()["ack_overdue"] is True
    events = await intake_events(servers.nats_url, rid)
    acknowledged = next(data for kind, data in events if kind == "intake.report.acknowledged")
    assert acknowledged["on_time"] is False
    assert [kind for kind, _ in events].count("intake.report.reminder") == 1, "fired once across three processes"


async def _has(url: str, rid: str, kind: str) -> list[tuple[str, dict[str, object]]] | None:
    events = await intake_events(url, rid)
    return events if any(k == kind for k, _ in events) else None


async def test_an_answer_nobody_rates_closes_after_fifteen_days(servers: Servers, home: Path) -> None:
    clock = Clock(cst("2026-11-02T10:00:00"))
    async with intake_app(servers, home, clock) as (client, runtime, _):
        created = await _paper(client, "2026-11-02T09:00:00+08:00", content="待自动办结")
        resp = await client.post(f"/v1/reports/{created['id']}/reply", headers=STAFF, json={"content": "已处理"})
        assert resp.status_code == 200
        from services.intake.timers import fire_due

        clock.at = cst("2026-11-17T09:59:00")
        await _fire_all(runtime, fire_due)
        assert (await client.get(f"/v1/receipts/{created['receipt_code']}")).json()["status"] == "answered"
        clock.at = cst("2026-11-17T10:00:01")
        await _fire_all(runtime, fire_due)
        receipt = (await client.get(f"/v1/receipts/{created['receipt_code']}")).json()
        assert receipt["status"] == "closed" and "自动办结" in receipt["timeline"][-1]["note"]
        assert receipt["can_rate"] is False


async def _fire_all(runtime: object, fire_due: object) -> None:
    while await fire_due(runtime):  # type: ignore[operator]
        pass


async def test_a_year_loaded_late_recounts_provisional_deadlines(servers: Servers, home: Path) -> None:
    clock = Clock(cst("2026-12-28T10:00:00"))
    async with intake_app(servers, home, clock) as (client, _, _):
        created = await _paper(client, "2026-12-28T09:00:00+08:00", content="跨年")
        assert created["ack_due"] == "2026-12-30T23:59:59+08:00"
        # 2027 is not built in yet: weekdays are guessed to be working days, and the result says so.
        assert created["reply_due"] == "2027-01-06T23:59:59+08:00" and created["due_provisional"] is True
        resp = await client.get("/v1/calendar/2027", headers=ADMIN)
        assert resp.status_code == 404
        resp = await client.put("/v1/calendar/2027", headers=bearer("npc_staff", REGION),
                                json={"holidays": ["2027-01-01"]})
        assert resp.status_code == 403, "only admins load the national calendar"
        resp = await client.put("/v1/calendar/2027", headers=ADMIN, json={"holidays": ["2026-01-01"]})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "holidays[0]"
        resp = await client.put("/v1/calendar/2026", headers=ADMIN, json={"holidays": []})
        assert resp.status_code == 409, "built-in years are not overridden"
        resp = await client.put("/v1/calendar/2027", headers=ADMIN, json={
            "holidays": ["2027-01-01", "2027-02-05", "2027-02-08"], "workdays": ["2027-02-20"]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["recomputed"] >= 1
        detail = (await client.get(f"/v1/reports/{created['id']}", headers=STAFF)).json()
        assert detail["reply_due"] == "2027-01-07T23:59:59+08:00" and detail["due_provisional"] is False
        got = (await client.get("/v1/calendar/2027", headers=ADMIN)).json()
        assert got["source"] == "loaded" and got["workdays"] == ["2027-02-20"]
        assert "2027-02-05" in got["holidays"]


async def test_a_region_may_set_its_own_limits_for_new_reports(servers: Servers, home: Path) -> None:
    clock = Clock(cst("2026-11-16T10:00:00"))
    async with intake_app(servers, home, clock) as (client, _, _):
        before = await _paper(client, "2026-11-16T09:00:00+08:00", region="340622")
        resp = await client.put("/v1/clock-rules/340622", headers=bearer("npc_staff", "3406"),
                                json={"ack_days": 1, "reply_days": 5})
        assert resp.status_code == 200, resp.text
        resp = await client.put("/v1/clock-rules/340699", headers=bearer("npc_staff", "340622"),
                                json={"ack_days": 1, "reply_days": 5})
        assert resp.status_code == 403
        resp = await client.put("/v1/clock-rules/340622", headers=bearer("npc_staff", "3406"),
                                json={"ack_days": 3, "reply_days": 2})
        assert resp.status_code == 422
        after = await _paper(client, "2026-11-16T09:00:00+08:00", region="340622001")
        assert after["ack_due"] == "2026-11-17T23:59:59+08:00" and after["reply_due"] == "2026-11-23T23:59:59+08:00"
        unchanged = (await client.get(f"/v1/reports/{before['id']}", headers=bearer("station_staff", "340622"))).json()
        assert unchanged["reply_due"] == before["reply_due"] == "2026-11-25T23:59:59+08:00", \
            "a rule never rewrites existing deadlines"
