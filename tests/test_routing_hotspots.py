"""Hotspots (共性事项): the clustering measured on the labelled set of tests/data/routing, through
the service's own placement code on the real database, and a hotspot forming from events."""

from __future__ import annotations

import functools
import json
import random
import sys
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

from minyi import hotspot_export
from services.routing import clustering, hotspots
from services.routing.classify import classify, fingerprint
from services.routing.models import Hotspot, HotspotReport
from shared.ids import new_id

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import hotspot_eval  # the evaluation's replay, so the test and bench/ measure alike

DATA = Path(__file__).parent / "data" / "routing" / "hotspots_v2"
# What the issue asks of hotspots and categories on the held-out set.
TARGET_PRECISION, TARGET_RECALL, TARGET_ACCURACY = 0.90, 0.85, 0.92


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


def load(name: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["day"], r["id"]))


def categories(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Row id → category as routing classifies a report: its text and its meaning vector."""
    hotspot_eval.encode_all(rows)
    return {r["id"]: classify(r["content"], None, hotspot_eval.meaning_of(r)).category for r in rows}


def baseline(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Same township and same classified category within 30 days, whatever the text says."""
    found: dict[str, str] = {}
    current: dict[tuple[str, str], tuple[str, int]] = {}
    category = categories(rows)
    for row in rows:
        key = (row["region_code"], category[row["id"]])
        group = current.get(key)
        cid = group[0] if group is not None and row["day"] - group[1] <= 30 else row["id"]
        current[key] = (cid, row["day"])
        found[row["id"]] = cid
    return found


async def place_all(routing: Routing, rows: list[dict[str, Any]],
                    given: dict[str, str] | None = None) -> dict[str, str]:
    """Each row through the service's own placement on the real database, as the handler calls it, in
    counties of their own so reports of other tests cannot join; classified as routing does unless
    `given` names the categories. Returns row id → cluster id."""
    fresh = {county: f"3498{random.randrange(10, 99)}" for county in sorted({r["region_code"][:6] for r in rows})}
    while len(set(fresh.values())) < len(fresh):
        fresh = {county: f"3498{random.randrange(10, 99)}" for county in fresh}
    start = datetime(2026, 9, 1, 9, tzinfo=UTC)
    ids: dict[str, str] = {}
    category = given or categories(rows)
    for row in rows:
        ids[row["id"]] = report_id = new_id()
        region = fresh[row["region_code"][:6]] + row["region_code"][6:]
        location = {"lat": row["lat"], "lon": row["lon"]} if row["lat"] is not None else None
        async with routing.runtime.transaction() as session:
            await hotspots.place(routing.runtime, session, report_id=report_id, region_code=region,
                                 category=category[row["id"]], content=row["content"],
                                 received_at=start + timedelta(days=row["day"], minutes=len(ids)),
                                 now=datetime.now(UTC), location=location, meaning=hotspot_eval.meaning_of(row))
    async with routing.runtime.sessions()() as session:
        members = dict((await session.execute(
            select(HotspotReport.report_id, HotspotReport.hotspot_id)
            .where(HotspotReport.report_id.in_(list(ids.values()))))).all())
    return {row_id: members.get(report_id, f"alone-{row_id}") for row_id, report_id in ids.items()}


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


async def test_clustering_on_the_held_out_set_through_the_database(routing: Routing) -> None:
    rows = load("heldout.jsonl")
    assert len(rows) >= 300
    found = await place_all(routing, rows)
    truth: dict[str, str | None] = {r["id"]: r["cluster"] for r in rows}
    precision, recall = pairwise(truth, found)
    base_p, base_r = pairwise(truth, baseline(rows))
    category = categories(rows)
    right = sum(category[r["id"]] == r["category"] for r in rows)
    print(f"\nheld-out set, {len(rows)} reports in {len({v for v in truth.values() if v})} true clusters: hotspot "
          f"pairwise precision {precision:.1%} (target {TARGET_PRECISION:.0%}), recall {recall:.1%} (target "
          f"{TARGET_RECALL:.0%}); baseline same township+category P {base_p:.1%} R {base_r:.1%}; "
          f"category accuracy {right / len(rows):.1%} (target {TARGET_ACCURACY:.0%})")
    # Text and place must do clearly better than grouping by township and category alone.
    assert f1(precision, recall) >= 1.5 * f1(base_p, base_r)


@functools.cache
def held_out_figures() -> tuple[float, float, float]:
    """Pairwise precision, recall and category accuracy on the held-out file, printed when read."""
    rows = load("heldout.jsonl")
    truth: dict[str, str | None] = {r["id"]: r["cluster"] for r in rows}
    category = categories(rows)
    found = hotspot_eval.replay_service(rows, lambda r: category[str(r["id"])]).of
    precision, recall = pairwise(truth, found)
    accuracy = sum(category[r["id"]] == r["category"] for r in rows) / len(rows)
    print(f"\nheld-out: precision {precision:.1%}, recall {recall:.1%}, category accuracy {accuracy:.1%}")
    return precision, recall, accuracy


def test_the_held_out_recall_target_is_met() -> None:
    _, recall, _ = held_out_figures()
    assert recall >= TARGET_RECALL


@pytest.mark.xfail(strict=True, reason="not met yet: held-out P 0.82, category accuracy 0.91 "
                                       "(bench/hotspot_eval.py); strict, so meeting them fails this marker")
def test_the_held_out_precision_and_category_targets_are_met() -> None:
    precision, _, accuracy = held_out_figures()
    assert precision >= TARGET_PRECISION and accuracy >= TARGET_ACCURACY


async def test_six_paraphrases_at_one_crossroads_form_one_hotspot_whatever_their_categories(
        routing: Routing) -> None:
    six = [r for r in load("dev.jsonl") if r["cluster"] == "c001-huaihai-changshan-sewer"]
    assert len(six) == 6
    # Categories a classifier gave these six before (污水冒出来 as sanitation, 路面积水 as roads): placed
    # under three categories, they must still form one matter.
    given = dict(zip([r["id"] for r in six], ["municipal_facilities", "sanitation_environment", "municipal_facilities",
                                              "roads_traffic", "municipal_facilities", "sanitation_environment"],
                     strict=True))
    found = await place_all(routing, six, given)
    assert len(set(found.values())) == 1, found
    async with routing.runtime.sessions()() as session:
        hotspot = await session.get(Hotspot, next(iter(found.values())))
    assert hotspot is not None and hotspot.count == 6 and hotspot.detected_at is not None
    assert hotspot.category == "municipal_facilities", hotspot.category_counts  # the members' majority
    assert sum(hotspot.category_counts.values()) == 6


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


def test_staff_corrections_exported_replay_through_the_evaluation() -> None:
    """`minyi hotspots corrections` lines carry no text but the signature routing kept; the
    evaluation replays the clustering on them (`bench/hotspot_eval.py --corrections`)."""
    six = [r for r in load("dev.jsonl") if r["cluster"] == "c001-huaihai-changshan-sewer"]
    start = datetime(2026, 10, 1, 1, tzinfo=UTC)
    members = [hotspot_export.Member(
        f"r{n}", "staff-hotspot", r["region_code"], r["category"], start + timedelta(days=r["day"], minutes=n),
        clustering.signature(r["content"], fingerprint(r["content"]), r["region_code"], r["category"],
                             (r["lat"], r["lon"]) if r["lat"] is not None else None).to_json())
        for n, r in enumerate(six)]
    lines = [json.loads(json.dumps(row, ensure_ascii=False)) for row in hotspot_export.rows(members)]
    assert all(line["content"] is None and line["signature"]["kinds"] for line in lines)
    found = hotspot_eval.replay_service(lines, lambda r: str(r["category"]))
    assert len(set(found.of.values())) == 1, found.of
    assert hotspot_eval.describe(lines, found)["recall"] == 1.0
