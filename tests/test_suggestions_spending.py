"""A spending from the micro-suggestion fund is a POST a weak network may repeat: with the same
`Idempotency-Key` the retry gets the first answer and the money is spent once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

from shared.ids import new_id

REGION = "350211"
STAFF = bearer("npc_staff", REGION)
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-spending")) as service:
        unit = await service.client.put("/v1/units/u-spend", json={"name": "城管局", "region_code": REGION},
                                        headers=STAFF)
        assert unit.status_code == 200, unit.text
        yield service


async def micro_suggestion(svc: Suggestions, year: int, title: str) -> str:
    """Filed by congress staff for a deputy of the county, as staff do for paper submissions."""
    deputy = f"d-{new_id()[-12:]}"
    await svc.deputy(deputy, REGION)
    created = await svc.client.post("/v1/suggestions", headers=STAFF, json={
        "title": title, "lead_deputy_id": deputy, "year": year, "kind": "interim", "micro": True,
        "content": "社区内多处设施破损，群众出行不便，建议尽快修缮。"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_retried_spending_with_its_key_spends_once(svc: Suggestions) -> None:
    fund = await svc.client.put(f"/v1/micro-funds/{REGION}/{YEAR}", json={"amount": "1000.00"}, headers=STAFF)
    assert fund.status_code == 200, fund.text
    sid = await micro_suggestion(svc, YEAR, "关于更换社区破损井盖的微建议")
    await svc.act(sid, "assignment", {"lead_unit_id": "u-spend"}, STAFF)
    url = f"/v1/suggestions/{sid}/spending"
    body = {"amount": "300.00", "note": "更换井盖三个"}
    lead = {**bearer("unit", unit_id="u-spend"), "Idempotency-Key": f"spend-{sid}"}

    # Sent twice at once: the second waits for the first and gets its answer.
    first, twin = await asyncio.gather(*(svc.client.post(url, json=body, headers=lead) for _ in range(2)))
    assert first.status_code == twin.status_code == 201, (first.text, twin.text)
    assert twin.json() == first.json()
    again = await svc.client.post(url, json=body, headers=lead)
    assert again.status_code == 201 and again.json() == first.json()

    report = (await svc.client.get(f"/v1/micro-funds/{REGION}/{YEAR}", headers=STAFF)).json()
    assert report["spent"] == "300.00" and report["balance"] == "700.00" and len(report["items"]) == 1

    # The key names one spending: another amount under it is refused and spends nothing.
    clash = await svc.client.post(url, json={**body, "amount": "1.00"}, headers=lead)
    assert clash.status_code == 409 and clash.headers["content-type"] == "application/problem+json"
    # Without a key, or with a new one, it is a new spending.
    plain = await svc.client.post(url, json=body, headers=bearer("unit", unit_id="u-spend"))
    assert plain.status_code == 201, plain.text
    report = (await svc.client.get(f"/v1/micro-funds/{REGION}/{YEAR}", headers=STAFF)).json()
    assert report["spent"] == "600.00" and len(report["items"]) == 2


async def test_a_refused_spending_leaves_its_key_free(svc: Suggestions) -> None:
    """A refusal rolls back the claim: the key may be used again once the fund allows it."""
    year = YEAR + 3
    sid = await micro_suggestion(svc, year, "关于修补村道坑洼的微建议")
    url = f"/v1/suggestions/{sid}/spending"
    headers = {**STAFF, "Idempotency-Key": f"refused-{sid}"}
    body = {"amount": "50.00", "note": "修补路面"}
    no_fund = await svc.client.post(url, json=body, headers=headers)
    assert no_fund.status_code == 409, no_fund.text
    assert (await svc.client.put(f"/v1/micro-funds/{REGION}/{year}", json={"amount": "80.00"},
                                 headers=STAFF)).status_code == 200
    spent = await svc.client.post(url, json=body, headers=headers)
    assert spent.status_code == 201, spent.text
    assert spent.json()["spent"] == "50.00" and spent.json()["balance"] == "30.00"
