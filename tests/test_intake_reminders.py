"""催办 over HTTP on real PostgreSQL and NATS: staff of the region urge the deputy about an open
report; the timeline, the event, the audit log and the once-an-hour rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Servers
from intakeutil import Intake, bearer, directory, intake_events, intake_stack, wait_for

from services.intake.reminders_api import too_soon

REGION = "340657"
STAFF = bearer("station_staff", REGION, sub="clerk-340657")
NPC = bearer("npc_staff", REGION, sub="npc-340657")


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-reminders"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {"D1": ["S1"]}, ["S1"])
        yield it


async def _file(intake: Intake, content: str) -> dict[str, Any]:
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "code": intake.codes["D1"], "content": content, "anonymous": True})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_the_hour_is_counted_from_the_last_reminder() -> None:
    last = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert too_soon(None, last) is None
    assert too_soon(last, last + timedelta(minutes=59)) == last + timedelta(hours=1)
    assert too_soon(last, last + timedelta(hours=1)) is None


async def test_staff_urge_the_deputy_once_an_hour_with_timeline_event_and_audit(intake: Intake) -> None:
    created = await _file(intake, "村口垃圾桶满了没人清运（催办测试）。")
    report_id = created["id"]
    path = f"/v1/reports/{report_id}/reminders"
    intake.clock.at = datetime.now(UTC)
    try:
        resp = await intake.client.post(path, json={"note": "请今天内联系反映人"},
                                        headers={**STAFF, "Idempotency-Key": "urge-1"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["by"] == "station_staff" and body["note"] == "请今天内联系反映人"
        assert body["at"].endswith("+08:00")

        # A retry of the same POST answers the same and urges nothing more.
        again = await intake.client.post(path, json={"note": "请今天内联系反映人"},
                                         headers={**STAFF, "Idempotency-Key": "urge-1"})
        assert again.status_code == 201 and again.json() == body

        # Anyone else within the hour is refused, in Chinese, saying when it may be done again.
        intake.clock.at += timedelta(minutes=30)
        refused = await intake.client.post(path, json={}, headers=NPC)
        assert refused.status_code == 409, refused.text
        assert "一小时内只能催办一次" in refused.json()["detail"]
        assert 0 < int(refused.headers["retry-after"]) <= 1800

        # An hour after the first, congress staff may urge again.
        intake.clock.at += timedelta(minutes=31)
        second = await intake.client.post(path, json={}, headers=NPC)
        assert second.status_code == 201, second.text
        assert second.json()["by"] == "npc_staff" and second.json()["note"] is None
    finally:
        intake.clock.at = None

    detail = (await intake.client.get(f"/v1/reports/{report_id}", headers=STAFF)).json()
    urged = [(t["note"], t["public"], t["actor"]) for t in detail["timeline"] if "催" in t["note"]]
    assert urged == [("联络站已催促代表尽快办理。", True, "station_staff"),
                     ("催办说明：请今天内联系反映人", False, "station_staff"),
                     ("人大常委会工作人员已催促代表尽快办理。", True, "npc_staff")], urged
    # The citizen sees that it was chased, never the note written for the deputy.
    receipt = (await intake.client.get(f"/v1/receipts/{created['receipt_code']}")).json()
    notes = [s["note"] for s in receipt["timeline"]]
    assert "联络站已催促代表尽快办理。" in notes and not any("催办说明" in n for n in notes)

    async def reminded() -> list[dict[str, Any]]:
        events = await intake_events(intake.runtime.settings.nats_url, report_id)
        return [data for subject, data in events if subject == "intake.report.reminded"]

    events = await wait_for(lambda: _two(reminded), what="two intake.report.reminded events")
    first = events[0]
    assert first["report_id"] == report_id and first["region_code"] == REGION
    assert first["deputy_id"] == "D1" and first["station_id"] is None
    assert first["by"] == "station_staff" and first["note"] == "请今天内联系反映人" and first["at"]

    audit = await intake.client.get("/v1/audit", params={"action": "report.reminded", "subject_id": report_id},
                                    headers=NPC)
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert sorted(e["actor"] for e in entries) == ["clerk-340657", "npc-340657"], entries
    assert {e["detail"]["as"] for e in entries} == {"station_staff", "npc_staff"}


async def _two(reminded: Any) -> list[dict[str, Any]] | None:
    found = await reminded()
    return found if len(found) >= 2 else None


async def test_only_staff_of_the_region_urge_and_only_open_reports(intake: Intake) -> None:
    created = await _file(intake, "路灯不亮（催办权限测试）。")
    path = f"/v1/reports/{created['id']}/reminders"
    elsewhere = await intake.client.post(path, json={}, headers=bearer("station_staff", "340658"))
    assert elsewhere.status_code == 403
    deputy = await intake.client.post(path, json={}, headers=bearer("deputy", REGION, deputy_id="D1"))
    assert deputy.status_code == 403
    nobody = await intake.client.post(path, json={})
    assert nobody.status_code == 401
    missing = await intake.client.post("/v1/reports/00000000-0000-0000-0000-000000000000/reminders", json={},
                                       headers=STAFF)
    assert missing.status_code == 404
    too_long = await intake.client.post(path, json={"note": "长" * 201}, headers=STAFF)
    assert too_long.status_code == 422

    answer = await intake.client.post(f"/v1/reports/{created['id']}/reply", json={"content": "已修好。"},
                                      headers=bearer("deputy", REGION, deputy_id="D1"))
    assert answer.status_code == 200, answer.text
    late = await intake.client.post(path, json={}, headers=STAFF)
    assert late.status_code == 409 and "不需要再催办" in late.json()["detail"]


async def test_the_open_filter_keeps_only_reports_still_waiting(intake: Intake) -> None:
    waiting = await _file(intake, "井盖松动（开放筛选测试）。")
    done = await _file(intake, "树枝挡路（开放筛选测试）。")
    resp = await intake.client.post(f"/v1/reports/{done['id']}/reply", json={"content": "已修剪。"},
                                    headers=bearer("deputy", REGION, deputy_id="D1"))
    assert resp.status_code == 200, resp.text
    listed = await intake.client.get("/v1/reports", params={"open": "true", "page_size": 100}, headers=STAFF)
    assert listed.status_code == 200, listed.text
    ids = {item["id"] for item in listed.json()["items"]}
    assert waiting["id"] in ids and done["id"] not in ids
    assert all(item["status"] in ("submitted", "acknowledged", "dispatched") for item in listed.json()["items"])
    closed = await intake.client.get("/v1/reports", params={"open": "false", "page_size": 100}, headers=STAFF)
    assert done["id"] in {item["id"] for item in closed.json()["items"]}
