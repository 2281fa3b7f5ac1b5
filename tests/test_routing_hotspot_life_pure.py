"""The rules of a hotspot's life (services/routing/hotspot_life.py) and the export of what staff
checked (minyi/hotspot_export.py), without servers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from minyi import hotspot_export
from services.routing import hotspot_life as life
from services.routing.hotspot_life import Life

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def event(kind: str, seq: int, *, topic_id: str | None = "h1", suggestion_id: str = "s1", outcome: str | None = None,
          note: str | None = None, classes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A `suggestions.suggestion.<kind>` event's data, as suggestions publishes it (the fields read)."""
    return {"id": suggestion_id, "title": "关于整治建设路菜市场垃圾清运的建议", "topic_id": topic_id, "seq": seq + 3,
            "status": kind, "outcome": outcome, "submitted_at": T0.isoformat(),
            "outcome_classes": classes if classes is not None else [
                {"code": "A", "solved": True}, {"code": "B", "solved": False}, {"code": "C", "solved": False}],
            "step": {"seq": seq, "kind": kind, "actor": "staff-1", "note": note,
                     "at": (T0 + timedelta(days=seq)).isoformat(), "data": {}}}


def news(kind: str, seq: int, **kwargs: Any) -> life.SuggestionNews:
    found = life.suggestion_news(kind, event(kind, seq, **kwargs))
    assert found is not None
    return found


def run(start: Life, *steps: life.SuggestionNews) -> tuple[Life, list[str | None]]:
    told: list[str | None] = []
    for n in steps:
        change = life.on_suggestion(start, n)
        if change is not None:
            start = change.life
            told.append(change.step)
    return start, told


def test_a_suggestion_born_of_a_topic_carries_the_hotspot_from_conversion_to_solved() -> None:
    after, told = run(Life(), news("submitted", 1), news("assigned", 2), news("replied", 3, outcome="A"),
                      news("evaluated", 4, outcome="A"), news("closed", 5, outcome="A"))
    assert told == ["converted", "assigned", "replied", None, "solved"]
    assert after.state == "closed" and after.suggestion_id == "s1" and after.outcome == "A"
    assert after.topic_title == "关于整治建设路菜市场垃圾清运的建议" and after.converted_at == T0
    assert after.closed_at == T0 + timedelta(days=5) and after.suggestion_seq == 5


def test_a_yearly_look_back_is_followed_up_with_its_note() -> None:
    converted, _ = run(Life(), news("submitted", 1))
    change = life.on_suggestion(converted, news("reviewed", 6, outcome="B", note="已列入明年改造计划"))
    assert change is not None and change.step == "followed_up" and change.note == "已列入明年改造计划"
    assert change.life.state == "converted" and change.life.outcome == "B"


def test_a_suggestion_closed_unsolved_closes_the_hotspot_and_tells_nothing() -> None:
    after, told = run(Life(), news("submitted", 1), news("closed", 9, outcome="C"))
    assert told == ["converted", None] and after.state == "closed"


def test_solved_follows_the_suggestions_own_outcome_classes() -> None:
    classes = [{"code": "A", "solved": False}, {"code": "D", "solved": True}]
    assert news("closed", 2, outcome="D", classes=classes).solved
    assert not news("closed", 2, outcome="A", classes=classes).solved
    assert life.is_solved("A", None) and not life.is_solved("B", None) and not life.is_solved(None, None)


def test_an_older_or_repeated_step_changes_nothing() -> None:
    replied, _ = run(Life(), news("submitted", 1), news("assigned", 2), news("replied", 3, outcome="B"))
    assert life.on_suggestion(replied, news("assigned", 2)) is None
    assert life.on_suggestion(replied, news("replied", 3, outcome="B")) is None
    assert life.on_suggestion(replied, news("submitted", 1)) is None
    closed, _ = run(replied, news("closed", 4, outcome="A"))
    assert life.on_suggestion(closed, news("replied", 3, outcome="B")) is None
    assert closed.state == "closed"


def test_a_later_step_met_first_converts_the_hotspot_itself() -> None:
    change = life.on_suggestion(Life(), news("assigned", 2))
    assert change is not None and change.step == "assigned"
    assert change.life.state == "converted" and change.life.suggestion_id == "s1" and change.life.converted_at == T0
    assert life.on_suggestion(change.life, news("submitted", 1)) is None


