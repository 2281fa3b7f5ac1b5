"""Writes of congress staff outside a suggestion's workflow are in the audit log: who changed a
handling unit, a region's outcome classes or a micro-suggestion fund, what it was before and what
after, and each spending from a fund. A PUT that changes nothing leaves no entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

from shared.ids import new_id

REGION = "350203"
STAFF = bearer("npc_staff", REGION, sub="staff-audit")
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-audit")) as service:
        yield service


async def entries(svc: Suggestions, action: str, subject_id: str) -> list[dict[str, Any]]:
    resp = await svc.client.get("/v1/audit", params={"action": action, "subject_id": subject_id}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    return list(reversed(resp.json()["items"]))  # oldest first


async def test_unit_changes_are_audited_with_before_and_after(svc: Suggestions) -> None:
    unit = f"u-audit-{new_id()[-6:]}"
    first = {"name": "交通运输局", "region_code": REGION}
    for body in (first, first, {**first, "name": "交通运输和港口局"}):
        resp = await svc.client.put(f"/v1/units/{unit}", json=body, headers=STAFF)
        assert resp.status_code == 200, resp.text
    logged = await entries(svc, "unit.changed", unit)
    assert [(e["actor"], e["actor_roles"], e["subject_type"], e["region_code"]) for e in logged] == [
        ("staff-audit", ["npc_staff"], "unit", REGION)] * 2
    assert [(e["detail"]["before"], e["detail"]["after"]) for e in logged] == [
        (None, {"name": "交通运输局", "region_code": REGION, "parent_id": None}),
        ({"name": "交通运输局", "region_code": REGION, "parent_id": None},
         {"name": "交通运输和港口局", "region_code": REGION, "parent_id": None})]


async def test_outcome_scheme_changes_are_audited_with_before_and_after(svc: Suggestions) -> None:
    region = f"{REGION}001"
    abc = [{"code": "A", "label": "已解决", "solved": True, "needs_planned_year": False, "reference": False},
           {"code": "C", "label": "留作参考", "solved": False, "needs_planned_year": False, "reference": True}]
    abcd = [*abc, {"code": "D", "label": "暂不具备条件", "solved": False, "needs_planned_year": False,
                   "reference": True}]
    for classes in (abc, abc, abcd):
        resp = await svc.client.put(f"/v1/outcome-schemes/{region}", json={"classes": classes}, headers=STAFF)
        assert resp.status_code == 200, resp.text
    logged = await entries(svc, "outcome_scheme.changed", region)
    assert [e["actor"] for e in logged] == ["staff-audit", "staff-audit"]
    assert [(e["detail"]["before"], e["detail"]["after"]) for e in logged] == [(None, abc), (abc, abcd)]
    assert {e["region_code"] for e in logged} == {region}


async def test_fund_changes_and_spendings_are_audited(svc: Suggestions) -> None:
    year = YEAR + 2  # a year of its own
    fund = f"{REGION}:{year}"
    for amount in ("500.00", "500", "800.00"):
        resp = await svc.client.put(f"/v1/micro-funds/{REGION}/{year}", json={"amount": amount}, headers=STAFF)
        assert resp.status_code == 200, resp.text
    logged = await entries(svc, "micro_fund.changed", fund)
    assert [(e["actor"], e["detail"]["before"], e["detail"]["after"]) for e in logged] == [
        ("staff-audit", None, {"amount": "500.00"}),
        ("staff-audit", {"amount": "500.00"}, {"amount": "800.00"})]

    deputy = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy, REGION)
    micro = await svc.submit(deputy, title="关于修缮村口小桥的微建议", year=year, micro=True,
                             content="村口小桥栏杆松动，建议尽快修缮，防止村民跌落。")
    spent = await svc.client.post(f"/v1/suggestions/{micro['id']}/spending", json={"amount": "120.50", "note": "栏杆"},
                                  headers=STAFF)
    assert spent.status_code == 201, spent.text
    item = spent.json()["items"][0]
    [entry] = await entries(svc, "micro_fund.spent", fund)
    assert entry["actor"] == "staff-audit" and entry["region_code"] == REGION
    assert entry["detail"] == {"year": year, "suggestion_id": micro["id"], "spending_id": item["id"],
                               "amount": "120.50", "before": {"spent": "0.00", "balance": "800.00"},
                               "after": {"spent": "120.50", "balance": "679.50"}}
