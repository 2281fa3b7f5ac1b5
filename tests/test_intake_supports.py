"""我也遇到 / 附议 on the real PostgreSQL and NATS: a citizen adds their voice to a report someone
already filed. Anonymous supports keep nothing about the person; a real-name supporter counts once
per phone; the count reaches staff, deputies and the receipt, and `intake.report.supported` the bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Servers
from intakeutil import Clock, Intake, bearer, directory, intake_app, intake_events, intake_stack, wait_for
from sqlalchemy import select

from services.intake import supports
from services.intake.models import IDEMPOTENCY, ReportSupport
from services.intake.supports_api import PII_CONTEXT
from shared.pii import decrypt

REGION = "340619"
DEPUTY = "D1"
STAFF = bearer("npc_staff", REGION)
PROBLEM_JSON = "application/problem+json"
# What a phone or browser sends about itself and where it is: none of it may be kept.
DEVICE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0.40",
          "X-Forwarded-For": "198.51.100.77", "X-Wx-Openid": "wx-openid-support"}
TRACES = ("iPhone", "MicroMessenger", "198.51.100.77", "wx-openid-support", "203.0.113.7")
ROW_COLUMNS = {"id", "report_id", "anonymous", "channel", "supporter_name", "supporter_phone", "person_digest",
               "created_at"}


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-supports"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {DEPUTY: []}, [])
        yield it


async def file(intake: Intake, **extra: Any) -> dict[str, Any]:
    body = {"channel": "h5", "code": intake.codes[DEPUTY], "anonymous": True,
            "content": "幸福路排水沟堵了半个月，下雨天污水漫到路面上", **extra}
    resp = await intake.client.post("/v1/reports", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def support(intake: Intake, report_id: str, *, name: str | None = None, phone: str | None = None,
                  headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"anonymous": name is None, "channel": "h5", **extra}
    if name is not None:
        body["reporter"] = {"name": name, "phone": phone}
    return await intake.client.post(f"/v1/reports/{report_id}/supports", json=body, headers=headers or {})


async def rows(intake: Intake, report_id: str) -> list[dict[str, Any]]:
    async with intake.runtime.database.sessions() as session:
        found = (await session.execute(select(ReportSupport.__table__).where(ReportSupport.report_id == report_id)
                                       .order_by(ReportSupport.created_at, ReportSupport.id))).mappings().all()
    return [dict(r) for r in found]


async def supported_events(intake: Intake, report_id: str, n: int) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]]:
        found = [d for s, d in await intake_events(intake.runtime.settings.nats_url, report_id)
                 if s == "intake.report.supported"]
        return found if len(found) >= n else []

    return list(await wait_for(arrived, timeout=20, what=f"{n} intake.report.supported events"))


async def detail(intake: Intake, report_id: str) -> dict[str, Any]:
    resp = await intake.client.get(f"/v1/reports/{report_id}", headers=STAFF)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def receipt(intake: Intake, code: str) -> dict[str, Any]:
    resp = await intake.client.get(f"/v1/receipts/{code}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_an_anonymous_support_counts_and_keeps_nothing_about_the_person(intake: Intake) -> None:
    report = await file(intake)
    citizen = bearer("citizen", sub="wx-citizen-42")
    resp = await support(intake, report["id"], headers={**DEVICE, **citizen, "Idempotency-Key": "me-too-1"})
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"report_id": report["id"], "supporters": 1}

    [row] = await rows(intake, report["id"])
    assert set(row) == ROW_COLUMNS, "a new column on supports must be checked here for what it keeps"
    assert row["anonymous"] is True and row["channel"] == "h5"
    assert row["supporter_name"] is None and row["supporter_phone"] is None and row["person_digest"] is None
    assert not [t for t in TRACES if t in repr(row)]
    async with intake.runtime.database.sessions() as session:
        scopes = (await session.scalars(select(IDEMPOTENCY.c.scope).where(IDEMPOTENCY.c.key == "me-too-1"))).all()
    assert scopes == [f"supports:{report['id']}"], "the retry record must not name the account"

    [event] = await supported_events(intake, report["id"], 1)
    assert event == {"report_id": report["id"], "support_id": row["id"], "anonymous": True, "supporters": 1,
                     "region_code": REGION, "at": event["at"]}
    assert not [t for t in (*TRACES, "wx-citizen-42") if t in repr(event)]


async def test_a_real_name_supporter_counts_once_per_phone(intake: Intake) -> None:
    report = await file(intake)
    first = await support(intake, report["id"], name="王五", phone="13700137000")
    assert first.status_code == 201, first.text
    assert first.json()["supporters"] == 1
    # The same phone however it is written, under another name: the same person.
    again = await support(intake, report["id"], name="王 五", phone="+86 137-0013-7000")
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM_JSON
    assert again.json()["detail"] == supports.REPEATED
    other = await support(intake, report["id"], name="赵六", phone="13600136000")
    assert other.status_code == 201 and other.json()["supporters"] == 2
    anonymous = await support(intake, report["id"])
    assert anonymous.status_code == 201 and anonymous.json()["supporters"] == 3

    stored = [r for r in await rows(intake, report["id"]) if not r["anonymous"]]
    assert len(stored) == 2
    keyring = intake.runtime.keyring
    by_name = {decrypt(keyring, r["supporter_name"], context=PII_CONTEXT["name"]): r for r in stored}
    assert set(by_name) == {"王五", "赵六"}
    assert decrypt(keyring, by_name["王五"]["supporter_phone"], context=PII_CONTEXT["phone"]) == "13700137000"
    assert all(b"13700137000" not in bytes(r["supporter_phone"]) for r in stored), "encrypted, not in clear"

    # Another report: the same person may support it too, and the two supports cannot be matched.
    elsewhere = await file(intake, content="幸福小区北门路灯不亮，晚上出行不安全")
    resp = await support(intake, elsewhere["id"], name="王五", phone="13700137000")
    assert resp.status_code == 201, resp.text
    [there] = await rows(intake, elsewhere["id"])
    assert there["person_digest"] != by_name["王五"]["person_digest"]
    assert (await detail(intake, report["id"]))["supporters"] == 3


async def test_two_supports_at_once_from_one_phone_count_once(intake: Intake) -> None:
    report = await file(intake)
    answers = await asyncio.gather(*(support(intake, report["id"], name="钱七", phone="13500135000")
                                     for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert (await detail(intake, report["id"]))["supporters"] == 1
    assert len(await rows(intake, report["id"])) == 1


async def test_the_reporter_does_not_support_their_own_report(intake: Intake) -> None:
    report = await file(intake, anonymous=False, reporter={"name": "李四", "phone": "13900139000"})
    resp = await support(intake, report["id"], name="李四", phone="139 0013 9000")
    assert resp.status_code == 409 and resp.json()["detail"] == supports.OWN_REPORT
    assert await rows(intake, report["id"]) == []


async def test_an_unknown_report_is_404_and_a_closed_one_409(intake: Intake) -> None:
    missing = await support(intake, str(uuid.uuid4()))
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON
    assert missing.json()["detail"] == "没有找到这条反映。"

    report = await file(intake)
    deputy = bearer("deputy", REGION, deputy_id=DEPUTY)
    reply = await intake.client.post(f"/v1/reports/{report['id']}/reply", json={"content": "已联系环卫部门清理。"},
                                     headers=deputy)
    assert reply.status_code == 200, reply.text
    # Answered is not the end: the problem may still be there for others.
    assert (await support(intake, report["id"])).status_code == 201
    rated = await intake.client.post(f"/v1/receipts/{report['receipt_code']}/rating", json={"stars": 5})
    assert rated.status_code == 201 and rated.json()["status"] == "closed", rated.text
    closed = await support(intake, report["id"])
    assert closed.status_code == 409 and closed.json()["detail"] == supports.CLOSED
    assert (await detail(intake, report["id"]))["supporters"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"anonymous": True, "channel": "h5", "reporter": {"name": "王五", "phone": "13700137000"}}, "reporter"),
    ({"anonymous": False, "channel": "h5"}, "reporter"),
    ({"anonymous": False, "channel": "h5", "reporter": {"name": "", "phone": "13700137000"}}, "reporter.name"),
    ({"anonymous": False, "channel": "h5", "reporter": {"name": "王五", "phone": "13700137000",
                                                         "id_number": "11010519491231002X"}}, "reporter.id_number"),
    ({"anonymous": True, "channel": "paper"}, "channel"),
    ({"anonymous": True, "channel": "fax"}, "channel"),
    ({"anonymous": True, "channel": "h5", "device": "iPhone"}, "device"),
    ({"channel": "h5"}, "anonymous"),
], ids=["anonymous with a name", "named without one", "empty name", "an ID number", "paper from a citizen",
        "unknown channel", "an unknown field", "anonymous left out"])
async def test_what_is_wrong_with_a_support_is_named_and_nothing_is_written(
        intake: Intake, body: dict[str, Any], field: str) -> None:
    report = await file(intake)
    resp = await intake.client.post(f"/v1/reports/{report['id']}/supports", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert field in [e["field"] for e in resp.json()["errors"]], resp.json()
    assert await rows(intake, report["id"]) == []
    assert (await detail(intake, report["id"]))["supporters"] == 0


async def test_the_count_shows_to_staff_and_on_the_receipt_and_the_timeline_stays_as_it_was(intake: Intake) -> None:
    report = await file(intake)
    before = await receipt(intake, report["receipt_code"])
    assert before["supporters"] == 0 and before["hotspot_id"] is None
    for i in range(3):
        resp = await support(intake, report["id"], headers={"Idempotency-Key": f"count-{i}"})
        assert resp.status_code == 201 and resp.json()["supporters"] == i + 1
    # A retry from a weak network: the first answer again, nothing counted twice.
    retried = await support(intake, report["id"], headers={"Idempotency-Key": "count-2"})
    assert retried.status_code == 201 and retried.json()["supporters"] == 3

    after = await receipt(intake, report["receipt_code"])
    assert after["supporters"] == 3
    assert after["timeline"] == before["timeline"], "supporters are not reporters: no entry of theirs"
    seen = await detail(intake, report["id"])
    assert seen["supporters"] == 3 and seen["hotspot_id"] is None
    listed = await intake.client.get("/v1/reports", params={"region_code": REGION, "sort": "-received",
                                                            "page_size": 100}, headers=STAFF)
    assert listed.status_code == 200, listed.text
    [item] = [i for i in listed.json()["items"] if i["id"] == report["id"]]
    assert item["supporters"] == 3
    deputy = await intake.client.get(f"/v1/reports/{report['id']}",
                                     headers=bearer("deputy", REGION, deputy_id=DEPUTY))
    assert deputy.status_code == 200 and deputy.json()["supporters"] == 3
    events = await supported_events(intake, report["id"], 3)
    assert [e["supporters"] for e in events] == [1, 2, 3]


async def test_staff_register_supports_only_within_their_region(intake: Intake) -> None:
    report = await file(intake)
    outside = await support(intake, report["id"], headers=bearer("station_staff", "110101"), channel="paper")
    assert outside.status_code == 403
    inside = await support(intake, report["id"], headers=bearer("station_staff", REGION), channel="paper",
                           name="孙八", phone="13300133000")
    assert inside.status_code == 201, inside.text


async def test_one_source_sending_too_many_supports_gets_429(intake: Intake, servers: Servers, tmp_path: Path) -> None:
    report = await file(intake)
    async with intake_app(servers, tmp_path / "flood", Clock(), flood_limit="2/minute",
                          client_address="192.0.2.50") as (client, _, _):
        url = f"/v1/reports/{report['id']}/supports"
        for _ in range(2):
            assert (await client.post(url, json={"anonymous": True, "channel": "h5"})).status_code == 201
        limited = await client.post(url, json={"anonymous": True, "channel": "h5"})
        assert limited.status_code == 429 and limited.headers["content-type"] == PROBLEM_JSON
        assert int(limited.headers["Retry-After"]) >= 1 and "请求过于频繁" in limited.json()["detail"]
        # Station staff typing in supports for others are not limited.
        staff = await client.post(url, json={"anonymous": True, "channel": "paper"},
                                  headers=bearer("station_staff", REGION))
        assert staff.status_code == 201, staff.text
    assert (await detail(intake, report["id"]))["supporters"] == 3
