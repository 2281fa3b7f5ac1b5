"""What a citizen's receipt says as the hotspot their report joined moves on (services/intake/lineage.py),
and the rules of a "me too" (services/intake/supports.py) and of a topic gathering reports
(services/suggestions/topics.py): no servers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.intake import lineage, supports
from services.intake.domain import Reporter
from services.suggestions import topics


def data(step: str, **extra: Any) -> dict[str, Any]:
    return {"hotspot_id": "h-1", "step": step, "report_ids": ["r-1", "r-2"], "count": 6, "supporters": 3,
            "places": ["幸福路", "幸福小区北门"], "keywords": ["排水沟", "堵塞", "污水", "臭味"],
            "category": "environment", "topic_title": None, "suggestion_id": None, "suggestion_title": None,
            "outcome": None, "note": None, "at": "2026-11-20T10:00:00+08:00", **extra}


def note(step: str, **extra: Any) -> str:
    return lineage.note(lineage.parse(data(step, **extra)))


def test_joining_tells_how_many_raised_it_and_where_but_never_who() -> None:
    text = note("joined")
    assert text == ("您反映的问题与其他群众反映的同一问题（幸福路、幸福小区北门、排水沟、堵塞）已归为共性事项，"
                    "目前共 6 人反映、3 人附议。")


def test_joining_a_hotspot_already_a_topic_names_the_topic() -> None:
    text = note("joined", supporters=0, topic_title="幸福路排水沟长期堵塞问题")
    assert "附议" not in text, "no supporters, no mention of them"
    assert text.endswith("目前共 6 人反映，该事项已列为人大监督议题「幸福路排水沟长期堵塞问题」。")


def test_joining_without_places_or_keywords_leaves_out_the_brackets() -> None:
    text = note("joined", places=[], keywords=[])
    assert text.startswith("您反映的问题与其他群众反映的同一问题已归为共性事项")


@pytest.mark.parametrize(("step", "extra", "expected"), [
    ("converted", {"suggestion_title": "关于整治幸福路排水设施的建议"},
     "该共性事项已列为人大监督议题，并转为重点督办的代表建议「关于整治幸福路排水设施的建议」。"),
    ("assigned", {"suggestion_title": "关于整治幸福路排水设施的建议"},
     "代表建议「关于整治幸福路排水设施的建议」已交办承办单位办理。"),
    ("assigned", {}, "该代表建议已交办承办单位办理。"),
    ("replied", {"suggestion_title": "排水建议", "outcome": "A"},
     "承办单位已答复代表建议「排水建议」，办理结果：已解决或当年解决。"),
    ("replied", {"suggestion_title": "排水建议", "outcome": "B"},
     "承办单位已答复代表建议「排水建议」，办理结果：列入计划三年内解决。"),
    ("replied", {"suggestion_title": "排水建议", "outcome": "C"},
     "承办单位已答复代表建议「排水建议」，办理结果：留作参考。"),
    ("replied", {"suggestion_title": "排水建议"}, "承办单位已答复代表建议「排水建议」。"),
    ("followed_up", {"note": "管网改造已完成设计，明年汛期前施工"}, "年度跟踪：管网改造已完成设计，明年汛期前施工。"),
    ("followed_up", {}, "年度跟踪：该代表建议仍在跟踪办理中。"),
    ("solved", {"suggestion_title": "排水建议"}, "代表建议「排水建议」已办结，问题已解决。"),
    ("closed", {"note": "已由住建部门列入年度计划整改！"},
     "经人大常委会研究，该共性事项不列为监督议题：已由住建部门列入年度计划整改！"),
    ("closed", {}, "经人大常委会研究，该共性事项不列为监督议题。"),
], ids=lambda v: v if isinstance(v, str) and v.isascii() else None)
def test_each_later_step_has_its_own_words(step: str, extra: dict[str, Any], expected: str) -> None:
    assert note(step, **extra) == expected


def test_long_titles_and_notes_are_cut_to_one_short_line() -> None:
    title = "关于" + "幸福路" * 30 + "的建议"
    text = note("solved", suggestion_title=title)
    quoted = text[text.index("「") + 1:text.index("」")]
    assert len(quoted) == lineage.TITLE_CHARS and quoted.endswith("…")
    closed = note("closed", note="第一行\n\n第二行  " + "很长" * 300)
    assert "\n" not in closed and "第一行 第二行" in closed
    assert len(closed) <= len("经人大常委会研究，该共性事项不列为监督议题：") + lineage.NOTE_CHARS + 1


@pytest.mark.parametrize("broken", [
    {"step": None}, {"step": "merged"}, {"report_ids": None}, {"report_ids": "r-1"}, {"report_ids": ["r-1", 7]},
    {"hotspot_id": ""}, {"hotspot_id": None}, {"count": -1}, {"count": "6"}, {"supporters": True},
    {"outcome": "D"}, {"at": "yesterday"}, {"at": "2026-11-20T10:00:00"}, {"places": "幸福路"},
    {"topic_title": 5},
], ids=str)
def test_what_cannot_be_read_as_a_step_is_malformed(broken: dict[str, Any]) -> None:
    with pytest.raises(lineage.Malformed):
        lineage.parse({**data("joined"), **broken})


def test_a_step_is_read_with_its_time_and_without_repeated_reports() -> None:
    p = lineage.parse(data("joined", report_ids=["r-1", "r-2", "r-1"], at="2026-11-20T10:00:00+08:00"))
    assert p.report_ids == ("r-1", "r-2")
    assert p.at is not None and p.at.utcoffset() == timedelta(hours=8)
    assert lineage.parse(data("joined", at=None)).at is None


def test_once_in_a_life_steps_are_keyed_by_the_hotspot_and_repeatable_ones_by_the_event() -> None:
    for step in ("joined", "converted", "solved", "closed"):
        p = lineage.parse(data(step))
        assert lineage.dedupe_key(p, "e-1") == lineage.dedupe_key(p, "e-2") == f"hotspot:h-1:{step}"
    for step in ("assigned", "replied", "followed_up"):
        p = lineage.parse(data(step))
        assert lineage.dedupe_key(p, "e-1") != lineage.dedupe_key(p, "e-2")


# ---- supports ---------------------------------------------------------------------------------


def fields(**kwargs: Any) -> list[str]:
    base: dict[str, Any] = {"channel": "h5", "anonymous": False, "reporter": Reporter("张三", "13800138000", None),
                            "roles": frozenset()}
    return [e.field for e in supports.check_support(**{**base, **kwargs})]


def test_a_support_is_anonymous_or_has_a_name_and_a_phone() -> None:
    assert fields() == []
    assert fields(anonymous=True, reporter=None) == []
    assert fields(anonymous=True) == ["reporter"]
    assert fields(reporter=None) == ["reporter"]
    assert fields(reporter=Reporter(" ", "", None)) == ["reporter.name", "reporter.phone"]
    assert fields(reporter=Reporter("张三", "(((((((", None)) == ["reporter.phone"]
    assert fields(reporter=Reporter("张三", "13800138000", "11010519491231002X")) == ["reporter.id_number"]


def test_paper_supports_come_from_station_staff_only() -> None:
    assert fields(channel="paper") == ["channel"]
    assert fields(channel="paper", roles=frozenset({"station_staff"})) == []


def test_a_closed_report_takes_no_more_supports() -> None:
    assert supports.refusal("closed") == supports.CLOSED
    assert all(supports.refusal(s) is None for s in ("submitted", "acknowledged", "dispatched", "answered"))


def test_the_person_digest_is_stable_for_one_report_and_unlinkable_across_reports() -> None:
    index, other = b"\x01" * 32, b"\x02" * 32
    assert supports.person_digest(index, "r-1") == supports.person_digest(index, "r-1")
    assert supports.person_digest(index, "r-1") != supports.person_digest(index, "r-2")
    assert supports.person_digest(index, "r-1") != supports.person_digest(other, "r-1")
    assert index not in supports.person_digest(index, "r-1")


# ---- a supervision topic gathering reports ----------------------------------------------------


def test_reports_that_join_later_are_added_once_and_the_count_never_falls() -> None:
    assert topics.joined(["a", "b"], 2, ["c"], 3) == (["a", "b", "c"], 3)
    assert topics.joined(["a", "b", "c"], 3, ["c"], 3) is None, "told again: nothing changes"
    assert topics.joined(["a", "b"], 5, ["c", "c"], None) == (["a", "b", "c"], 5)
    assert topics.joined(["a", "b"], 2, ["b"], 4) == (["a", "b"], 4), "routing counts reports the topic lacks"
    assert topics.joined(["a", "b", "c"], 3, ["d"], 2) == (["a", "b", "c", "d"], 4)


def test_times_are_read_with_their_offset() -> None:
    assert lineage.parse(data("joined")).at == datetime.fromisoformat("2026-11-20T02:00:00+00:00")
