"""Supervision topics and routing's hotspots telling each other, on the real servers: closing a topic
announces `suggestions.topic.closed` (routing closes the hotspot and tells its citizens why), and
reports that join the hotspot later join its topic, once each."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from busutil import event_body, eventually, publish, stream_messages
from conftest import Servers
from suggestionsutil import STAFF, Suggestions, suggestions_service

from services.suggestions.models import SupervisionTopic
from shared.bus.streams import dead_letter_stream
from shared.contracts import STREAMS
from shared.ids import new_id

COUNTY = "340822"


@pytest.fixture(scope="module")
async def svc(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suggestions]:
    async with suggestions_service(servers, tmp_path_factory.mktemp("suggestions-topic-events")) as service:
        yield service


async def detected(svc: Suggestions, report_ids: list[str]) -> str:
    hotspot_id = new_id()
    data = {"id": hotspot_id, "region_code": COUNTY, "category": "public_facilities", "count": len(report_ids),
            "keywords": ["路灯", "不亮"], "report_ids": report_ids, "first_at": "2026-10-01T08:00:00+08:00",
            "last_at": "2026-10-20T08:00:00+08:00", "window_days": 30}
    await publish(svc.nats_url, "routing.hotspot.detected", event_body(new_id(), "routing.hotspot.detected", data))

    async def listed() -> bool:
        return await topic(svc, hotspot_id) is not None

    await eventually(listed, timeout=20, what="the hotspot listed as a supervision topic")
    return hotspot_id


async def topic(svc: Suggestions, topic_id: str) -> SupervisionTopic | None:
    async with svc.runtime.sessions()() as session:
        return await session.get(SupervisionTopic, topic_id)


async def test_closing_a_topic_announces_it_with_the_note(svc: Suggestions) -> None:
    topic_id = await detected(svc, [new_id() for _ in range(5)])
    note = "已由城管部门列入本月维修计划，不再列为监督议题。"
    resp = await svc.client.post(f"/v1/supervision-topics/{topic_id}/closure", json={"note": note}, headers=STAFF)
    assert resp.status_code == 200, resp.text

    async def announced() -> list[dict[str, Any]]:
        return [json.loads(raw)["data"] for subject, _h, raw in await stream_messages(svc.nats_url,
                                                                                       STREAMS["suggestions"].name)
                if subject == "suggestions.topic.closed" and json.loads(raw)["data"].get("id") == topic_id]

    found: list[dict[str, Any]] = []

    async def one() -> bool:
        nonlocal found
        found = await announced()
        return bool(found)

    await eventually(one, timeout=20, what="suggestions.topic.closed on the SUGGESTIONS stream")
    [data] = found
    assert data == {"id": topic_id, "note": note, "region_code": COUNTY, "at": data["at"]}
    assert "+" in data["at"] or data["at"].endswith("Z"), "a time with its offset"
    # Refused a second time: nothing more is announced.
    again = await svc.client.post(f"/v1/supervision-topics/{topic_id}/closure", json={"note": note}, headers=STAFF)
    assert again.status_code == 409
    assert len(await announced()) == 1


def joined(hotspot_id: str, report_ids: list[str], count: int) -> bytes:
    data = {"hotspot_id": hotspot_id, "step": "joined", "report_ids": report_ids, "count": count, "supporters": 0,
            "places": [], "keywords": ["路灯"], "category": "public_facilities", "topic_title": None,
            "suggestion_id": None, "suggestion_title": None, "outcome": None, "note": None,
            "at": "2026-10-25T09:00:00+08:00"}
    return event_body(new_id(), "routing.hotspot.progressed", data)


async def test_reports_joining_later_join_the_topic_once(svc: Suggestions) -> None:
    first = [new_id() for _ in range(5)]
    topic_id = await detected(svc, first)
    late = new_id()
    for _ in range(2):  # the second time under a new event id, as a replay would
        await publish(svc.nats_url, "routing.hotspot.progressed", joined(topic_id, [late], 6))

    async def grown() -> bool:
        found = await topic(svc, topic_id)
        return found is not None and late in found.report_ids

    await eventually(grown, timeout=20, what="the late report in the topic")
    # A marker after the replay: once it is in, the replay before it has been handled too.
    marker = new_id()
    await publish(svc.nats_url, "routing.hotspot.progressed", joined(topic_id, [marker], 7))

    async def marked() -> bool:
        found = await topic(svc, topic_id)
        return found is not None and marker in found.report_ids

    await eventually(marked, timeout=20, what="the marker report in the topic")
    found = await topic(svc, topic_id)
    assert found is not None
    assert found.report_ids == [*first, late, marker]
    assert found.count == 7
    assert found.last_at.isoformat() == "2026-10-25T01:00:00+00:00"
    listed = await svc.client.get("/v1/supervision-topics", params={"status": "open"}, headers=STAFF)
    [shown] = [t for t in listed.json() if t["id"] == topic_id]
    assert shown["count"] == 7 and late in shown["report_ids"]


async def test_a_join_before_the_topic_exists_is_passed_over(svc: Suggestions) -> None:
    topic_id = await detected(svc, [new_id() for _ in range(5)])
    unknown = new_id()
    early = joined(unknown, [new_id()], 2)
    await publish(svc.nats_url, "routing.hotspot.progressed", early)
    marker = new_id()
    await publish(svc.nats_url, "routing.hotspot.progressed", joined(topic_id, [marker], 6))

    async def marked() -> bool:
        found = await topic(svc, topic_id)
        return found is not None and marker in found.report_ids

    # One consumer, in stream order: once the marker is in, the early join was handled before it.
    await eventually(marked, timeout=20, what="the marker report in the topic")
    assert await topic(svc, unknown) is None
    early_id = json.loads(early)["id"]
    letters = await stream_messages(svc.nats_url, dead_letter_stream("suggestions").name)
    assert not [raw for _s, _h, raw in letters if early_id.encode() in raw], "passed over, not dead-lettered"