def test_another_suggestion_or_a_merged_hotspot_is_not_moved() -> None:
    converted, _ = run(Life(), news("submitted", 1))
    assert life.on_suggestion(converted, news("assigned", 2, suggestion_id="s2")) is None
    assert life.on_suggestion(converted, news("submitted", 1, suggestion_id="s2")) is None
    assert life.on_suggestion(Life(state="merged"), news("submitted", 1)) is None


def test_a_conversion_outweighs_a_closure_made_in_routing() -> None:
    closed = life.staff_closure(Life(), "误聚类", T0).life
    change = life.on_suggestion(closed, news("submitted", 1))
    assert change is not None and change.life.state == "converted" and change.life.closed_at is None


def test_suggestions_not_born_of_a_topic_or_steps_not_followed_are_not_news() -> None:
    assert life.suggestion_news("submitted", event("submitted", 1, topic_id=None)) is None
    assert life.suggestion_news("meeting", event("meeting", 3)) is None
    assert life.suggestion_news("extended", event("extended", 3)) is None


@pytest.mark.parametrize("broken", [
    {"step": None}, {"step": {"seq": 0, "at": T0.isoformat()}}, {"step": {"seq": 1, "at": "yesterday"}},
    {"step": {"seq": 1, "at": "2026-10-01T09:00:00"}}, {"id": None}, {"title": ""},
])
def test_a_topics_suggestion_without_what_is_needed_is_malformed(broken: dict[str, Any]) -> None:
    with pytest.raises(life.Malformed):
        life.suggestion_news("assigned", {**event("assigned", 2), **broken})


def test_a_topic_closed_in_suggestions_closes_only_an_open_hotspot() -> None:
    change = life.on_topic_closed(Life(), "  不属于人大监督范围  ", T0)
    assert change is not None and change.step == "closed" and change.note == "不属于人大监督范围"
    assert change.life.state == "closed" and change.life.close_note == "不属于人大监督范围"
    for state in ("converted", "closed", "merged"):
        assert life.on_topic_closed(Life(state=state), "x", T0) is None


def test_staff_close_only_an_open_hotspot() -> None:
    assert life.closure_refusal(Life()) is None
    for state in ("converted", "closed", "merged"):
        refusal = life.closure_refusal(Life(state=state))
        assert refusal is not None and refusal.status == 409


def test_a_split_takes_members_only_and_leaves_one_behind() -> None:
    members = ["r1", "r2", "r3"]
    assert life.split_refusal("open", members, ["r2"]) is None
    assert life.split_refusal("converted", members, ["r1", "r3"]) is None
    unknown = life.split_refusal("open", members, ["r2", "x"])
    assert unknown is not None and unknown.status == 422 and unknown.field == "report_ids[1]"
    everyone = life.split_refusal("open", members, ["r3", "r2", "r1"])
    assert everyone is not None and everyone.status == 422 and everyone.field == "report_ids"
    for state in ("closed", "merged"):
        refused = life.split_refusal(state, members, ["r1"])
        assert refused is not None and refused.status == 409


def test_merge_refusals() -> None:
    ok, converted = Life(), Life(state="converted", suggestion_id="s1")
    assert life.merge_refusal("a", ok, "340603", "b", converted, "340603") is None
    itself = life.merge_refusal("a", ok, "340603", "a", ok, "340603")
    assert itself is not None and itself.status == 409
    for state in ("closed", "merged"):
        refusal = life.merge_refusal("a", ok, "340603", "b", Life(state=state), "340603")
        assert refusal is not None and refusal.status == 409
        refusal = life.merge_refusal("a", Life(state=state), "340603", "b", ok, "340603")
        assert refusal is not None and refusal.status == 409
    both = life.merge_refusal("a", converted, "340603", "b", replace(converted, suggestion_id="s2"), "340603")
    assert both is not None and both.status == 409
    counties = life.merge_refusal("a", ok, "340603", "b", ok, "340602")
    assert counties is not None and counties.status == 422 and counties.field == "hotspot_id"


