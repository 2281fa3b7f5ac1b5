"""A hotspot's life on the real servers: announced to its reports' citizens as it is found and
joined, converted and carried through its suggestion, closed by its topic; corrected by staff
(split, merge, closure); supported by citizens; looked up by anyone before they report.

Routing runs on a NATS of this module's own: the suggestions' and intake's events published here
stand in for those services and must not reach other modules' consumers of the session's streams.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from busutil import consumer_state, event_body, eventually, publish
from conftest import Servers
from routingutil import STAFF, Routing, bearer, declare_intake_stream, routing_events, routing_service, submit
from sqlalchemy import func, select

from minyi.servers import Nats, free_port
from services.routing import hotspots, warm_up
from services.routing.classify import classify
from services.routing.models import Hotspot, HotspotReport
from services.routing.taxonomy import BY_CODE
from shared.contracts import STREAMS
from shared.errors import PROBLEM_JSON
from shared.ids import new_id

GARBAGE = ["建设路菜市场门口的垃圾桶天天满出来，臭得不行", "建设路菜市场垃圾桶满了没人清运，气味太难闻",
           "菜市场（建设路）门口垃圾堆成山了，苍蝇到处飞", "建设路菜市场门口垃圾桶又满了，环卫什么时候来清运",
           "反映建设路菜市场门口垃圾清运不及时，垃圾桶满溢", "建设路菜市场门口垃圾桶满了，臭味熏人"]
TITLE = "关于整治建设路菜市场垃圾清运的建议"
# Counties of this module's own run, so that no other test's reports join its clusters.
_BASE = random.randrange(60, 90)
_COUNTIES = iter(f"34{_BASE}{n:02d}" for n in range(1, 100))
DEPUTY = bearer("deputy", "34", deputy_id="d-life")
ELSEWHERE = bearer("npc_staff", "32")


@pytest.fixture(scope="module")
def own_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("life-nats")
    server = Nats(root / "js", free_port(), free_port(), root / "nats.log", root / "nats.conf")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def routing(servers: Servers, own_bus: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Routing]:
    await declare_intake_stream(own_bus)
    async with routing_service(servers, tmp_path_factory.mktemp("routing-life"), nats_url=own_bus,
                               hotspot_threshold=3, lookup_limit="1000/minute") as service:
        yield service


def region() -> str:
    return f"{next(_COUNTIES)}001"


async def place_all(routing: Routing, region_code: str, texts: list[str]) -> list[str]:
    """Place reports as routing's consumer does, a minute apart, ending a little before now."""
    first = datetime.now(UTC) - timedelta(hours=1)
    ids = []
    for i, text in enumerate(texts):
        report_id = new_id()
        async with routing.runtime.transaction() as session:
            await hotspots.place(routing.runtime, session, report_id=report_id, region_code=region_code,
                                 category=classify(text, None).category, content=text,
                                 received_at=first + timedelta(minutes=i), now=datetime.now(UTC))
        ids.append(report_id)
    return ids


async def hotspot_of(routing: Routing, report_ids: list[str]) -> str:
    async with routing.runtime.sessions()() as session:
        found = dict((await session.execute(select(HotspotReport.report_id, HotspotReport.hotspot_id)
                                            .where(HotspotReport.report_id.in_(report_ids)))).all())
    assert set(found) == set(report_ids) and len(set(found.values())) == 1, \
        f"the reports are expected in one cluster: {found}"
    return next(iter(found.values()))


async def hotspot(routing: Routing, texts: list[str]) -> tuple[str, list[str]]:
    ids = await place_all(routing, region(), texts)
    return await hotspot_of(routing, ids), ids


async def progressed(routing: Routing, hotspot_id: str, step: str | None = None) -> list[dict[str, Any]]:
    return [d for s, d in await routing_events(_bus(routing))
            if s == "routing.hotspot.progressed" and d["hotspot_id"] == hotspot_id and step in (None, d["step"])]


def _bus(routing: Routing) -> str:
    return str(routing.runtime.settings.nats_url)


async def until_told(routing: Routing, hotspot_id: str, step: str, count: int = 1) -> list[dict[str, Any]]:
    async def told() -> bool:
        return len(await progressed(routing, hotspot_id, step)) >= count

    await eventually(told, timeout=20, what=f"routing.hotspot.progressed {step} of {hotspot_id}")
    return await progressed(routing, hotspot_id, step)


