"""Hotspots (共性事项): the clustering measured on the labelled set of tests/data/routing, through
the service's own placement code on the real database, and a hotspot forming from events."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from busutil import eventually
from conftest import Servers
from routingutil import Routing, bearer, routing_events, routing_service, submit
from sqlalchemy import select

from services.routing import hotspots
from services.routing.models import HotspotReport
from shared.ids import new_id

DATA = Path(__file__).parent / "data" / "routing" / "hotspots.jsonl"


@pytest.fixture(scope="module")
async def routing(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Routing]:
    async with routing_service(servers, tmp_path_factory.mktemp("routing")) as service:
        yield service


def pairwise(truth: dict[str, str | None], found: dict[str, str]) -> tuple[float, float]:
    """Precision and recall over pairs of reports: put together rightly, and rightly together of all that belong."""
    ids = sorted(truth)
    together_found = together_true = both = 0
    for a, b in combinations(ids, 2):
        same_true = truth[a] is not None and truth[a] == truth[b]
        same_found = found[a] == found[b]
        together_true += same_true
        together_found += same_found
        both += same_true and same_found
    return (both / together_found if together_found else 1.0), (both / together_true if together_true else 1.0)


async def test_clustering_precision_and_recall_on_the_labelled_set(routing: Routing) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 100
    # Counties of their own, so reports of other tests in the same database cannot join.
    fresh = {county: f"3498{random.randrange(10, 99)}" for county in sorted({r["region_code"][:6] for r in rows})}
    while len(set(fresh.values())) < len(fresh):
        fresh = {county: f"3498{random.randrange(10, 99)}" for county in fresh}
    start = datetime(2026, 9, 1, 9, tzinfo=UTC)
    ids: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r["day"], r["id"])):
        ids[row["id"]] = report_id = new_id()
        region = fresh[row["region_code"][:6]] + row["region_code"][6:]
        async with routing.runtime.transaction() as session:
            await hotspots.place(routing.runtime, session, report_id=report_id, region_code=region,
                                 category=row["category"], content=row["content"],
                                 received_at=start + timedelta(days=row["day"], minutes=len(ids)),
                                 now=datetime.now(UTC))
    async with routing.runtime.sessions()() as session:
        members = dict((await session.execute(
            select(HotspotReport.report_id, HotspotReport.hotspot_id)
            .where(HotspotReport.report_id.in_(list(ids.values()))))).all())
    found = {row_id: members.get(report_id, f"alone-{row_id}") for row_id, report_id in ids.items()}
    truth: dict[str, str | None] = {r["id"]: r["cluster"] for r in rows}
    precision, recall = pairwise(truth, found)
    print(f"\nhotspot clustering on {len(rows)} labelled reports ({len(set(v for v in truth.values() if v))}"
          f" true clusters, {len(set(found.values()))} found): pairwise precision {precision:.1%}, "
          f"recall {recall:.1%}")
    # Floors just under what was measured; the figures are printed above.
    assert precision >= 0.68 and recall >= 0.60


async def test_five_similar_reports_make_one_hotspot(servers: Servers, routing: Routing) -> None:
    texts = ["建设路菜市场门口的垃圾桶天天满出来，臭得不行", "建设路菜市场垃圾桶满了没人清运，气味太难闻",
             "菜市场（建设路）门口垃圾堆成山了，苍蝇到处飞", "建设路菜市场门口垃圾桶又满了，环卫什么时候来清运",
             "反映建设路菜市场门口垃圾清运不及时，垃圾桶满溢"]
    unrelated = await submit(servers.nats_url, "340720002", "建设路中学门口的红绿灯坏了，上学的孩子过马路很危险")
    reports = [await submit(servers.nats_url, "340720001", text) for text in texts[:4]]

    async def detected() -> list[dict[str, Any]]:
        return [d for s, d in await routing_events(servers.nats_url) if s == "routing.hotspot.detected"
                and set(d["report_ids"]) & set(reports)]

    async def classified(report_id: str) -> bool:
        return any(s == "routing.report.classified" for s, _ in await routing_events(servers.nats_url, report_id))

    for report_id in reports:
        await eventually(lambda r=report_id: classified(r), timeout=20, what="each report routed")
    assert not await detected(), "four reports are not yet a hotspot"
    reports.append(await submit(servers.nats_url, "340720003", texts[4]))
    await eventually(lambda: _truthy(detected()), timeout=20, what="routing.hotspot.detected")
    event = (await detected())[0]
    assert sorted(event["report_ids"]) == sorted(reports) and event["count"] == 5
    assert event["category"] == "sanitation_environment" and event["region_code"] == "340720"
    assert "垃圾桶" in event["keywords"] or "菜市场" in event["keywords"]

    sixth = await submit(servers.nats_url, "340720001", "建设路菜市场门口垃圾桶满了，臭味熏人")
    await eventually(lambda: classified(sixth), timeout=20, what="the sixth report routed")
    resp = await routing.client.get("/v1/hotspots?region_code=340720", headers=bearer("npc_staff", "3407"))
    assert resp.status_code == 200, resp.text
    listed = [h for h in resp.json() if h["id"] == event["id"]]
    assert listed and listed[0]["count"] == 6 and sixth in listed[0]["report_ids"]
    assert unrelated not in listed[0]["report_ids"]
    assert len(await detected()) == 1, "a hotspot is announced once"
    # A deputy elsewhere does not see it; a wrong region filter is refused.
    elsewhere = await routing.client.get("/v1/hotspots", headers=bearer("deputy", "3201", deputy_id="d-1"))
    assert event["id"] not in [h["id"] for h in elsewhere.json()]
    refused = await routing.client.get("/v1/hotspots?region_code=340720", headers=bearer("deputy", "3201"))
    assert refused.status_code == 403


async def _truthy(awaitable: Any) -> bool:
    return bool(await awaitable)