def test_the_hotspot_that_takes_a_converted_one_takes_its_suggestion() -> None:
    converted = Life(state="converted", suggestion_id="s1", suggestion_seq=3, topic_title="题", converted_at=T0,
                     outcome="B")
    taken = life.merged_life(Life(), converted)
    assert taken.state == "converted" and taken.suggestion_id == "s1" and taken.suggestion_seq == 3
    assert taken.outcome == "B" and taken.topic_title == "题"
    assert life.merged_life(converted, Life()) == converted


def test_detection_counts_reports_within_the_window_up_to_the_latest() -> None:
    window = timedelta(days=30)
    times = [T0, T0 + timedelta(days=1), T0 + timedelta(days=40), T0 + timedelta(days=41)]
    assert not life.detected(times, window, 3)
    assert life.detected([*times, T0 + timedelta(days=20)], window, 3)
    assert not life.detected([], window, 2)


def test_the_report_to_support_is_the_first() -> None:
    assert life.earliest([("r2", T0), ("r1", T0), ("r0", T0 + timedelta(seconds=1))]) == "r1"
    assert life.earliest([]) is None


def test_what_only_one_report_names_is_not_shown() -> None:
    assert life.shared_terms(["建设路", "王小明家", "菜市场"], {"建设路": 3, "王小明家": 1, "菜市场": 2}) == \
        ["建设路", "菜市场"]


def test_the_progressed_event_names_the_suggestion_only_once_converted() -> None:
    matter = life.Matter("h1", 6, 2, ["建设路菜市场"], ["垃圾桶"], "sanitation_environment")
    joined = life.progressed(matter, Life(), "joined", ["r1", "r2", "r1"], T0)
    assert joined == {"hotspot_id": "h1", "step": "joined", "report_ids": ["r1", "r2"], "count": 6, "supporters": 2,
                      "places": ["建设路菜市场"], "keywords": ["垃圾桶"], "category": "sanitation_environment",
                      "topic_title": None, "suggestion_id": None, "suggestion_title": None, "outcome": None,
                      "note": None, "at": T0.isoformat()}
    converted = Life(state="converted", suggestion_id="s1", topic_title="关于垃圾清运的建议", outcome="D")
    told = life.progressed(matter, converted, "joined", ["r3"], T0)
    assert told["topic_title"] == told["suggestion_title"] == "关于垃圾清运的建议" and told["suggestion_id"] == "s1"
    assert told["outcome"] is None, "a region's own class is not one the contract names"
    assert life.progressed(matter, replace(converted, outcome="B"), "replied", ["r3"], T0)["outcome"] == "B"


def member(report_id: str, hotspot_id: str, at: datetime, point: list[float] | None = None) -> hotspot_export.Member:
    return hotspot_export.Member(report_id, hotspot_id, "340603001", "municipal_facilities", at,
                                 {"point": point} if point else {})


def test_the_export_keeps_checked_hotspots_only() -> None:
    corrections = [("split", "h1", "h2"), ("merge", "h3", "h4"), ("convert", "h5", None), ("close", "h6", None),
                   ("split", "h6", "h7"), ("close", "h8", None)]
    states = {"h1": "open", "h2": "open", "h3": "converted", "h4": "merged", "h5": "closed", "h6": "closed",
              "h7": "open", "h8": "closed"}
    assert hotspot_export.checked_hotspots(corrections, states) == {"h1", "h2", "h3", "h5", "h7"}


def test_the_export_is_in_the_format_of_the_labelled_set() -> None:
    china_midnight = datetime(2026, 10, 1, 16, tzinfo=UTC)  # 2 October, 00:00 in China
    lines = hotspot_export.rows([member("r2", "h1", china_midnight + timedelta(days=3, hours=5), [33.95, 116.79]),
                                 member("r1", "h1", china_midnight - timedelta(hours=1))])
    assert [r["id"] for r in lines] == ["r1", "r2"]
    assert [r["day"] for r in lines] == [0, 4]
    assert lines[1]["lat"] == 33.95 and lines[1]["lon"] == 116.79 and lines[0]["lat"] is None
    assert set(lines[0]) == {"id", "region_code", "lat", "lon", "category", "content", "day", "received_at",
                             "cluster", "place", "note", "signature"}
    assert lines[1]["signature"] == {"point": [33.95, 116.79]}
    assert lines[0]["content"] is None and lines[0]["cluster"] == "h1"
    assert hotspot_export.rows([]) == []