async def drained(routing: Routing, stream: str, durable: str) -> None:
    """Every message published so far on the consumer's stream is handled."""
    async def done() -> bool:
        info = await consumer_state(_bus(routing), stream, durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(done, timeout=20, what=f"{durable} caught up")


async def detail(routing: Routing, hotspot_id: str, headers: dict[str, str] = STAFF) -> dict[str, Any]:
    resp = await routing.client.get(f"/v1/hotspots/{hotspot_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def send(routing: Routing, event_type: str, data: dict[str, Any], event_id: str | None = None, *,
               again: bool = False) -> str:
    """Publish an event; `again` publishes it without a message id, as a redelivery reaches the consumer."""
    event_id = event_id or new_id()
    await publish(_bus(routing), event_type, event_body(event_id, event_type, data), None if again else event_id)
    return event_id


def suggestion(kind: str, seq: int, hotspot_id: str, suggestion_id: str, *, outcome: str | None = None,
               note: str | None = None) -> dict[str, Any]:
    """A `suggestions.suggestion.<kind>` as suggestions publishes it: the state after the step, and the step."""
    at = datetime.now(UTC).isoformat()
    return {"id": suggestion_id, "title": TITLE, "content": "群众多次反映菜市场门口垃圾清运不及时。",
            "topic_id": hotspot_id, "region_code": "34", "status": kind, "outcome": outcome, "seq": seq,
            "key": True, "submitted_at": at,
            "outcome_classes": [{"code": "A", "label": "已解决或当年解决", "solved": True},
                                {"code": "B", "label": "列入计划，三年内解决", "solved": False},
                                {"code": "C", "label": "留作参考", "solved": False}],
            "step": {"seq": seq, "kind": kind, "actor": "staff-life", "note": note, "at": at, "data": {}}}


async def suggest(routing: Routing, kind: str, seq: int, hotspot_id: str, suggestion_id: str, **kwargs: Any) -> str:
    return await send(routing, f"suggestions.suggestion.{kind}",
                      suggestion(kind, seq, hotspot_id, suggestion_id, **kwargs))


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body = dict(resp.json())
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["detail"]), body
    return body


# ---- found and joined ---------------------------------------------------------------------------


