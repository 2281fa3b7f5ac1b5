"""Elections, voter registration and reconciliation on real PostgreSQL and NATS.

The reconciliation job runs as SQL inside PostgreSQL; these tests check it finds each problem kind
of docs/integrators.md in a hand-made county, and exactly what the plain-Python rules find on a random one.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from busutil import eventually, stream_messages
from conftest import Servers
from identityutil import bearer, id_number, identity_service, with_wrong_check
from sqlalchemy import text

from services.identity import reconciliation as rules
from shared import idnumber
from shared.pii import blind_index
from shared.service import Runtime

ADMIN = bearer("admin")
STAFF = bearer("npc_staff", "320205")
INTEGRATION = bearer("integration")
ELECTION_DAY = date(2026, 12, 15)
ADULT = date(1980, 5, 1)


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with identity_service(servers, tmp_path_factory.mktemp("elections-home")) as (client, runtime):
        for code, name, parent in (("320000", "江苏省", None), ("320200", "无锡市", "320000"),
                                   ("320205", "锡山区", "320200"), ("320206", "惠山区", "320200")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        yield client, runtime


def person(name: str, region: str, born: date, seq: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "record_id": f"pop-{name}", "id_number": id_number(region, born, seq), "name": name,
        "hukou_region_code": region, "residence_region_code": region, "status": "active",
        "political_rights": True, "updated_at": "2026-09-01T00:00:00+08:00",
    }
    body.update(over)
    return body


async def load(client: httpx.AsyncClient, source: str, records: list[dict[str, Any]]) -> None:
    resp = await client.post(f"/v1/registry/{source}/records", json=records, headers=INTEGRATION)
    assert resp.status_code == 200 and resp.json()["rejected"] == [], resp.text


async def register(client: httpx.AsyncClient, election: str, voters: list[dict[str, Any]],
                   headers: dict[str, str] = STAFF) -> dict[str, Any]:
    resp = await client.post(f"/v1/elections/{election}/voters", json=voters, headers=headers)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def reconcile(client: httpx.AsyncClient, election: str, headers: dict[str, str] = STAFF
                    ) -> list[dict[str, Any]]:
    started = await client.post(f"/v1/elections/{election}/reconciliation", headers=headers)
    assert started.status_code == 202, started.text
    seen: list[float] = []

    async def done() -> bool:
        state = (await client.get(f"/v1/elections/{election}/reconciliation", headers=headers)).json()
        seen.append(state["progress"])
        assert state["status"] != "failed", state
        return bool(state["status"] == "done" and state["job_id"] == started.json()["job_id"])

    await eventually(done, timeout=60, what=f"reconciliation of {election} done", interval=0.05)
    assert seen == sorted(seen) and seen[-1] == 1.0
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = (await client.get(f"/v1/elections/{election}/reconciliation?page={page}", headers=headers)).json()
        items.extend(body["items"])
        if len(body["items"]) < body["page_size"]:
            assert len(items) == body["total_items"] == sum(body["counts"].values())
            return items
        page += 1


async def test_elections_and_their_districts_are_checked(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    good = {"region_code": "320205", "election_date": "2026-12-15",
            "districts": [{"id": "D1", "region_codes": ["320205001"]}]}
    assert (await client.put("/v1/elections/E-CHECK", json=good, headers=STAFF)).status_code == 201
    assert (await client.put("/v1/elections/E-CHECK", json=good, headers=STAFF)).status_code == 200
    outside = {**good, "districts": [{"id": "D1", "region_codes": ["320206001"]}]}
    resp = await client.put("/v1/elections/E-CHECK", json=outside, headers=STAFF)
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "districts[0].region_codes[0]",
                                      "message": "选区的地区必须在本次选举的地区之内"}]
    twice = {**good, "districts": [{"id": "D1", "region_codes": ["320205001"]},
                                   {"id": "D2", "region_codes": ["320205001"]}]}
    assert (await client.put("/v1/elections/E-CHECK", json=twice, headers=STAFF)).json()["errors"][0]["message"] \
        == "该地区已划入选区 D1"
    assert (await client.put("/v1/elections/E-CHECK", json=good, headers=bearer("npc_staff", "320206"))
            ).status_code == 403
    assert (await client.get("/v1/elections/E-CHECK", headers=bearer("npc_staff", "320206"))).status_code == 404
    assert (await client.put("/v1/elections/E-CHECK", json=good, headers=bearer("deputy", "320205"))
            ).status_code == 403


async def test_registering_twice_in_one_district_is_refused_in_a_second_accepted(
    identity: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = identity
    await client.put("/v1/elections/E-REG", headers=STAFF, json={
        "region_code": "320205", "election_date": "2026-12-15",
        "districts": [{"id": "D1", "region_codes": ["320205001"]}, {"id": "D2", "region_codes": ["320205002"]}]})
    someone = id_number("320205", ADULT, 1)
    first = await register(client, "E-REG", [
        {"id_number": someone, "name": "甲", "district_id": "D1"},
        {"id_number": someone.lower(), "name": "甲", "district_id": "D1"},
        {"id_number": with_wrong_check(someone), "name": "乙", "district_id": "D1"},
        {"id_number": id_number("320205", ADULT, 2), "name": "丙", "district_id": "D9"},
        {"id_number": id_number("320205", ADULT, 3), "name": " ", "district_id": "D1"},
    ])
    assert first == {"accepted": 1, "unchanged": 0, "rejected": [
        {"index": 1, "error": "该选民已在本选区登记（本批重复）"},
        {"index": 2, "error": "id_number: 校验位不正确"},
        {"index": 3, "error": "district_id: 不是本次选举的选区"},
        {"index": 4, "error": "name: 缺少或超过100个字符"},
    ]}
    again = await register(client, "E-REG", [{"id_number": someone, "name": "甲", "district_id": "D1"},
                                             {"id_number": someone, "name": "甲", "district_id": "D2"}])
    assert again == {"accepted": 1, "unchanged": 0, "rejected": [{"index": 0, "error": "该选民已在本选区登记"}]}
    # A district with voters cannot silently disappear from the election.
    shrink = await client.put("/v1/elections/E-REG", headers=STAFF, json={
        "region_code": "320205", "election_date": "2026-12-15",
        "districts": [{"id": "D1", "region_codes": ["320205001"]}]})
    assert shrink.status_code == 409


async def test_reconciliation_finds_each_kind_of_problem(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    d1, d2, outside = "320205001001", "320205002001", "320206009001"
    eighteen = date(ELECTION_DAY.year - 18, ELECTION_DAY.month, ELECTION_DAY.day)
    people = {
        "fine": person("正常", d1, ADULT, 10),
        "dead": person("已故", d1, ADULT, 11, status="deceased"),
        "dead_elsewhere": person("社保已故", d1, ADULT, 12),
        "deprived": person("剥夺", d1, ADULT, 13, political_rights=False),
        "day_after": person("差一天", d1, eighteen + timedelta(days=1), 14),
        "on_the_day": person("当天满", d1, eighteen, 15),
        "day_before": person("前一天", d1, eighteen - timedelta(days=1), 16),
        "twice": person("两处", d1, ADULT, 17),
        "wrong": person("错区", d2, ADULT, 18),
        "far": person("外区", outside, ADULT, 19),
        "missing": person("漏登", d2, ADULT, 20),
        "certified": person("持证", outside, ADULT, 21),
        "certified_missing": person("持证漏登", outside, ADULT, 22),
        "uncertified": person("无证", d2, ADULT, 23),
        "young_unregistered": person("未成年", d2, eighteen + timedelta(days=30), 24),
        "gone": person("出国", d2, ADULT, 25, status="emigrated"),
    }
    await load(client, "population", list(people.values()))
    social = dict(people["dead_elsewhere"], record_id="ss-1", status="deceased")
    await load(client, "social_security", [social])
    await load(client, "migrant", [
        dict(people["certified"], record_id="m-1", residence_region_code=d1, residence_certificate=True),
        dict(people["certified_missing"], record_id="m-2", residence_region_code=d1, residence_certificate=True),
        dict(people["uncertified"], record_id="m-3", residence_region_code=d1, residence_certificate=False),
    ])
    await client.put("/v1/elections/E-KINDS", headers=STAFF, json={
        "region_code": "320205", "election_date": ELECTION_DAY.isoformat(),
        "districts": [{"id": "D1", "region_codes": ["320205001"]}, {"id": "D2", "region_codes": ["320205002"]}]})
    registered = ["fine", "dead", "dead_elsewhere", "deprived", "day_after", "on_the_day", "day_before", "twice",
                  "wrong", "far", "certified", "uncertified"]
    result = await register(client, "E-KINDS", [
        {"id_number": people[k]["id_number"], "name": people[k]["name"], "district_id": "D1"} for k in registered
    ] + [{"id_number": people["twice"]["id_number"], "name": "两处", "district_id": "D2"}])
    assert result["accepted"] == len(registered) + 1

    items = await reconcile(client, "E-KINDS")
    found = {i["name"]: (i["kind"], i["district_id"], i["expected_district_id"]) for i in items}
    assert found == {
        "已故": ("deceased", "D1", "D1"),
        "社保已故": ("deceased", "D1", "D1"),
        "剥夺": ("deprived", "D1", "D1"),
        "差一天": ("underage", "D1", "D1"),
        "两处": ("duplicate", "D2", "D1"),
        "错区": ("wrong_district", "D1", "D2"),
        "外区": ("wrong_district", "D1", None),
        "漏登": ("missing", None, "D2"),
        "持证漏登": ("missing", None, "D1"),
        "无证": ("wrong_district", "D1", "D2"),
    }
    for item in items:
        original = next(p["id_number"] for p in people.values() if p["name"] == item["name"])
        assert item["id_number_masked"] == idnumber.mask(original) != original

    state = (await client.get("/v1/elections/E-KINDS/reconciliation?kind=missing", headers=STAFF)).json()
    assert state["counts"] == {"deceased": 2, "deprived": 1, "underage": 1, "duplicate": 1, "wrong_district": 3,
                               "missing": 2}
    assert {i["name"] for i in state["items"]} == {"漏登", "持证漏登"}

    async def completed() -> list[dict[str, Any]]:
        msgs = await stream_messages(servers.nats_url, "IDENTITY")
        docs = [json.loads(d) for s, _, d in msgs if s == "identity.reconciliation.completed"]
        return [d for d in docs if d["data"]["election_id"] == "E-KINDS"]

    async def has_event() -> bool:
        return bool(await completed())

    await eventually(has_event, timeout=10, what="identity.reconciliation.completed for E-KINDS")
    (event,) = await completed()
    assert event["data"]["counts"] == state["counts"] and event["data"]["job_id"] == state["job_id"]
    assert not any(p["id_number"] in json.dumps(event) or p["name"] in json.dumps(event, ensure_ascii=False)
                   for p in people.values())

    # A second run supersedes the first: the first job and every one of its findings are gone.
    client_runtime = identity[1]
    again = await reconcile(client, "E-KINDS")
    assert len(again) == len(items)

    async def findings_by_job() -> dict[str, int]:
        async with client_runtime.transaction() as session:
            rows = (await session.execute(text(
                "SELECT job_id, count(*) FROM identity.reconciliation_items GROUP BY job_id"))).all()
        return {str(job): int(n) for job, n in rows}

    latest = (await client.get("/v1/elections/E-KINDS/reconciliation", headers=STAFF)).json()["job_id"]
    assert latest != state["job_id"]
    by_job = await findings_by_job()
    assert state["job_id"] not in by_job and by_job[latest] == len(items)

    # Each job's findings are a partition of their own, and the superseded job's was dropped with it.
    async with client_runtime.transaction() as session:
        partitions = dict((await session.execute(text(
            "SELECT j, to_regclass('identity.' || identity.reconciliation_items_partition(j)) IS NOT NULL "
            "FROM unnest(CAST(:jobs AS text[])) AS j"), {"jobs": [state["job_id"], latest]})).all())
    assert partitions == {state["job_id"]: False, latest: True}


async def test_reconciliation_is_refused_outside_the_callers_region(
    identity: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = identity
    other = bearer("npc_staff", "320206")
    assert (await client.post("/v1/elections/E-KINDS/reconciliation", headers=other)).status_code == 404
    assert (await client.get("/v1/elections/E-KINDS/reconciliation", headers=other)).status_code == 404
    assert (await client.get("/v1/elections/E-NONE/reconciliation", headers=STAFF)).status_code == 404


async def test_sql_reconciliation_matches_the_plain_rules_on_a_random_county(
    identity: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = identity
    rng = random.Random(20261121)
    staff = bearer("npc_staff", "320206")
    villages = [f"320206{t:03d}{v:03d}" for t in range(1, 5) for v in range(1, 4)]
    districts = [rules.District("R1", ["320206001"]), rules.District("R2", ["320206002", "320206003001"]),
                 rules.District("R3", ["320206003", "320206004"])]
    await client.put("/v1/elections/E-RANDOM", headers=staff, json={
        "region_code": "320206", "election_date": ELECTION_DAY.isoformat(),
        "districts": [{"id": d.id, "region_codes": list(d.region_codes)} for d in districts]})

    base = datetime(2026, 1, 1)
    by_source: dict[str, list[dict[str, Any]]] = {"population": [], "social_security": [], "migrant": []}
    source_records: list[rules.SourceRecord] = []
    voters: list[dict[str, Any]] = []
    registrations: list[rules.Registration] = []
    names: dict[bytes, str] = {}
    for n in range(400):
        born = ELECTION_DAY - timedelta(days=rng.choice([365 * 18 - 30, 365 * 18 + 5, 6575, 6574, 9000, 20000]))
        number = id_number(rng.choice(villages)[:6], born, n)
        key = blind_index(runtime.keyring, number, kind="id_number")
        names[key] = f"人{n}"
        minute = 0
        for source in ("population", "social_security", "migrant"):
            for version in range(rng.choice([0, 1, 1, 2]) if source != "population" else rng.choice([0, 1, 1, 1, 2])):
                minute += 1
                hukou = rng.choice([*villages, "320299001001"])
                record = {
                    "record_id": f"rnd-{source}-{n}-{version}", "id_number": number, "name": f"人{n}",
                    "hukou_region_code": hukou, "residence_region_code": rng.choice(villages),
                    "status": rng.choices(["active", "deceased", "emigrated"], [20, 1, 1])[0],
                    "political_rights": rng.random() > 0.05,
                    "residence_certificate": rng.choice([True, False, None]),
                    "updated_at": (base + timedelta(minutes=minute)).isoformat() + "+08:00",
                }
                by_source[source].append(record)
                source_records.append(rules.SourceRecord(
                    key, source, born, record["hukou_region_code"], record["residence_region_code"],
                    record["status"], record["political_rights"], record["residence_certificate"],
                    base.replace(tzinfo=None) + timedelta(minutes=minute)))
        for district in rng.sample(["R1", "R2", "R3"], rng.choice([0, 1, 1, 1, 2, 3])):
            voters.append({"id_number": number, "name": f"人{n}", "district_id": district})
            registrations.append(rules.Registration(key, district, born))
    for source, records in by_source.items():
        await load(client, source, records)
    assert (await register(client, "E-RANDOM", voters, headers=staff))["accepted"] == len(voters)

    expected = rules.reconcile(rules.merge_sources(source_records), registrations, districts, ELECTION_DAY)
    items = await reconcile(client, "E-RANDOM", headers=staff)
    got = sorted((i["kind"], i["name"], i["district_id"], i["expected_district_id"]) for i in items)
    want = sorted((f.kind, names[f.person], f.district_id, f.expected_district_id) for f in expected)
    assert got == want
    assert {k for k, *_ in want} == set(rules.KINDS), "the random county should show every kind"
