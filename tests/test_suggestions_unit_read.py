"""`GET /v1/units/{unit_id}`: a handling unit as staff change it, parent included, within their region.

The console's form to change a unit reads it first: a PUT without the parent would detach the unit
from the one it belongs to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from conftest import Servers
from suggestionsutil import Suggestions, bearer, suggestions_service

REGION = "350231"
ADMIN = bearer("admin", "", sub="unit-reader-admin")
STAFF = bearer("npc_staff", REGION, sub="unit-reader-staff")
PARENT, CHILD = "u-read-parent", "u-read-child"


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-unit-read")) as service:
        for unit_id, body in ((PARENT, {"name": "市政府办公室", "region_code": REGION}),
                              (CHILD, {"name": "督查科", "region_code": f"{REGION}001", "parent_id": PARENT})):
            resp = await service.client.put(f"/v1/units/{unit_id}", headers=ADMIN, json=body)
            assert resp.status_code == 200, resp.text
        yield service


async def test_staff_read_a_unit_with_its_parent(svc: Suggestions) -> None:
    for headers in (ADMIN, STAFF):
        resp = await svc.client.get(f"/v1/units/{CHILD}", headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"id": CHILD, "name": "督查科", "region_code": f"{REGION}001", "parent_id": PARENT}
    resp = await svc.client.get(f"/v1/units/{PARENT}", headers=STAFF)
    assert resp.json()["parent_id"] is None


async def test_a_unit_outside_the_region_or_unknown_is_not_found(svc: Suggestions) -> None:
    elsewhere = bearer("npc_staff", "350232", sub="unit-reader-elsewhere")
    resp = await svc.client.get(f"/v1/units/{CHILD}", headers=elsewhere)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["detail"] == "承办单位不存在。"
    resp = await svc.client.get("/v1/units/u-read-nobody", headers=ADMIN)
    assert resp.status_code == 404


async def test_other_roles_are_refused(svc: Suggestions) -> None:
    for headers in (bearer("unit", REGION, unit_id=CHILD), bearer("deputy", REGION, deputy_id="d-read"), {}):
        resp = await svc.client.get(f"/v1/units/{CHILD}", headers=headers)
        assert resp.status_code in (401, 403), (headers, resp.status_code)
