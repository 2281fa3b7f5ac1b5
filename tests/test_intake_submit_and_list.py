"""Submitting and listing reports where things go sideways: one Idempotency-Key sent twice at once, a QR code
revoked while intake still remembers it, and a row whose reporter is encrypted under a key this intake lacks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from conftest import Servers
from intakeutil import ADMIN, Intake, bearer, directory, intake_stack
from sqlalchemy import func, select, text, update

from services.intake.api import PII_CONTEXT
from services.intake.models import Report
from shared.pii import Keyring, encrypt

REGION = "340631"
NPC = bearer("npc_staff", REGION)
# How long intake keeps identity's answer for a code: short here, so that a revocation shows within the test.
CODE_CACHE_SECONDS = 0.5


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-submit-list"), flood_limit="1000/minute",
                            code_cache_seconds=CODE_CACHE_SECONDS) as it:
        await directory(it, REGION, None, {"V1": ["VS1"], "V2": []}, ["VS1"])
        yield it


async def reports_with(intake: Intake, content: str) -> int:
    async with intake.runtime.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Report).where(Report.content == content))
                   or 0)


async def test_one_idempotency_key_sent_twice_at_once_makes_one_report(intake: Intake) -> None:
    content = f"同一幂等键并发提交 {uuid.uuid4()}"
    body = {"channel": "h5", "code": intake.codes["V1"], "content": content, "anonymous": True}
    key = {"Idempotency-Key": f"twice-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(intake.client.post("/v1/reports", json=body, headers=key) for _ in range(4)))
    # The first claims the key in its transaction; the others wait on that row and then get its answer.
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    # The same answer (a replay comes from JSONB, which keeps the values but not the order of keys).
    assert all(a.json() == answers[0].json() for a in answers)
    assert await reports_with(intake, content) == 1
    # The same key with another body is a clear conflict, not a second report.
    other = await intake.client.post("/v1/reports", json={**body, "content": content + "（改）"}, headers=key)
    assert other.status_code == 409, other.text
    assert await reports_with(intake, content + "（改）") == 0


async def test_a_revoked_code_is_refused_once_intake_s_cache_lets_it_go(intake: Intake) -> None:
    code = intake.codes["V2"]
    body = {"channel": "h5", "code": code, "content": "扫码反映：路灯不亮。", "anonymous": True}
    resp = await intake.client.post("/v1/reports", json=body)
    assert resp.status_code == 201, resp.text
    resp = await intake.identity.delete("/v1/deputies/V2/code", headers=ADMIN)
    assert resp.status_code in (200, 204), resp.text

    loop = asyncio.get_running_loop()
    revoked_at = loop.time()
    deadline = revoked_at + CODE_CACHE_SECONDS + 10
    while True:
        resp = await intake.client.post("/v1/reports", json=body)
        if resp.status_code == 422:
            break
        assert resp.status_code == 201, resp.text
        assert loop.time() < deadline, "the revoked code was still taken long after the cache should have let it go"
        await asyncio.sleep(0.1)
    # Refused within the cache's lifetime (and a little for the request itself), not 15 s later.
    assert loop.time() - revoked_at < CODE_CACHE_SECONDS + 5
    assert [e["field"] for e in resp.json()["errors"]] == ["code"]


async def test_a_reporter_under_an_unknown_key_does_not_take_the_list_down(
        intake: Intake, caplog: pytest.LogCaptureFixture) -> None:
    real_name = {"name": "王小明", "phone": "13800138000"}
    created = []
    for content in ("可以解密的实名反映", "密钥不在本服务的实名反映"):
        resp = await intake.client.post("/v1/reports", json={
            "channel": "h5", "region_code": REGION, "content": content, "anonymous": False, "reporter": real_name})
        assert resp.status_code == 201, resp.text
        created.append(resp.json()["id"])
    readable, foreign = created
    # The second row as another module's intake wrote it: under a key id this intake's keyring does not hold.
    elsewhere = Keyring.generate("elsewhere-k9")
    async with intake.runtime.transaction() as session:
        await session.execute(update(Report).where(Report.id == foreign).values(
            reporter_name=encrypt(elsewhere, "李四", context=PII_CONTEXT["name"]),
            reporter_phone=encrypt(elsewhere, "13900139000", context=PII_CONTEXT["phone"])))

    with caplog.at_level(logging.ERROR, logger="minyi.intake.reports"):
        resp = await intake.client.get("/v1/reports", params={"region_code": REGION, "page_size": 100},
                                       headers=NPC)
    assert resp.status_code == 200, resp.text
    items = {item["id"]: item for item in resp.json()["items"]}
    assert items[readable]["reporter"] == {"name": "王**", "phone": "138****8000", "id_number": None}
    assert items[readable]["reporter_unreadable"] is False
    assert items[foreign]["reporter"] == {"name": "", "phone": "", "id_number": None}
    assert items[foreign]["reporter_unreadable"] is True
    # The log names the report and the key, never the data.
    logged = [r.getMessage() for r in caplog.records if foreign in r.getMessage()]
    assert logged and "elsewhere-k9" in logged[0]
    assert not any("李四" in r.getMessage() or "13900139000" in r.getMessage() for r in caplog.records)
    # The report itself opens too, with the same flag.
    detail = await intake.client.get(f"/v1/reports/{foreign}", headers=NPC)
    assert detail.status_code == 200, detail.text
    assert detail.json()["reporter_unreadable"] is True
    # Unmasking it cannot disclose anything: a clear refusal, and no disclosure on the audit log.
    unmask = await intake.client.post(f"/v1/reports/{foreign}/reporter/unmask", json={"reason": "核实反映人身份"},
                                      headers=bearer("station_staff", REGION))
    assert unmask.status_code == 503, unmask.text
    assert "无法解密" in unmask.json()["detail"]
    async with intake.runtime.transaction() as session:
        recorded = (await session.execute(text(
            "SELECT count(*) FROM intake.audit_log WHERE action = 'report.reporter_unmasked' AND subject_id = :id"),
            {"id": foreign})).scalar_one()
        unmaskings = (await session.execute(text("SELECT count(*) FROM intake.unmaskings WHERE report_id = :id"),
                                            {"id": foreign})).scalar_one()
    assert (recorded, unmaskings) == (0, 0)


async def test_the_list_is_ordered_as_asked(intake: Intake) -> None:
    made = []
    for n in range(3):
        resp = await intake.client.post("/v1/reports", json={
            "channel": "h5", "region_code": f"{REGION}007", "content": f"排序测试第{n}条：楼道灯不亮",
            "anonymous": True})
        assert resp.status_code == 201, resp.text
        made.append(resp.json()["id"])

    async def listed(sort: str | None) -> list[str]:
        params = {"region_code": f"{REGION}007", "page_size": 100, **({"sort": sort} if sort else {})}
        resp = await intake.client.get("/v1/reports", params=params, headers=NPC)
        assert resp.status_code == 200, resp.text
        return [item["id"] for item in resp.json()["items"] if item["id"] in made]

    assert await listed("received") == made
    assert await listed("-received") == made[::-1]
    # The default: the next deadline first, which for reports received one after another is the same order.
    assert await listed(None) == made
    refused = await intake.client.get("/v1/reports", params={"sort": "content"}, headers=NPC)
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["sort"]
