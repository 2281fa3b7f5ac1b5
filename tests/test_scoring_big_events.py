"""No event scoring stages is too big for NATS: staff records and rules are bounded at the API, and a
province's ranking is published as pages, each well under NATS's 1 MB limit, so the outbox relay
never meets a row it cannot publish and goes on with the events after it. On a NATS of its own
with the default `max_payload` (1 MB), not the embedded server's 8 MB."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from busutil import eventually, fresh_database, stream_messages
from conftest import Servers
from scoringutil import Scoring, scoring_service
from sqlalchemy import text
from suggestionsutil import bearer

from minyi.servers import Nats, free_port
from services.scoring.domain import CHINA
from services.scoring.rebuild import own_event
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.errors import PROBLEM_JSON
from shared.ids import new_id

PROVINCE = "51"  # these tests only: 51xxxx
STAFF = bearer("npc_staff", PROVINCE)
NOW = datetime.now(CHINA)
YEAR = NOW.year
LIMIT = 512 * 1024
DEPUTIES = 3000


class DefaultLimitNats(Nats):
    """NATS with its default `max_payload` of 1 MB, as deployments run it (the embedded one takes 8 MB)."""

    def write_config(self) -> None:
        super().write_config()
        conf = self.config_path.read_text()
        assert "max_payload: 8MB" in conf
        self.config_path.write_text(conf.replace("max_payload: 8MB", "max_payload: 1MB"))


@pytest.fixture(scope="module")
def nats_1mb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("nats-1mb")
    server = DefaultLimitNats(root / "js", free_port(), free_port(), root / "nats.log", root / "nats.conf")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def svc(servers: Servers, nats_1mb: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scoring]:
    database_url = await fresh_database(servers.database_url, "scoring_big_events")
    async with scoring_service(servers, tmp_path_factory.mktemp("scoring-big"), nats_url=nats_1mb,
                               database_url=database_url) as service:
        yield service


async def biggest_outbox_row(svc: Scoring) -> int:
    async with svc.runtime.sessions()() as session:
        return int(await session.scalar(text("SELECT COALESCE(max(octet_length(payload::text)), 0) "
                                             "FROM scoring.outbox")) or 0)


async def drained(svc: Scoring) -> bool:
    async with svc.runtime.sessions()() as session:
        return not await session.scalar(text("SELECT count(*) FROM scoring.outbox WHERE published_at IS NULL"))


async def test_evidence_is_bounded_at_the_api_and_never_reaches_the_outbox(svc: Scoring) -> None:
    deputy = f"big-{new_id()[-10:]}"
    await svc.deputy(deputy, "510104")
    body = {"deputy_id": deputy, "kind": "reception_day", "on": NOW.date().isoformat()}
    huge = await svc.client.post("/v1/activities", headers=STAFF,
                                 json={**body, "evidence": {"scan": "x" * 1_500_000}})
    # 413 where the service's body limit stops it first, else 422 from the field's own limit.
    assert huge.status_code in (413, 422), huge.text
    assert huge.headers["content-type"].startswith(PROBLEM_JSON)
    if huge.status_code == 422:
        assert huge.json()["errors"][0]["field"] == "evidence"
    else:
        assert "过大" in huge.json()["detail"]
    large = await svc.client.post("/v1/activities", headers=STAFF,
                                  json={**body, "evidence": {"scan": "签到表" * 2000}})
    assert large.status_code == 422, large.text
    [error] = large.json()["errors"]
    assert error["field"] == "evidence" and "4 KB" in error["message"] and "证明材料" in error["message"]
    small = await svc.client.post("/v1/activities", headers=STAFF,
                                  json={**body, "evidence": {"sign_in_sheet": "2026-接待-001"}})
    assert small.status_code == 201, small.text
    assert await biggest_outbox_row(svc) < LIMIT


# Fields of intake.report.answered, which a rule may match (the rules service refuses others).
ANSWERED_FIELDS = ("report_id", "region_code", "deputy_id", "station_id", "by", "content", "status", "at",
                   "reply_due", "round")


async def test_a_rules_version_too_big_for_an_event_is_refused(svc: Scoring) -> None:
    tomorrow = (datetime.now(CHINA).date() + timedelta(days=1)).isoformat()  # now: midnight may have passed
    rules = [{"code": f"r{i}", "on": "intake.report.answered", "points": 1, "dimension": "relief",
              "match": {field: "v" * 60 for field in ANSWERED_FIELDS}, "label": "按时答复"} for i in range(200)]
    # About 160 KB of rules: under the body limit, over what one rules event may carry.
    resp = await svc.client.put("/v1/rules/510105", headers=STAFF, json={"effective_from": tomorrow, "rules": rules})
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "rules" and "128 KB" in resp.json()["errors"][0]["message"]
    fine = await svc.client.put("/v1/rules/510105", headers=STAFF, json={"effective_from": tomorrow,
                                                                         "rules": rules[:1]})
    assert fine.status_code == 200, fine.text


async def load_province(svc: Scoring, region_prefix: str, count: int) -> list[str]:
    """`count` deputies of the province's counties with names as long as a name may be (100
    characters), and totals with many ties, written as the ledger keeps them."""
    ids = [f"pv-{region_prefix}-{i:05d}-{new_id()[-6:]}" for i in range(count)]
    async with svc.runtime.transaction() as session:
        await session.execute(text(
            "INSERT INTO scoring.deputies (id, name, level, region_code, version) "
            "SELECT d.id, repeat('代', 99) || (d.n % 10), 'county',"
            " :prefix || lpad(CAST(d.n % 20 + 1 AS text), 2, '0'), 1"
            " FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS d(id, n)"),
            {"ids": ids, "prefix": region_prefix})
        await session.execute(text(
            "INSERT INTO scoring.totals (deputy_id, year, base_sum, bonus_sum, total, dimensions) "
            "SELECT d.id, :year, (d.n % 37) + 0.5, 0, (d.n % 37) + 0.5, '{}' "
            "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS d(id, n) WHERE d.n % 3 <> 0"),
            {"ids": ids, "year": YEAR})
    return ids


async def all_pages(svc: Scoring, params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rows: list[dict[str, Any]] = []
    headers: dict[str, str] = {}
    while True:
        resp = await svc.client.get("/v1/rankings", params={**params, "limit": 1000, "offset": len(rows)},
                                    headers=STAFF)
        assert resp.status_code == 200, resp.text
        headers = dict(resp.headers)
        page = resp.json()
        assert len(page) <= 1000, f"asked for 1,000 rows, got {len(page)}"
        rows += page
        if len(page) < 1000:
            return rows, headers


def digest_of(rows: list[dict[str, Any]]) -> str:
    lines = "".join(f"{r['rank']}|{r['deputy_id']}|{Decimal(str(r['total'])).quantize(Decimal('0.01'))}\n"
                    for r in rows)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


async def published_pages(svc: Scoring, publication_id: str) -> list[tuple[bytes, CloudEvent]]:
    found = []
    for subject, _, data in await stream_messages(svc.nats_url, STREAMS["scoring"].name):
        if subject == "scoring.ranking.published":
            event = CloudEvent.model_validate(json.loads(data))
            if event.data.get("id") == publication_id:
                found.append((data, event))
    return found


async def test_a_province_ranking_is_published_in_pages_under_512_kb_and_the_relay_goes_on(svc: Scoring) -> None:
    region = f"{PROVINCE}02"
    await load_province(svc, region, DEPUTIES)
    params = {"year": YEAR, "region_code": region}
    published = await svc.client.post("/v1/rankings/publications", headers=STAFF, json=params)
    assert published.status_code == 201, published.text
    pub = published.json()

    # Staged after the publication: published too, so nothing before it held the relay up.
    deputy = f"after-{new_id()[-10:]}"
    await svc.deputy(deputy, f"{region}01")
    after = await svc.client.post("/v1/activities", headers=STAFF, json={
        "deputy_id": deputy, "kind": "training", "on": NOW.date().isoformat(), "evidence": {"doc": "培训签到"}})
    assert after.status_code == 201, after.text
    await eventually(lambda: drained(svc), timeout=30, what="every outbox row published, the ranking's pages first")
    assert await biggest_outbox_row(svc) < LIMIT

    frozen, frozen_headers = await all_pages(svc, params)
    assert len(frozen) == DEPUTIES and frozen_headers["minyi-total-count"] == str(DEPUTIES)
    assert "minyi-published-at" in frozen_headers
    # Whole, this ranking would be well over NATS's 1 MB: the test is about something real.
    assert len(json.dumps(frozen, ensure_ascii=False).encode()) > 1024 * 1024
    assert (pub["deputies"], pub["digest"]) == (DEPUTIES, digest_of(frozen)) and pub["pages"] >= 2

    pages = await published_pages(svc, pub["id"])
    assert sorted(e.data["page"] for _, e in pages) == list(range(1, pub["pages"] + 1))
    for raw, event in pages:
        assert len(raw) < LIMIT, f"page {event.data['page']} is {len(raw)} bytes"
        assert (event.data["pages"], event.data["deputies"], event.data["digest"]) == (
            pub["pages"], DEPUTIES, pub["digest"])
        assert (event.data["year"], event.data["region_code"], event.subject) == (YEAR, region, pub["id"])
    ordered = sorted((e.data for _, e in pages), key=lambda d: d["page"])
    assert [d["offset"] for d in ordered] == [sum(len(p["rows"]) for p in ordered[:i]) for i in range(len(ordered))]
    assert [row for d in ordered for row in d["rows"]] == frozen

    # A rebuild puts the publication back from its pages alone.
    async with svc.runtime.transaction() as session:
        await session.execute(text("DELETE FROM scoring.publications WHERE id = :id"), {"id": pub["id"]})
    for _, event in reversed(pages):
        async with svc.runtime.transaction() as session:
            await own_event(event, session)
    rebuilt, headers = await all_pages(svc, params)
    assert rebuilt == frozen
    assert (headers["minyi-published-at"], headers["minyi-total-count"]) == (
        frozen_headers["minyi-published-at"], str(DEPUTIES))


async def test_a_ranking_published_whole_before_pages_is_rebuilt_from_its_one_event(svc: Scoring) -> None:
    region, publication_id = f"{PROVINCE}03", new_id()
    rows = [{"deputy_id": "old-a", "name": "甲", "total": 12.5, "rank": 1, "stars": 1},
            {"deputy_id": "old-b", "name": "乙", "total": 0, "rank": 2, "stars": 0}]
    event = CloudEvent(source="/scoring", type="scoring.ranking.published", subject=publication_id, data={
        "id": publication_id, "year": 2021, "region_code": region, "level": None, "published_by": "staff",
        "published_at": "2022-01-10T09:00:00+08:00", "ranking": rows})
    async with svc.runtime.transaction() as session:
        await own_event(event, session)
    resp = await svc.client.get("/v1/rankings", params={"year": 2021, "region_code": region})
    assert resp.json() == rows and resp.headers["minyi-total-count"] == "2"
    assert resp.headers["minyi-published-at"] == "2022-01-10T01:00:00+00:00"