async def test_a_hotspot_found_and_joined_is_news_for_its_reports(routing: Routing) -> None:
    where = region()
    ids = [await submit(_bus(routing), where, text) for text in GARBAGE[:3]]

    async def detected() -> list[dict[str, Any]]:
        return [d for s, d in await routing_events(_bus(routing))
                if s == "routing.hotspot.detected" and set(d["report_ids"]) == set(ids)]

    await eventually(lambda: _truthy(detected()), timeout=30, what="routing.hotspot.detected of the three reports")
    hotspot_id = (await detected())[0]["id"]
    joined = await until_told(routing, hotspot_id, "joined")
    assert len(joined) == 1 and sorted(joined[0]["report_ids"]) == sorted(ids)
    first = joined[0]
    assert first["count"] == 3 and first["category"] == "sanitation_environment"
    assert first["topic_title"] is None and first["suggestion_id"] is None and first["outcome"] is None
    assert "菜市场" in " ".join(first["places"] + first["keywords"])

    fourth = await submit(_bus(routing), where, GARBAGE[3])
    joined = await until_told(routing, hotspot_id, "joined", 2)
    assert joined[1]["report_ids"] == [fourth] and joined[1]["count"] == 4

    resp = await routing.client.get("/v1/hotspots", params={"region_code": where[:6]}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    (listed,) = [h for h in resp.json() if h["id"] == hotspot_id]
    assert listed["state"] == "open" and listed["supporters"] == 0 and listed["detected_at"]
    assert sum(listed["category_counts"].values()) == 4 and listed["count"] == 4
    assert sorted(listed["report_ids"]) == sorted([*ids, fourth]) and isinstance(listed["places"], list)


# ---- the topic's suggestion ---------------------------------------------------------------------


async def test_a_converted_topic_carries_its_reports_through_the_suggestion(routing: Routing) -> None:
    hotspot_id, ids = await hotspot(routing, GARBAGE[:3])
    await until_told(routing, hotspot_id, "joined")
    sid = new_id()
    await suggest(routing, "submitted", 1, hotspot_id, sid)
    (converted,) = await until_told(routing, hotspot_id, "converted")
    assert sorted(converted["report_ids"]) == sorted(ids)
    assert converted["topic_title"] == converted["suggestion_title"] == TITLE and converted["suggestion_id"] == sid
    seen = await detail(routing, hotspot_id)
    assert seen["state"] == "converted" and seen["suggestion_id"] == sid and seen["topic_title"] == TITLE
    assert [(c["kind"], c["actor"]) for c in seen["corrections"]] == [("convert", "staff-life")]

    # A report joining now joins the suggestion's matter, and is told so.
    (late,) = await place_all(routing, seen["members"][0]["region_code"], [GARBAGE[4]])
    joined = await until_told(routing, hotspot_id, "joined", 2)
    assert joined[1]["report_ids"] == [late] and joined[1]["suggestion_id"] == sid
    assert joined[1]["topic_title"] == TITLE

    assigned = await suggest(routing, "assigned", 2, hotspot_id, sid)
    await send(routing, "suggestions.suggestion.assigned", suggestion("assigned", 2, hotspot_id, sid), assigned,
               again=True)
    await suggest(routing, "submitted", 1, hotspot_id, sid)  # an older step under another id
    await suggest(routing, "replied", 3, hotspot_id, sid, outcome="A")
    (replied,) = await until_told(routing, hotspot_id, "replied")
    assert replied["outcome"] == "A" and sorted(replied["report_ids"]) == sorted([*ids, late])
    assert len(await progressed(routing, hotspot_id, "assigned")) == 1
    assert len(await progressed(routing, hotspot_id, "converted")) == 1

    await suggest(routing, "evaluated", 4, hotspot_id, sid, outcome="A")
    await suggest(routing, "closed", 5, hotspot_id, sid, outcome="A")
    (solved,) = await until_told(routing, hotspot_id, "solved")
    assert solved["suggestion_title"] == TITLE and len(solved["report_ids"]) == 4
    await suggest(routing, "replied", 3, hotspot_id, sid, outcome="B")  # older than the closing
    await suggest(routing, "submitted", 1, hotspot_id, new_id())  # a second suggestion of the topic
    await drained(routing, STREAMS["suggestions"].name, "routing-suggestions")
    seen = await detail(routing, hotspot_id)
    assert seen["state"] == "closed" and seen["suggestion_id"] == sid
    assert len(await progressed(routing, hotspot_id, "replied")) == 1
    assert [e["step"] for e in await progressed(routing, hotspot_id)] == \
        ["joined", "converted", "joined", "assigned", "replied", "solved"]


async def test_a_topic_closed_without_a_suggestion_closes_its_hotspot(routing: Routing) -> None:
    hotspot_id, ids = await hotspot(routing, GARBAGE[:3])
    body = {"id": hotspot_id, "note": "属于物业管理范围，已转街道办理", "region_code": "34",
            "at": datetime.now(UTC).isoformat()}
    first = await send(routing, "suggestions.topic.closed", body)
    (closed,) = await until_told(routing, hotspot_id, "closed")
    assert closed["note"] == body["note"] and sorted(closed["report_ids"]) == sorted(ids)
    await send(routing, "suggestions.topic.closed", body, first, again=True)
    await send(routing, "suggestions.topic.closed", body)
    await send(routing, "suggestions.topic.closed", {**body, "id": new_id()})  # no hotspot of routing's
    await drained(routing, STREAMS["suggestions"].name, "routing-topics-closed")
    assert len(await progressed(routing, hotspot_id, "closed")) == 1
    seen = await detail(routing, hotspot_id)
    assert seen["state"] == "closed" and seen["close_note"] == body["note"]
    # Closed, it gathers no more reports.
    (again,) = await place_all(routing, seen["members"][0]["region_code"], [GARBAGE[3]])
    assert again not in (await detail(routing, hotspot_id))["report_ids"]


# ---- staff corrections --------------------------------------------------------------------------


async def test_staff_split_merge_and_close_a_hotspot(routing: Routing) -> None:
    hotspot_id, ids = await hotspot(routing, GARBAGE)
    # Found at the third report, joined by three more one by one.
    told = await until_told(routing, hotspot_id, "joined", 4)
    assert [len(t["report_ids"]) for t in told] == [3, 1, 1, 1]
    url = f"/v1/hotspots/{hotspot_id}"
    split = {"report_ids": ids[3:], "note": "这三件说的是菜市场后门"}
    assert_problem(await routing.client.post(f"{url}/split", json=split, headers=DEPUTY), 403)
    assert_problem(await routing.client.post(f"{url}/split", json=split, headers=ELSEWHERE), 404)
    assert_problem(await routing.client.get(url, headers=bearer("deputy", "32", deputy_id="d-far")), 404)
    unknown = assert_problem(await routing.client.post(f"{url}/split", json={"report_ids": [ids[0], new_id()]},
                                                       headers=STAFF), 422)
    assert unknown["errors"][0]["field"] == "report_ids[1]"
    assert_problem(await routing.client.post(f"{url}/split", json={"report_ids": ids}, headers=STAFF), 422)
    assert_problem(await routing.client.post(f"{url}/split", json={"report_ids": []}, headers=STAFF), 422)

    resp = await routing.client.post(f"{url}/split", json=split, headers=STAFF)
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert new["id"] != hotspot_id and new["count"] == 3 and sorted(new["report_ids"]) == sorted(ids[3:])
    assert {m["placed_by"] for m in new["members"]} == {"staff"} and new["detected_at"]
    assert [(c["kind"], c["other_hotspot_id"], c["note"]) for c in new["corrections"]] == \
        [("split", hotspot_id, split["note"])]
    left = await detail(routing, hotspot_id, DEPUTY)
    assert left["count"] == 3 and sorted(left["report_ids"]) == sorted(ids[:3])
    assert sum(left["category_counts"].values()) == 3 and left["keywords"]
    assert [(c["kind"], c["other_hotspot_id"]) for c in left["corrections"]] == [("split", new["id"])]
    # Three reports are a hotspot here: announced, and its reports told.
    (joined,) = await until_told(routing, new["id"], "joined")
    assert sorted(joined["report_ids"]) == sorted(ids[3:])
    announced = [d for s, d in await routing_events(_bus(routing))
                 if s == "routing.hotspot.detected" and d["id"] == new["id"]]
    assert len(announced) == 1 and sorted(announced[0]["report_ids"]) == sorted(ids[3:])

    resp = await routing.client.post(f"{url}/merge", json={"hotspot_id": new["id"]}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    merged = resp.json()
    assert merged["count"] == 6 and sorted(merged["report_ids"]) == sorted(ids)
    assert [c["kind"] for c in merged["corrections"]] == ["split", "merge"]
    joined = await until_told(routing, hotspot_id, "joined", 5)
    assert sorted(joined[-1]["report_ids"]) == sorted(ids[3:]) and joined[-1]["count"] == 6
    gone = await detail(routing, new["id"])
    assert gone["state"] == "merged" and gone["merged_into"] == hotspot_id and gone["members"] == []
    listed = (await routing.client.get("/v1/hotspots", params={"region_code": left["region_code"]},
                                       headers=STAFF)).json()
    assert hotspot_id in [h["id"] for h in listed] and new["id"] not in [h["id"] for h in listed]
    only_merged = (await routing.client.get("/v1/hotspots", params={"region_code": left["region_code"],
                                                                    "state": "merged"}, headers=STAFF)).json()
    assert [h["id"] for h in only_merged] == [new["id"]]

    assert_problem(await routing.client.post(f"{url}/merge", json={"hotspot_id": hotspot_id}, headers=STAFF), 409)
    assert_problem(await routing.client.post(f"{url}/merge", json={"hotspot_id": new["id"]}, headers=STAFF), 409)
    assert_problem(await routing.client.post(f"/v1/hotspots/{new['id']}/split", json={"report_ids": [ids[0]]},
                                             headers=STAFF), 409)

    assert_problem(await routing.client.post(f"{url}/closure", json={"note": "错"}, headers=DEPUTY), 403)
    assert_problem(await routing.client.post(f"{url}/closure", json={"note": "错"}, headers=STAFF), 422)
    note = "同一问题已由街道统一处理，不再列为监督议题"
    resp = await routing.client.post(f"{url}/closure", json={"note": note}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "closed" and resp.json()["close_note"] == note
    (closed,) = await until_told(routing, hotspot_id, "closed")
    assert closed["note"] == note and sorted(closed["report_ids"]) == sorted(ids)
    assert_problem(await routing.client.post(f"{url}/closure", json={"note": note}, headers=STAFF), 409)

    audit = (await routing.client.get("/v1/audit", params={"subject_id": hotspot_id}, headers=STAFF)).json()
    assert [e["action"] for e in audit["items"]] == ["hotspot.closed", "hotspot.merged", "hotspot.split"]


# ---- supporters ---------------------------------------------------------------------------------


async def test_supporters_count_each_support_once_and_follow_their_report(routing: Routing) -> None:
    hotspot_id, ids = await hotspot(routing, GARBAGE[:3])

    def support(report_id: str, support_id: str) -> dict[str, Any]:
        return {"report_id": report_id, "support_id": support_id, "anonymous": True, "supporters": 1,
                "region_code": "34", "at": datetime.now(UTC).isoformat()}

    first = await send(routing, "intake.report.supported", support(ids[1], "sup-a"))
    await send(routing, "intake.report.supported", support(ids[1], "sup-a"), first, again=True)
    await send(routing, "intake.report.supported", support(ids[1], "sup-a"))  # another id, the same support
    await send(routing, "intake.report.supported", support(ids[2], "sup-b"))
    await send(routing, "intake.report.supported", support(ids[1], "sup-c"))
    await drained(routing, STREAMS["intake"].name, "routing-supported")
    assert (await detail(routing, hotspot_id))["supporters"] == 3

    resp = await routing.client.post(f"/v1/hotspots/{hotspot_id}/split", json={"report_ids": [ids[1]]},
                                     headers=STAFF)
    assert resp.status_code == 201, resp.text
    assert resp.json()["supporters"] == 2 and resp.json()["detected_at"] is None
    assert (await detail(routing, hotspot_id))["supporters"] == 1


# ---- anyone: reported already? ------------------------------------------------------------------


async def test_anyone_finds_a_similar_hotspot_without_seeing_any_report(routing: Routing) -> None:
    hotspot_id, ids = await hotspot(routing, GARBAGE[:4])
    where = (await detail(routing, hotspot_id))["members"][0]["region_code"]
    resp = await routing.client.post("/v1/public/hotspots/similar", json={"region_code": where,
                                                                          "content": GARBAGE[5]})
    assert resp.status_code == 200, resp.text
    matches = resp.json()["matches"]
    assert matches and matches[0]["hotspot_id"] == hotspot_id
    match = matches[0]
    assert set(match) == {"hotspot_id", "report_id", "category", "category_label", "region_code", "places",
                          "keywords", "count", "supporters", "state", "first_at", "last_at", "score"}
    assert match["report_id"] == ids[0] and match["count"] == 4 and match["state"] == "open"
    assert match["category_label"] == BY_CODE[match["category"]].label
    assert 0 < match["score"] <= 1 and round(match["score"], 3) == match["score"]
    for text in GARBAGE[:4]:
        assert text not in resp.text
    assert not set(ids[1:]) & set(resp.text.split('"'))

    with_point = await routing.client.post("/v1/public/hotspots/similar", headers=STAFF, json={
        "region_code": where, "content": GARBAGE[5], "lat": 33.95, "lon": 116.79})
    assert with_point.status_code == 200, with_point.text
    elsewhere = await routing.client.post("/v1/public/hotspots/similar", json={
        "region_code": where, "content": "学区划片为什么我们小区划到那么远的学校"})
    assert hotspot_id not in [m["hotspot_id"] for m in elsewhere.json()["matches"]]
    for bad in ({"region_code": "12ab", "content": GARBAGE[5]}, {"region_code": "34", "content": GARBAGE[5]},
                {"region_code": where, "content": ""}, {"region_code": where, "content": "x" * 5001},
                {"region_code": where, "content": GARBAGE[5], "lat": 33.9},
                {"region_code": where, "content": GARBAGE[5], "lat": 91, "lon": 116},
                {"region_code": where, "content": GARBAGE[5], "reporter": "王"}):
        assert_problem(await routing.client.post("/v1/public/hotspots/similar", json=bad), 422)

    resp = await routing.client.get(f"/v1/public/hotspots/{hotspot_id}")
    assert resp.status_code == 200, resp.text
    public = resp.json()
    assert public["id"] == hotspot_id and public["report_id"] == ids[0] and public["merged_into"] is None
    assert public["count"] == 4 and public["topic_title"] is None and "report_ids" not in public
    assert public["category_label"] == BY_CODE[public["category"]].label
    assert "菜市场" in " ".join(public["places"] + public["keywords"])
    assert_problem(await routing.client.get(f"/v1/public/hotspots/{new_id()}"), 404)

    other, _ = await hotspot(routing, GARBAGE[2:5])
    merged = await routing.client.post(f"/v1/hotspots/{other}/merge", json={"hotspot_id": hotspot_id},
                                       headers=STAFF)
    assert merged.status_code == 422, "clusters of two counties are not merged"
    moved = await routing.client.post(f"/v1/hotspots/{hotspot_id}/merge", json={"hotspot_id": hotspot_id},
                                      headers=STAFF)
    assert moved.status_code == 409


async def test_a_merged_hotspot_points_where_its_reports_went(routing: Routing) -> None:
    where = region()
    ids = await place_all(routing, where, GARBAGE[:3])
    kept = await hotspot_of(routing, ids)
    resp = await routing.client.post(f"/v1/hotspots/{kept}/split", json={"report_ids": ids[1:]}, headers=STAFF)
    assert resp.status_code == 201, resp.text
    split_off = resp.json()["id"]
    resp = await routing.client.post(f"/v1/hotspots/{split_off}/merge", json={"hotspot_id": kept}, headers=STAFF)
    assert resp.status_code == 200, resp.text
    public = (await routing.client.get(f"/v1/public/hotspots/{kept}")).json()
    assert public["state"] == "merged" and public["merged_into"] == split_off and public["report_id"] is None


# ---- ground truth -------------------------------------------------------------------------------


async def test_the_checked_hotspots_export_as_a_labelled_set(routing: Routing, server_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    kept, ids = await hotspot(routing, GARBAGE[:4])
    resp = await routing.client.post(f"/v1/hotspots/{kept}/split", json={"report_ids": ids[2:]}, headers=STAFF)
    assert resp.status_code == 201, resp.text
    split_off = resp.json()["id"]
    wrong, wrong_ids = await hotspot(routing, GARBAGE[:3])
    resp = await routing.client.post(f"/v1/hotspots/{wrong}/split", json={"report_ids": wrong_ids[:1]},
                                     headers=STAFF)
    assert resp.status_code == 201, resp.text
    wrong_split = resp.json()["id"]
    resp = await routing.client.post(f"/v1/hotspots/{wrong}/closure", json={"note": "误聚类"}, headers=STAFF)
    assert resp.status_code == 200, resp.text

    out = tmp_path / "corrections.jsonl"
    today = datetime.now(UTC).date().isoformat()
    result = subprocess.run([sys.executable, "-m", "minyi.cli", "hotspots", "corrections", "--since", today,
                             "--out", str(out)], env=server_env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert {by_id[i]["cluster"] for i in ids[:2]} == {kept} and {by_id[i]["cluster"] for i in ids[2:]} == {split_off}
    assert by_id[wrong_ids[0]]["cluster"] == wrong_split
    assert not set(wrong_ids[1:]) & set(by_id), "a cluster staff closed as wrong is left out"
    assert all(r["content"] is None and r["place"] is None for r in rows)
    assert [r["day"] for r in rows] == sorted(r["day"] for r in rows)
    assert "reports in" in result.stderr
    again = subprocess.run([sys.executable, "-m", "minyi.cli", "hotspots", "corrections", "--out", str(out)],
                           env=server_env, capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "exists" in again.stderr


async def _truthy(awaitable: Any) -> bool:
    return bool(await awaitable)


async def test_the_warm_up_takes_a_lookup_s_steps_and_writes_nothing(routing: Routing) -> None:
    async def counts() -> tuple[int, int]:
        async with routing.runtime.sessions()() as session:
            return (await session.scalar(select(func.count()).select_from(Hotspot)) or 0,
                    await session.scalar(select(func.count()).select_from(HotspotReport)) or 0)

    before = await counts()
    await warm_up.warm_up(routing.runtime)
    assert await counts() == before
    # Its lookup is the public one's: the county it asks has nothing, whatever the text.
    async with routing.runtime.sessions()() as session:
        assert await hotspots.similar(routing.runtime, session, region_code=warm_up.REGION, content=warm_up.TEXT,
                                      location=None, now=datetime.now(UTC)) == []
