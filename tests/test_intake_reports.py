"""Citizens' reports over HTTP on real PostgreSQL and NATS, with identity resolving the codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from busutil import event_body
from conftest import Servers
from intakeutil import Intake, bearer, directory, intake_events, intake_stack, wait_for
from prometheus_client.parser import text_string_to_metric_families

from shared.ids import new_id

REGION = "340602"


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-reports"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {"D1": ["S1"], "D2": []}, ["S1", "S2"])
        yield it


async def test_a_citizen_files_an_anonymous_report_through_a_deputy_code(intake: Intake) -> None:
    resp = await intake.client.post("/v1/reports", json={
        "channel": "miniprogram", "code": intake.codes["D1"], "content": "小区门口路灯坏了三天。", "anonymous": True})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "submitted"
    assert body["target"] == {"kind": "deputy", "id": "D1", "region_code": REGION}
    assert body["ack_due"].endswith("23:59:59+08:00")
    events = await wait_for(lambda: intake_events(intake.runtime.settings.nats_url, body["id"]),
                            what="intake.report.submitted")
    assert events[0][0] == "intake.report.submitted"
    assert events[0][1]["deputy_id"] == "D1" and events[0][1]["anonymous"] is True


ANON_TEXT = "楼道里堆满杂物，存在消防隐患。"


async def _file(intake: Intake, **body: object) -> dict[str, object]:
    payload = {"channel": "h5", "code": intake.codes["D1"], "content": ANON_TEXT, "anonymous": True, **body}
    resp = await intake.client.post("/v1/reports", json=payload)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.mark.parametrize("channel", ["miniprogram", "h5", "kiosk", "hotline", "api"])
async def test_every_public_channel_is_accepted_and_recorded(intake: Intake, channel: str) -> None:
    created = await _file(intake, channel=channel)
    detail = await intake.client.get(f"/v1/reports/{created['id']}", headers=bearer("station_staff", REGION))
    assert detail.status_code == 200, detail.text
    assert detail.json()["channel"] == channel


async def test_paper_reports_are_registered_by_station_staff_with_the_real_receipt_time(intake: Intake) -> None:
    staff = bearer("station_staff", REGION)
    resp = await intake.client.post("/v1/reports", headers=staff, json={
        "channel": "paper", "code": intake.codes["S1"], "content": "来信反映：村道坑洼，雨天积水。",
        "anonymous": False, "reporter": {"name": "李四", "phone": "13900001111"},
        "received_at": "2026-11-16T10:00:00+08:00"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # Received Monday 16 November 2026: the 2nd working day after is Wednesday, the 7th the next Wednesday.
    assert body["ack_due"] == "2026-11-18T23:59:59+08:00"
    assert body["reply_due"] == "2026-11-25T23:59:59+08:00"
    assert body["target"] == {"kind": "station", "id": "S1", "region_code": REGION}
    # A citizen cannot file on paper, and nobody but station staff may backdate.
    resp = await intake.client.post("/v1/reports", json={
        "channel": "paper", "region_code": REGION, "content": "纸质", "anonymous": True})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "channel"
    resp = await intake.client.post("/v1/reports", headers=bearer("citizen", REGION), json={
        "channel": "hotline", "region_code": REGION, "content": "电话", "anonymous": True,
        "received_at": "2026-11-16T10:00:00+08:00"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "received_at"
    # Staff of another county may not register reports for this one.
    resp = await intake.client.post("/v1/reports", headers=bearer("station_staff", "340603"), json={
        "channel": "paper", "code": intake.codes["S1"], "content": "越权登记", "anonymous": True})
    assert resp.status_code == 403


async def test_a_real_name_reporter_is_stored_encrypted_shown_masked_and_unmasked_with_an_audit(
        intake: Intake, servers: Servers) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    created = await _file(intake, anonymous=False,
                          reporter={"name": "张三丰", "phone": "13800138000", "id_number": "11010519491231002X"})
    staff = bearer("station_staff", REGION)
    detail = (await intake.client.get(f"/v1/reports/{created['id']}", headers=staff)).json()
    assert detail["reporter"] == {"name": "张**", "phone": "138****8000", "id_number": "已登记（已隐藏）"}
    engine = create_async_engine(servers.database_url)
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT reporter_name, reporter_phone, reporter_id_number::text AS idn "
                                       "FROM intake.reports WHERE id = :id"), {"id": created["id"]})).one()
    await engine.dispose()
    assert "张三丰".encode() not in row.reporter_name and b"13800138000" not in row.reporter_phone
    assert "11010519491231002X" not in row.idn
    # The deputy it is aimed at sees the data in clear, and that is recorded.
    deputy = bearer("deputy", REGION, deputy_id="D1")
    resp = await intake.client.post(f"/v1/reports/{created['id']}/reporter/unmask", headers=deputy,
                                    json={"reason": "需要电话回访"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": "张三丰", "phone": "13800138000", "id_number": "11010519491231002X"}
    # Another deputy and npc staff may not.
    resp = await intake.client.post(f"/v1/reports/{created['id']}/reporter/unmask",
                                    headers=bearer("deputy", REGION, deputy_id="D2"), json={"reason": "好奇"})
    assert resp.status_code == 403
    resp = await intake.client.post(f"/v1/reports/{created['id']}/reporter/unmask",
                                    headers=bearer("npc_staff", REGION), json={"reason": "查看"})
    assert resp.status_code == 403
    engine = create_async_engine(servers.database_url)
    async with engine.connect() as conn:
        audit = (await conn.execute(text("SELECT actor_sub, reason FROM intake.unmaskings WHERE report_id = :id"),
                                    {"id": created["id"]})).all()
    await engine.dispose()
    assert [(a.actor_sub, a.reason) for a in audit] == [("t-deputy-D1", "需要电话回访")]


async def test_an_idempotent_retry_returns_the_first_answer_and_creates_nothing(intake: Intake) -> None:
    body = {"channel": "miniprogram", "code": intake.codes["D2"], "content": "重试的反映", "anonymous": True}
    key = {"Idempotency-Key": "retry-7f3a"}
    first = await intake.client.post("/v1/reports", json=body, headers=key)
    again = await intake.client.post("/v1/reports", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await intake.client.post("/v1/reports", json={**body, "content": "另一条"}, headers=key)
    assert other.status_code == 409
    page = (await intake.client.get("/v1/reports", params={"deputy_id": "D2", "page_size": 100},
                                    headers=bearer("station_staff", REGION))).json()
    assert sum(1 for item in page["items"] if item["excerpt"] == "重试的反映") == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"code": "FORGEDCODE0000000000A"}, "code"),
    ({"code": None, "region_code": None}, "code"),
    ({"content": ""}, "content"),
    ({"content": "字" * 5001}, "content"),
    ({"anonymous": False}, "reporter"),
    ({"anonymous": False, "reporter": {"name": "王五"}}, "reporter.phone"),
    ({"anonymous": False, "reporter": {"phone": "13800138000"}}, "reporter.name"),
    ({"anonymous": False, "reporter": {"name": "王五", "phone": "13800138000", "id_number": "110105194912310021"}},
     "reporter.id_number"),
    ({"anonymous": False, "reporter": {"name": "王五", "phone": "13800138000", "id_number": "110105194902300026"}},
     "reporter.id_number"),
    ({"channel": "fax"}, "channel"),
    ({"attachment_ids": ["0190c5a0-0000-7000-8000-000000000000"]}, "attachment_ids[0]"),
    ({"unknown": 1}, "unknown"),
])
async def test_bad_input_names_the_field_in_chinese_and_writes_nothing(
        intake: Intake, body: dict[str, object], field: str) -> None:
    before = (await intake.client.get("/v1/reports", headers=bearer("npc_staff", REGION))).json()["total"]
    payload = {"channel": "h5", "code": intake.codes["D1"], "content": "内容", "anonymous": True, **body}
    resp = await intake.client.post("/v1/reports", json=payload)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert field in [e["field"] for e in problem["errors"]]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in e["message"]) for e in problem["errors"])
    after = (await intake.client.get("/v1/reports", headers=bearer("npc_staff", REGION))).json()["total"]
    assert after == before


async def test_a_future_receipt_time_and_an_oversized_body_are_refused(intake: Intake) -> None:
    resp = await intake.client.post("/v1/reports", headers=bearer("station_staff", REGION), json={
        "channel": "hotline", "code": intake.codes["S1"], "content": "电话反映", "anonymous": True,
        "received_at": "2099-01-01T08:00:00+08:00"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "received_at"
    resp = await intake.client.post("/v1/reports", content=b'{"content": "' + b"x" * 300_000 + b'"}',
                                    headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "过大" in resp.json()["detail"]


async def _receipt(intake: Intake, code: object) -> dict[str, object]:
    resp = await intake.client.get(f"/v1/receipts/{code}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_acknowledge_reply_rate_and_close_with_the_citizen_following_by_receipt(intake: Intake) -> None:
    created = await _file(intake)
    rid, code = created["id"], created["receipt_code"]
    deputy = bearer("deputy", REGION, deputy_id="D1")
    resp = await intake.client.post(f"/v1/receipts/{code}/rating", json={"stars": 5})
    assert resp.status_code == 409, "rating before any answer"
    resp = await intake.client.post(f"/v1/reports/{rid}/acknowledge", headers=deputy)
    assert resp.status_code == 200 and resp.json()["status"] == "acknowledged"
    again = await intake.client.post(f"/v1/reports/{rid}/acknowledge", headers=deputy)
    assert again.status_code == 200 and again.json()["acknowledged_at"] == resp.json()["acknowledged_at"]
    resp = await intake.client.post(f"/v1/reports/{rid}/acknowledge", headers=bearer("deputy", REGION, deputy_id="D2"))
    assert resp.status_code == 403, "a deputy the report is not aimed at"
    resp = await intake.client.post(f"/v1/reports/{rid}/reply", headers=deputy,
                                    json={"content": "已联系物业清理楼道，三日内完成。"})
    assert resp.status_code == 200 and resp.json()["status"] == "answered"
    resp = await intake.client.post(f"/v1/reports/{rid}/reply", headers=deputy, json={"content": "再答一次"})
    assert resp.status_code == 409
    receipt = await _receipt(intake, code)
    assert receipt["status"] == "answered" and receipt["can_rate"] is True
    assert receipt["reply"]["content"] == "已联系物业清理楼道，三日内完成。"  # type: ignore[index]
    assert [s["status"] for s in receipt["timeline"]] == ["submitted", "acknowledged", "answered"]  # type: ignore[union-attr]
    resp = await intake.client.post(f"/v1/receipts/{str(code).lower()}/rating", json={"stars": 4})
    assert resp.status_code == 201 and resp.json() == {"status": "closed", "stars": 4, "reopened": False}
    resp = await intake.client.post(f"/v1/receipts/{code}/rating", json={"stars": 5})
    assert resp.status_code == 409, "rating twice"
    receipt = await _receipt(intake, code)
    assert receipt["status"] == "closed" and receipt["rating"]["stars"] == 4  # type: ignore[index]
    kinds = [t for t, _ in await wait_for(
        lambda: _events_up_to(intake, str(rid), "intake.report.closed"), what="closed event")]
    assert kinds == ["intake.report.submitted", "intake.report.acknowledged", "intake.report.answered",
                     "intake.report.rated", "intake.report.closed"]


async def _events_up_to(intake: Intake, rid: str, last: str) -> list[tuple[str, dict[str, object]]] | None:
    events = await intake_events(intake.runtime.settings.nats_url, rid)
    return events if events and events[-1][0] == last else None


async def test_a_poor_rating_with_a_comment_reopens_the_report_for_a_new_round(intake: Intake) -> None:
    created = await _file(intake, code=intake.codes["S1"])
    rid, code = created["id"], created["receipt_code"]
    # The deputy of the station sees and answers it; the reply acknowledges it on the way.
    deputy = bearer("deputy", REGION, deputy_id="D1")
    resp = await intake.client.post(f"/v1/reports/{rid}/reply", headers=deputy, json={"content": "已处理。"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["acknowledged_at"] is not None
    resp = await intake.client.post(f"/v1/receipts/{code}/rating", json={"stars": 1, "comment": "根本没处理"})
    assert resp.json() == {"status": "acknowledged", "stars": 1, "reopened": True}
    detail = (await intake.client.get(f"/v1/reports/{rid}", headers=deputy)).json()
    assert detail["round"] == 2 and detail["status"] == "acknowledged" and detail["reply"] is None
    receipt = await _receipt(intake, code)
    assert receipt["can_rate"] is False and "重新交办" in receipt["timeline"][-1]["note"]  # type: ignore[index]
    resp = await intake.client.post(f"/v1/reports/{rid}/reply", headers=deputy, json={"content": "已现场核实并修复。"})
    assert resp.status_code == 200
    resp = await intake.client.post(f"/v1/receipts/{code}/rating", json={"stars": 2})
    assert resp.json() == {"status": "closed", "stars": 2, "reopened": False}, "two stars without a comment close"


async def test_receipts_show_no_personal_data_and_no_internal_notes(intake: Intake) -> None:
    created = await _file(intake, anonymous=False, reporter={"name": "赵六", "phone": "13700137000"})
    await intake.client.post(f"/v1/reports/{created['id']}/acknowledge", headers=bearer("station_staff", REGION))
    resp = await intake.client.get(f"/v1/receipts/{created['receipt_code']}")
    text = resp.text
    assert "赵六" not in text and "13700137000" not in text and "0137000" not in text
    assert created["id"] not in text
    resp = await intake.client.get("/v1/receipts/ABCD-EFGH-JKM2")
    assert resp.status_code in (404, 422)


async def test_lists_are_scoped_sorted_by_due_date_and_filtered(intake: Intake) -> None:
    staff = bearer("station_staff", REGION)
    for i in range(3):
        await intake.client.post("/v1/reports", headers=staff, json={
            "channel": "hotline", "code": intake.codes["S2"], "content": f"排序{i}", "anonymous": True,
            "received_at": f"2026-11-{10 + i:02d}T09:00:00+08:00"})
    page = (await intake.client.get("/v1/reports", params={"station_id": "S2", "page_size": 2}, headers=staff)).json()
    assert page["total"] >= 3 and len(page["items"]) == 2
    dues = [item["due_at"] for item in page["items"]]
    assert dues == sorted(dues)
    assert all(item["overdue"] for item in page["items"]), "received in early November, never acknowledged"
    late = (await intake.client.get("/v1/reports", params={"overdue": "true", "page_size": 100},
                                    headers=staff)).json()
    assert {"排序0", "排序1", "排序2"} <= {i["excerpt"] for i in late["items"]}
    # Another county's staff see none of it; a deputy sees only what is aimed at them or their stations.
    other = (await intake.client.get("/v1/reports", headers=bearer("station_staff", "340603"))).json()
    assert other["total"] == 0
    resp = await intake.client.get("/v1/reports", params={"region_code": REGION},
                                   headers=bearer("station_staff", "340603"))
    assert resp.status_code == 403
    d2 = (await intake.client.get("/v1/reports", params={"page_size": 100},
                                  headers=bearer("deputy", REGION, deputy_id="D2"))).json()
    assert all(item["target"]["id"] == "D2" for item in d2["items"])
    d1 = (await intake.client.get("/v1/reports", params={"page_size": 100},
                                  headers=bearer("deputy", REGION, deputy_id="D1"))).json()
    assert {item["target"]["id"] for item in d1["items"]} <= {"D1", "S1"}
    assert any(item["target"]["id"] == "S1" for item in d1["items"]), "reports at the deputy's station"
    resp = await intake.client.get("/v1/reports", headers=bearer("citizen", REGION))
    assert resp.status_code == 403


async def test_routing_events_dispatch_resolve_and_return_reports(intake: Intake) -> None:
    from busutil import publish

    url = intake.runtime.settings.nats_url
    first = await _file(intake)
    await publish(url, "routing.ticket.created", _event("routing.ticket.created", {
        "ticket_id": "T-1", "report_id": first["id"], "platform_id": "fn-grid"}), msg_id="rt-c-1")
    await wait_for(lambda: _status(intake, first["id"], "dispatched"), what="dispatched")
    await publish(url, "routing.ticket.updated", _event("routing.ticket.updated", {
        "ticket_id": "T-1", "report_id": first["id"], "status": "resolved", "note": "路灯已更换。"}), msg_id="rt-u-1")
    await wait_for(lambda: _status(intake, first["id"], "answered"), what="answered by the grid")
    receipt = await _receipt(intake, first["receipt_code"])
    assert receipt["reply"] == {"content": "路灯已更换。", "at": receipt["reply"]["at"], "by": "grid"}  # type: ignore[index]
    # A repeated event changes nothing more.
    await publish(url, "routing.ticket.updated", _event("routing.ticket.updated", {
        "ticket_id": "T-1", "report_id": first["id"], "status": "resolved", "note": "路灯已更换。"}), msg_id="rt-u-1b")
    second = await _file(intake)
    await publish(url, "routing.ticket.created", _event("routing.ticket.created", {
        "ticket_id": "T-2", "report_id": second["id"], "platform_id": "fn-grid"}), msg_id="rt-c-2")
    await wait_for(lambda: _status(intake, second["id"], "dispatched"), what="dispatched")
    await publish(url, "routing.ticket.updated", _event("routing.ticket.updated", {
        "ticket_id": "T-2", "report_id": second["id"], "status": "returned", "note": "不属于网格事项"}),
        msg_id="rt-u-2")
    await wait_for(lambda: _status(intake, second["id"], "submitted"), what="returned to the deputy")
    detail = (await intake.client.get(f"/v1/reports/{second['id']}", headers=bearer("station_staff", REGION))).json()
    assert any("不属于网格事项" in t["note"] and not t["public"] for t in detail["timeline"])
    receipt = await _receipt(intake, second["receipt_code"])
    assert all("不属于网格事项" not in s["note"] for s in receipt["timeline"])  # type: ignore[union-attr]
    answered = [t for t, _ in await intake_events(url, str(first["id"]))].count("intake.report.answered")
    assert answered == 1


def _event(kind: str, data: dict[str, object]) -> bytes:
    """Routing's event as it publishes it: what the test leaves out comes from its model's example."""
    return event_body(new_id(), kind, dict(data))


async def _status(intake: Intake, rid: object, status: str) -> bool:
    resp = await intake.client.get(f"/v1/reports/{rid}", headers=bearer("npc_staff", REGION))
    return bool(resp.json()["status"] == status)


async def _overdue_on_metrics(intake: Intake) -> dict[str, float]:
    resp = await intake.client.get("/metrics")
    assert resp.status_code == 200
    return {s.labels["kind"]: s.value for family in text_string_to_metric_families(resp.text)
            for s in family.samples if s.name == "minyi_overdue"}


async def test_metrics_count_reports_past_their_deadlines_until_they_are_done(intake: Intake) -> None:
    staff = bearer("station_staff", REGION)
    resp = await intake.client.post("/v1/reports", headers=staff, json={
        "channel": "hotline", "code": intake.codes["S2"], "content": "逾期计数", "anonymous": True,
        "received_at": "2026-11-02T09:00:00+08:00"})
    assert resp.status_code == 201, resp.text
    before = await _overdue_on_metrics(intake)
    assert before["report_acknowledgement"] >= 1 and before["report_answer"] >= 1, before
    resp = await intake.client.post(f"/v1/reports/{resp.json()['id']}/acknowledge", headers=staff)
    assert resp.status_code == 200, resp.text
    after = await _overdue_on_metrics(intake)
    assert after["report_acknowledgement"] == before["report_acknowledgement"] - 1
    assert after["report_answer"] == before["report_answer"], "acknowledged, still not answered"
