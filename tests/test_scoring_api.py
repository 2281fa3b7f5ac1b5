"""The scoring service on real PostgreSQL and NATS: points from events, rules by date, staff records,
corrections, rankings frozen when published, the talk list, the units' board, and a rebuild."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import nats
import pytest
from busutil import event_body, eventually
from conftest import Servers
from scoringutil import STAFF, Scoring, report_event, scoring_service, suggestion_event
from sqlalchemy import text
from suggestionsutil import bearer

from services.scoring.domain import CHINA
from shared.ids import new_id

REGION = "350102"  # scoring tests only: 3501xx
NOW = datetime.now(CHINA)
YEAR = NOW.year


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scoring]:
    async with scoring_service(servers, tmp_path_factory.mktemp("scoring")) as service:
        yield service


async def new_deputy(svc: Scoring, region: str = REGION, level: str = "county") -> str:
    deputy_id = f"sd-{new_id()[-12:]}"
    await svc.deputy(deputy_id, region, level=level)
    return deputy_id


def by_rule(score: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in score["entries"]:
        out[e["rule_code"]] = out.get(e["rule_code"], 0) + e["points"]
    return out


async def test_events_give_points_by_the_default_rules_once_however_often_they_come(svc: Scoring) -> None:
    lead, co = await new_deputy(svc), await new_deputy(svc)
    sid = new_id()
    submitted = await svc.send("suggestions.suggestion.submitted", suggestion_event(
        "submitted", sid, lead, REGION, NOW, co_signers=(co,), topic_id=new_id()))
    await svc.send("suggestions.suggestion.assigned", suggestion_event(
        "assigned", sid, lead, REGION, NOW, co_signers=(co,), seq=2, key=True, lead_unit_id="u-350102"))
    await svc.send("intake.report.acknowledged", report_event(lead, REGION, NOW, on_time=True))
    await svc.send("intake.report.answered", report_event(lead, REGION, NOW, on_time=False))
    await svc.send("intake.report.rated", report_event(lead, REGION, NOW, stars=5))
    await svc.send("intake.report.submitted", report_event(lead, REGION, NOW))  # no rule: nothing
    score = await svc.score(lead, YEAR, entries=6)
    assert by_rule(score) == {"suggestion_led": 4, "hotspot_supervision": 3, "suggestion_key": 3,
                              "report_ack_on_time": 0.5, "report_answer_late": -1, "report_rated_5": 1}
    assert (score["base"], score["bonus"], score["total"]) == (3.5, 7, 10.5)
    assert score["dimensions"]["advisory"] == pytest.approx(7 / 30 * 100, abs=0.1)
    assert score["stars"] == 1 and score["grade"] == "not_competent"
    led = next(e for e in score["entries"] if e["rule_code"] == "suggestion_led")
    assert (led["source"], led["source_id"], led["rule_region"]) == ("suggestions.suggestion.submitted", submitted,
                                                                    "default")
    assert by_rule(await svc.score(co, YEAR, entries=1)) == {"suggestion_cosigned": 1}
    # The same event again (a redelivery, a replay) changes nothing.
    await svc.send("suggestions.suggestion.submitted", suggestion_event(
        "submitted", sid, lead, REGION, NOW, co_signers=(co,), topic_id="x"), event_id=submitted)
    marker = await new_deputy(svc)
    await svc.send("intake.report.acknowledged", report_event(marker, REGION, NOW, on_time=True))
    await svc.score(marker, YEAR, entries=1)
    assert len((await svc.score(lead, YEAR))["entries"]) == 6


async def test_base_is_capped_at_100_and_bonus_is_not(svc: Scoring) -> None:
    deputy = await new_deputy(svc)
    for _ in range(11):
        resp = await svc.client.post("/v1/activities", headers=STAFF, json={
            "deputy_id": deputy, "kind": "session_attendance", "on": NOW.date().isoformat(),
            "evidence": {"sign_in_sheet": "2026-01"}})
        assert resp.status_code == 201, resp.text
    for kind in ("award_national", "award_province"):
        await svc.client.post("/v1/activities", headers=STAFF, json={
            "deputy_id": deputy, "kind": kind, "on": NOW.date().isoformat(), "evidence": {"document": "表彰决定"}})
    score = await svc.score(deputy, YEAR, entries=13)
    assert (score["base"], score["bonus"], score["total"]) == (100, 16, 116)
    assert score["stars"] == 10 and score["grade"] == "excellent"


async def test_a_burst_written_in_batches_adds_up_to_exactly_its_entries(svc: Scoring) -> None:
    deputies = [await new_deputy(svc) for _ in range(4)]
    kinds = [("intake.report.acknowledged", {"on_time": True}), ("intake.report.answered", {"on_time": False}),
             ("intake.report.rated", {"stars": 5}), ("intake.report.rated", {"stars": 1}),
             ("intake.report.answered", {"on_time": True})]
    messages: list[tuple[str, bytes, str]] = []
    for n in range(300):
        kind, extra = kinds[n % len(kinds)]
        messages.append((kind, report_event(deputies[n % 4], REGION, NOW, **extra), new_id()))
    for n in range(40):
        messages.append(("suggestions.suggestion.submitted", suggestion_event(
            "submitted", new_id(), deputies[n % 4], REGION, NOW, co_signers=(deputies[(n + 1) % 4],)), new_id()))
    nc = await nats.connect(svc.nats_url)
    try:
        js = nc.jetstream()
        await asyncio.gather(*(js.publish(kind, event_body(event_id, kind, data), headers={"Nats-Msg-Id": event_id},
                                          timeout=10) for kind, data, event_id in messages))
    finally:
        await nc.close()
    await svc.caught_up()

    async with svc.runtime.database.sessions() as session:
        entries = (await session.execute(text(
            "SELECT deputy_id, part, dimension, points FROM scoring.entries WHERE deputy_id = ANY(:ids)"),
            {"ids": deputies})).all()
        totals = {r.deputy_id: r for r in (await session.execute(text(
            "SELECT deputy_id, base_sum, bonus_sum, total, dimensions FROM scoring.totals "
            "WHERE deputy_id = ANY(:ids) AND year = :year"), {"ids": deputies, "year": YEAR})).all()}
    assert len(entries) == 300 + 80
    for deputy in deputies:
        mine = [e for e in entries if e.deputy_id == deputy]
        base = sum((e.points for e in mine if e.part == "base"), Decimal(0))
        bonus = sum((e.points for e in mine if e.part == "bonus"), Decimal(0))
        dims: dict[str, Decimal] = {}
        for e in mine:
            dims[e.dimension] = dims.get(e.dimension, Decimal(0)) + e.points
        row = totals[deputy]
        assert (row.base_sum, row.bonus_sum) == (base, bonus), deputy
        assert row.total == min(Decimal(100), max(Decimal(0), base)) + max(Decimal(0), bonus)
        assert {k: Decimal(str(v)) for k, v in row.dimensions.items()} == dims


async def test_rules_change_from_their_date_and_never_rewrite_the_past(svc: Scoring) -> None:
    region = "350103"
    deputy = await new_deputy(svc, region)
    # The time of this test, not of the module's import: China's midnight may have passed between them.
    now = datetime.now(CHINA)
    tomorrow = now.date() + timedelta(days=1)
    rules = {"effective_from": tomorrow.isoformat(), "rules": [
        {"code": "report_ack_on_time", "on": "intake.report.acknowledged", "points": 2, "dimension": "relief",
         "match": {"on_time": True}, "label": "按时受理"}]}
    today = await svc.client.put(f"/v1/rules/{region}", headers=STAFF, json={**rules,
                                                                             "effective_from": now.date().isoformat()})
    assert today.status_code == 422 and today.json()["errors"][0]["field"] == "effective_from"
    put = await svc.client.put(f"/v1/rules/{region}", headers=STAFF, json=rules)
    assert put.status_code == 200, put.text
    assert put.json()["version"] >= 1
    later = now + timedelta(days=2)
    await svc.send("intake.report.acknowledged", report_event(deputy, region, now, on_time=True))
    await svc.send("intake.report.acknowledged", report_event(deputy, region, later, on_time=True))
    if later.year == YEAR:
        entries = (await svc.score(deputy, YEAR, entries=2))["entries"]
    else:
        entries = (await svc.score(deputy, YEAR, entries=1))["entries"] + (
            await svc.score(deputy, later.year, entries=1))["entries"]
    by_day = {datetime.fromisoformat(e["at"]).astimezone(CHINA).date().isoformat(): e for e in entries}
    old, new = by_day[now.date().isoformat()], by_day[later.date().isoformat()]
    assert (old["points"], old["rule_region"]) == (0.5, "default")
    assert (new["points"], new["rule_region"], new["rule_version"]) == (2, region, put.json()["version"])
    in_force = await svc.client.get(f"/v1/rules/{region}", params={"on": tomorrow.isoformat()})
    assert [r["points"] for r in in_force.json()["rules"]] == [2]
    other = await svc.client.get("/v1/rules/350104", params={"on": tomorrow.isoformat()})
    assert other.json()["region_code"] == ""


async def test_staff_records_carry_who_and_evidence_and_a_retry_records_once(svc: Scoring) -> None:
    deputy = await new_deputy(svc)
    station = bearer("station_staff", "3501")
    body = {"deputy_id": deputy, "kind": "reception_day", "on": NOW.date().isoformat(),
            "evidence": {"photo_ids": ["p1", "p2"]}, "note": "逢十接待日"}
    key = {"Idempotency-Key": f"reception-{deputy}"}
    first = await svc.client.post("/v1/activities", headers={**station, **key}, json=body)
    again = await svc.client.post("/v1/activities", headers={**station, **key}, json=body)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    absent = await svc.client.post("/v1/activities", headers=station, json={
        **body, "kind": "session_absence_without_leave", "evidence": {"roll_call": "第一次会议"}})
    assert absent.status_code == 201
    score = await svc.score(deputy, YEAR, entries=2)
    reception = next(e for e in score["entries"] if e["rule_code"] == "reception_day")
    assert reception["recorded_by"] == "t-station_staff-3501-None-None"
    assert reception["evidence"] == {"photo_ids": ["p1", "p2"]} and reception["points"] == 2
    assert by_rule(score)["session_absence_without_leave"] == 0 and score["total"] == 2
    elsewhere = await svc.client.post("/v1/activities", headers=bearer("station_staff", "3502"), json=body)
    assert elsewhere.status_code == 403
    future = await svc.client.post("/v1/activities", headers=station, json={
        **body, "on": (NOW.date() + timedelta(days=3)).isoformat()})
    assert future.status_code == 422


async def test_a_correction_reverses_an_entry_once(svc: Scoring) -> None:
    deputy = await new_deputy(svc)
    await svc.client.post("/v1/activities", headers=STAFF, json={
        "deputy_id": deputy, "kind": "inspection", "on": NOW.date().isoformat(), "evidence": {"doc": "视察通知"}})
    entry = (await svc.score(deputy, YEAR, entries=1))["entries"][0]
    resp = await svc.client.post(f"/v1/entries/{entry['id']}/reversal", headers=STAFF, json={"reason": "重复登记"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["reverses"] == entry["id"] and resp.json()["points"] == -entry["points"]
    score = await svc.score(deputy, YEAR, entries=2)
    assert score["total"] == 0
    twice = await svc.client.post(f"/v1/entries/{entry['id']}/reversal", headers=STAFF, json={"reason": "再次"})
    of_reversal = await svc.client.post(f"/v1/entries/{resp.json()['id']}/reversal", headers=STAFF,
                                        json={"reason": "撤销冲正"})
    assert twice.status_code == of_reversal.status_code == 409


async def award(svc: Scoring, deputy: str, kinds: list[str], on: str | None = None) -> None:
    for kind in kinds:
        resp = await svc.client.post("/v1/activities", headers=STAFF, json={
            "deputy_id": deputy, "kind": kind, "on": on or NOW.date().isoformat(), "evidence": {"doc": "x"}})
        assert resp.status_code == 201, resp.text


async def test_rankings_share_ranks_on_ties_and_stay_as_published(svc: Scoring) -> None:
    region = "350105"
    a, b, c, d = [await new_deputy(svc, region) for _ in range(4)]
    city = await new_deputy(svc, region, level="municipal")
    await award(svc, a, ["survey", "inspection"])  # 6
    await award(svc, b, ["inspection", "survey"])  # 6
    await award(svc, c, ["training"])  # 2
    await award(svc, city, ["report_back"])
    await svc.score(c, YEAR, entries=1)
    resp = await svc.client.get("/v1/rankings", params={"year": YEAR, "region_code": region, "level": "county"})
    ranked = [(r["deputy_id"], r["total"], r["rank"]) for r in resp.json()]
    assert ranked == [*sorted([(a, 6, 1), (b, 6, 1)]), (c, 2, 3), (d, 0, 4)]
    published = await svc.client.post("/v1/rankings/publications", headers=STAFF,
                                      json={"year": YEAR, "region_code": region, "level": "county"})
    assert published.status_code == 201, published.text
    await award(svc, d, ["report_back", "survey"])
    await svc.score(d, YEAR, entries=2)
    assert (published.json()["deputies"], published.json()["pages"]) == (4, 1)
    frozen = await svc.client.get("/v1/rankings", params={"year": YEAR, "region_code": region, "level": "county"})
    assert frozen.json() == resp.json() and "minyi-published-at" in frozen.headers
    live = await svc.client.get("/v1/rankings", params={"year": YEAR, "region_code": region})
    assert [r["deputy_id"] for r in live.json()][:1] == [d]
    again = await svc.client.post("/v1/rankings/publications", headers=STAFF,
                                  json={"year": YEAR, "region_code": region, "level": "county"})
    assert again.status_code == 409
    # City deputies carry identity's level name; the old name `city` asks for the same ones.
    for name in ("municipal", "city"):
        cities = await svc.client.get("/v1/rankings", params={"year": YEAR, "region_code": region, "level": name})
        assert [r["deputy_id"] for r in cities.json()] == [city], (name, cities.text)
    staff_elsewhere = await svc.client.post("/v1/rankings/publications", headers=bearer("npc_staff", "3502"),
                                            json={"year": YEAR, "region_code": region})
    assert staff_elsewhere.status_code == 403


async def test_the_bottom_of_the_year_is_listed_for_a_talk_and_two_years_running_flagged(svc: Scoring) -> None:
    region = "350106"
    top, low, new = [await new_deputy(svc, region) for _ in range(3)]
    last_year = f"{YEAR - 1}-06-01"
    await award(svc, top, ["report_back"], last_year)
    await award(svc, new, ["training"], last_year)
    await award(svc, top, ["report_back"])
    await award(svc, new, ["training"])
    await svc.score(new, YEAR, entries=1)
    resp = await svc.client.get("/v1/talks", params={"year": YEAR, "region_code": region}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert [(t["deputy_id"], t["consecutive"]) for t in resp.json()] == [(low, True)]
    deputy_token = await svc.client.get("/v1/talks", params={"year": YEAR, "region_code": region},
                                        headers=bearer("deputy", deputy_id=low))
    assert deputy_token.status_code == 403


async def test_units_land_on_red_yellow_and_black_boards(svc: Scoring) -> None:
    region = "350107"
    lead = await new_deputy(svc, region)

    async def handled(unit: str, on_time: bool, result: str) -> None:
        sid = new_id()
        await svc.send("suggestions.suggestion.replied", suggestion_event(
            "replied", sid, lead, region, NOW, seq=3, lead_unit_id=unit, step_data={"on_time": on_time}))
        await svc.send("suggestions.suggestion.evaluated", suggestion_event(
            "evaluated", sid, lead, region, NOW, seq=4, lead_unit_id=unit, step_data={"result": result}))

    for _ in range(4):
        await handled("good-unit", True, "satisfied")
    for on_time, result in ((True, "satisfied"), (True, "basically_satisfied"), (False, "satisfied"),
                            (True, "dissatisfied")):
        await handled("so-so-unit", on_time, result)
    for on_time in (False, False, True):
        await handled("late-unit", on_time, "dissatisfied")

    async def board() -> dict[str, dict[str, Any]]:
        resp = await svc.client.get("/v1/units/board", params={"year": YEAR, "region_code": region})
        return {u["unit_id"]: u for u in resp.json()}

    async def all_counted() -> bool:
        units = await board()
        return sum(u["replies"] + u["evaluations"] for u in units.values()) == 22

    await eventually(all_counted, timeout=20, what="22 replies and evaluations on the board")
    units = await board()
    assert units["good-unit"]["board"] == "red" and units["good-unit"]["on_time_rate"] == 1
    assert units["so-so-unit"]["board"] == "yellow" and units["so-so-unit"]["on_time_rate"] == 0.75
    assert units["late-unit"]["board"] == "black" and units["late-unit"]["satisfaction_rate"] == 0


async def test_deputies_see_their_own_score_only(svc: Scoring) -> None:
    mine, other = await new_deputy(svc), await new_deputy(svc)
    own = await svc.client.get(f"/v1/deputies/{mine}/score", params={"year": YEAR},
                               headers=bearer("deputy", deputy_id=mine))
    theirs = await svc.client.get(f"/v1/deputies/{other}/score", params={"year": YEAR},
                                  headers=bearer("deputy", deputy_id=mine))
    nobody = await svc.client.get(f"/v1/deputies/{mine}/score", params={"year": YEAR})
    missing = await svc.client.get("/v1/deputies/nobody-here/score", params={"year": YEAR}, headers=STAFF)
    assert (own.status_code, theirs.status_code, nobody.status_code, missing.status_code) == (200, 403, 401, 404)
    assert theirs.headers["content-type"].startswith("application/problem+json")


async def test_the_whole_ledger_is_rebuilt_from_the_streams_into_an_empty_schema(
    svc: Scoring, servers: Servers, server_env: dict[str, str]
) -> None:
    region = "350108"
    deputy = await new_deputy(svc, region)
    await award(svc, deputy, ["report_back", "training"])
    await svc.send("intake.report.answered", report_event(deputy, region, NOW, on_time=True))
    score = await svc.score(deputy, YEAR, entries=3)
    await svc.client.post(f"/v1/entries/{score['entries'][0]['id']}/reversal", headers=STAFF, json={"reason": "误记"})
    await svc.client.post("/v1/rankings/publications", headers=STAFF, json={"year": YEAR, "region_code": region})

    async def drained() -> bool:
        async with svc.runtime.sessions()() as session:
            return not await session.scalar(text("SELECT count(*) FROM scoring.outbox WHERE published_at IS NULL"))

    await svc.score(deputy, YEAR, entries=4)
    await eventually(drained, timeout=30, what="every entry published to SCORING")
    await svc.caught_up()
    before = await snapshot(svc)
    async with svc.runtime.transaction() as session:
        await session.execute(text(
            "TRUNCATE scoring.entries, scoring.totals, scoring.rule_sets, scoring.publications,"
            " scoring.publication_rows, scoring.unit_facts, scoring.deputies, scoring.inbox"))
    assert (await svc.client.get(f"/v1/deputies/{deputy}/score", params={"year": YEAR},
                                 headers=STAFF)).status_code == 404
    # As on a workstation after `minyi up`: no NATS URL, only the embedded server's port.
    env = {k: v for k, v in server_env.items() if k != "MINYI_NATS_URL"}
    env["MINYI_NATS_PORT"] = svc.nats_url.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "minyi.cli", "rebuild", "scoring"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert await snapshot(svc) == before


async def snapshot(svc: Scoring) -> dict[str, Any]:
    """Every table the answers come from, whole, in a stable order."""
    out: dict[str, Any] = {}
    async with svc.runtime.sessions()() as session:
        for table, order in (("entries", "id"), ("totals", "deputy_id, year"), ("rule_sets", "region_code, version"),
                             ("publications", "id"), ("publication_rows", "publication_id, position"),
                             ("unit_facts", "event_id"), ("deputies", "id")):
            rows = (await session.execute(text(f"SELECT * FROM scoring.{table} ORDER BY {order}"))).mappings().all()
            out[table] = [{k: v for k, v in r.items() if k not in ("recorded_at",)} for r in rows]
    # Other modules' identity services reuse deputy ids (D1, D2 …) at the same version in other regions
    # on the shared stream; which copy a projection keeps then depends on which scoring instance saw
    # what. The deputies the ledger speaks of are the ones its answers depend on.
    ledger_deputies = {e["deputy_id"] for e in out["entries"]} | {t["deputy_id"] for t in out["totals"]}
    out["deputies"] = [d for d in out["deputies"] if d["id"] in ledger_deputies]
    return out
