"""What a handling unit needs from a suggestion beyond its handling: asking congress staff for the
one extension (staff grant it through the extension they alone give), the outcome classes its reply
is given in, and the balance of the micro-suggestion fund it spends from.

Against the real servers: the request is a step of the suggestion's workflow (timeline, event,
audit), refused with a Chinese 409 while one is pending and with a 403 to any unit but the lead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Servers
from sqlalchemy import select
from suggestionsutil import Suggestions, bearer, suggestions_service

from services.suggestions.models import OUTBOX
from shared.ids import new_id

REGION = "350219"
STAFF = bearer("npc_staff", REGION, sub="staff-unit-requests")
LEAD, ASSISTING, OTHER = "u-req-lead", "u-req-assist", "u-req-other"
YEAR = datetime.now(UTC).year
REASON = "涉及规划调整，需要市里批复后才能答复。"


def unit(unit_id: str, **extra: str) -> dict[str, str]:
    return {**bearer("unit", REGION, unit_id=unit_id, sub=f"clerk-{unit_id}"), **extra}


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-unit-requests")) as service:
        for unit_id in (LEAD, ASSISTING, OTHER):
            resp = await service.client.put(f"/v1/units/{unit_id}", headers=STAFF,
                                            json={"name": f"{unit_id}局", "region_code": REGION})
            assert resp.status_code == 200, resp.text
        yield service


async def assigned(svc: Suggestions, *, micro: bool = False, region: str = REGION) -> str:
    deputy, staff = f"d-{new_id()[-12:]}", bearer("npc_staff", region)
    await svc.deputy(deputy, region)
    created = await svc.client.post("/v1/suggestions", headers=staff, json={
        "title": f"关于整治背街小巷路面的建议{new_id()[-4:]}", "lead_deputy_id": deputy, "year": YEAR,
        "kind": "interim", "micro": micro, "content": "背街小巷路面坑洼，雨天积水，居民出行不便，建议整治。"})
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])
    await svc.act(sid, "assignment", {"lead_unit_id": LEAD, "assisting_unit_ids": [ASSISTING]}, staff)
    return sid


async def ask(svc: Suggestions, sid: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    return await svc.client.post(f"/v1/suggestions/{sid}/extension-request", headers=headers,
                                 json=body or {"reason": REASON, "months": 2})


async def events(svc: Suggestions, event_type: str, sid: str) -> list[dict[str, Any]]:
    async with svc.runtime.sessions()() as session:
        payloads = (await session.scalars(select(OUTBOX.c.payload).where(OUTBOX.c.subject == event_type))).all()
    return [p for p in payloads if p.get("data", {}).get("id") == sid]


async def test_the_lead_unit_asks_once_and_staff_grant_it(svc: Suggestions) -> None:
    sid = await assigned(svc)
    before = await svc.get(sid, unit(LEAD))
    assert before["extension_request"] is None

    # An assisting unit, or a unit with no part in it, may not ask: the lead unit answers for the due date.
    for stranger in (ASSISTING, OTHER):
        refused = await ask(svc, sid, unit(stranger))
        assert refused.status_code == 403, refused.text
        assert "主办单位" in refused.json()["detail"]

    keyed = unit(LEAD, **{"Idempotency-Key": f"ask-{sid}"})
    first = await ask(svc, sid, keyed)
    assert first.status_code == 200, first.text
    pending = first.json()["extension_request"]
    assert (pending["reason"], pending["months"], pending["unit_id"]) == (REASON, 2, LEAD)
    assert datetime.fromisoformat(pending["at"]).tzinfo is not None
    # A retry with its key gets the first answer; a new request while one is pending is refused in Chinese.
    again = await ask(svc, sid, keyed)
    assert again.status_code == 200 and again.json() == first.json()
    twice = await ask(svc, sid, unit(LEAD), {"reason": "再次申请延期。"})
    assert twice.status_code == 409, twice.text
    assert "等待人大常委会审批" in twice.json()["detail"]

    # Staff and the deputy see it pending; the step is on the timeline, published and audited.
    state = await svc.recorded(sid, first.json()["seq"], STAFF)
    assert state["extension_request"] == pending and state["extended"] is False
    step = [e for e in state["timeline"] if e["kind"] == "extension_requested"]
    assert [(e["note"], e["unit_id"], e["months"]) for e in step] == [(f"承办单位申请延期：{REASON}", LEAD, 2)]
    assert len(await events(svc, "suggestions.suggestion.extension_requested", sid)) == 1
    audit = await svc.client.get("/v1/audit", headers=STAFF,
                                 params={"action": "suggestion.extension_requested", "subject_id": sid})
    assert [e["actor"] for e in audit.json()["items"]] == [f"clerk-{LEAD}"]

    # Staff grant it through the one extension: the request is settled, the due date moves.
    extended = await svc.act(sid, "extension", {"reason": "同意延期两个月。", "months": 2}, STAFF)
    assert extended["extended"] is True and extended["extension_request"] is None
    assert extended["due_at"] > before["due_at"]
    after = await ask(svc, sid, unit(LEAD), {"reason": "还需要更多时间。"})
    assert after.status_code == 409 and "只能延期一次" in after.json()["detail"]


async def test_a_reply_settles_a_pending_request(svc: Suggestions) -> None:
    sid = await assigned(svc)
    assert (await ask(svc, sid, unit(LEAD))).status_code == 200
    replied = await svc.act(sid, "replies", {"unit_id": LEAD, "content": "已按期整治完毕。", "outcome": "A"},
                            unit(LEAD))
    assert replied["status"] == "replied" and replied["extension_request"] is None
    late = await ask(svc, sid, unit(LEAD))
    assert late.status_code == 409, late.text


async def test_a_unit_reads_the_outcome_classes_its_reply_is_given_in(svc: Suggestions) -> None:
    region = "350298"
    scheme = [{"code": "A", "label": "已解决", "solved": True, "needs_planned_year": False, "reference": False},
              {"code": "B", "label": "正在解决", "solved": False, "needs_planned_year": True, "reference": False},
              {"code": "D", "label": "暂不具备条件", "solved": False, "needs_planned_year": False, "reference": True}]
    staff = bearer("npc_staff", region)
    put = await svc.client.put(f"/v1/outcome-schemes/{region}", json={"classes": scheme}, headers=staff)
    assert put.status_code == 200, put.text
    own = await assigned(svc, region=region)
    for reader in (unit(LEAD), unit(ASSISTING), staff):
        assert (await svc.get(own, reader))["outcome_classes"] == scheme
    # Elsewhere the default classes apply.
    default = await svc.get(await assigned(svc), unit(LEAD))
    assert [c["code"] for c in default["outcome_classes"]] == ["A", "B", "C"]


async def test_the_lead_unit_of_a_micro_suggestion_reads_its_fund_balance(svc: Suggestions) -> None:
    sid = await assigned(svc, micro=True)
    # No fund set yet for the year: nothing to show.
    assert (await svc.get(sid, unit(LEAD)))["fund"] is None
    put = await svc.client.put(f"/v1/micro-funds/{REGION}/{YEAR}", json={"amount": "2000.00"}, headers=STAFF)
    assert put.status_code == 200, put.text
    spent_before = put.json()["spent"]
    fund = (await svc.get(sid, unit(LEAD)))["fund"]
    assert fund["spent"] == spent_before and fund["region_code"] == REGION and fund["year"] == YEAR
    spend = await svc.client.post(f"/v1/suggestions/{sid}/spending", headers=unit(LEAD),
                                  json={"amount": "150.50", "note": "修补路面材料"})
    assert spend.status_code == 201, spend.text
    fund = (await svc.get(sid, unit(LEAD)))["fund"]
    assert fund["balance"] == spend.json()["balance"] and fund["amount"] == "2000.00"
    assert (await svc.get(sid, STAFF))["fund"] == fund
    # The assisting unit spends nothing, so it is shown nothing; nor is a suggestion that is no micro one.
    assert (await svc.get(sid, unit(ASSISTING)))["fund"] is None
    assert (await svc.get(await assigned(svc), unit(LEAD)))["fund"] is None
