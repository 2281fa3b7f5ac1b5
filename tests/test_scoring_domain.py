"""Rules of deputies' performance points as plain functions: rule sets, awards, totals, grades, ranks,
the talk list and the handling units' red/yellow/black board."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.scoring.domain import (
    ACTIVITY_KINDS,
    CHINA,
    DEFAULT,
    DEFAULT_RULES,
    Board,
    BoardThresholds,
    Dimension,
    Grade,
    Grading,
    Part,
    Role,
    Rule,
    RuleError,
    RuleSet,
    awards,
    board,
    entry_id,
    grade,
    in_force,
    prefix_of,
    rank,
    rule_set_doc,
    rule_set_of,
    score,
    stars,
    talk_list,
    totals,
    year_of,
)

DAY = date(2026, 11, 20)
SUBMITTED = "suggestions.suggestion.submitted"
ACKNOWLEDGED = "intake.report.acknowledged"
RATED = "intake.report.rated"
GRADING = Grading()
T = BoardThresholds()


def _set(region_code: str, effective_from: date, version: int = 1) -> RuleSet:
    return RuleSet(region_code, effective_from, version, DEFAULT_RULES)


def _rule(**overrides: Any) -> dict[str, Any]:
    return {"code": "x", "on": "intake.report.answered", "points": 1, "dimension": "relief", **overrides}


def _codes(found: list[Any]) -> set[tuple[str, str]]:
    return {(a.deputy_id, a.rule.code) for a in found}


# ---- rank ----------------------------------------------------------------------------------------


def test_equal_totals_share_a_rank_and_the_next_rank_skips() -> None:
    assert rank([("a", 10), ("b", 10), ("c", 5)]) == [("a", 10, 1), ("b", 10, 1), ("c", 5, 3)]
    ranks = [r for _, _, r in rank([("a", 9), ("b", 5), ("c", 5), ("d", 5), ("e", 1)])]
    assert ranks == [1, 2, 2, 2, 5]
    assert [r for _, _, r in rank([("a", 3), ("b", 3), ("c", 3)])] == [1, 1, 1]


def test_rank_puts_the_highest_total_first_whatever_the_input_order() -> None:
    ranked = rank([("low", 1.5), ("high", 88.25), ("mid", 40)])
    assert [(d, r) for d, _, r in ranked] == [("high", 1), ("mid", 2), ("low", 3)]


def test_ties_are_ordered_by_id_so_the_ranking_is_deterministic() -> None:
    rows = [("z", 10.0), ("m", 12.0), ("a", 10.0), ("k", 10.0)]
    ranked = rank(rows)
    assert ranked == [("m", 12.0, 1), ("a", 10.0, 2), ("k", 10.0, 2), ("z", 10.0, 2)]
    assert rank(list(reversed(rows))) == ranked
    assert rank([]) == []


# ---- totals and score ----------------------------------------------------------------------------


def test_base_is_capped_at_100_and_never_below_zero() -> None:
    assert totals(130, 5) == (100.0, 5.0, 105.0)
    assert totals(100, 0) == (100.0, 0.0, 100.0)
    assert totals(-7, 0) == (0.0, 0.0, 0.0)
    assert totals(-7, 4) == (0.0, 4.0, 4.0)


def test_bonus_is_uncapped_but_never_below_zero_and_total_is_base_plus_bonus() -> None:
    assert totals(50, 250) == (50.0, 250.0, 300.0)
    assert totals(50, -3) == (50.0, 0.0, 50.0)
    assert totals(33.333, 1.111) == (33.33, 1.11, 34.44)


def test_score_caps_base_keeps_bonus_and_clamps_each_dimension() -> None:
    entries = [(Part.BASE, Dimension.CONDUCT, 10.0)] * 12 + [(Part.BONUS, Dimension.EXEMPLARY, 10.0)]
    s = score(entries, GRADING)
    assert (s.base, s.bonus, s.total) == (100.0, 10.0, 110.0)
    assert s.stars == 10 and s.grade == Grade.EXCELLENT
    assert s.dimensions == {"exemplary": 33.3, "conduct": 100.0, "supervision": 0.0, "advisory": 0.0,
                            "relief": 0.0}


def test_deductions_lower_base_and_a_dimension_never_goes_below_zero() -> None:
    entries = [(Part.BASE, Dimension.CONDUCT, 10.0), (Part.BASE, Dimension.RELIEF, -1.0),
               (Part.BASE, Dimension.RELIEF, -0.5)]
    s = score(entries, GRADING)
    assert (s.base, s.bonus, s.total) == (8.5, 0.0, 8.5)
    assert s.dimensions["relief"] == 0.0 and s.dimensions["conduct"] == 33.3


def test_a_negative_bonus_sum_counts_as_zero_in_the_score() -> None:
    s = score([(Part.BASE, Dimension.CONDUCT, 20.0), (Part.BONUS, Dimension.RELIEF, -2.0)], GRADING)
    assert (s.base, s.bonus, s.total) == (20.0, 0.0, 20.0)


def test_dimensions_are_scaled_by_dimension_full_and_default_to_30() -> None:
    grading = Grading(dimension_full={"relief": 10.0})
    s = score([(Part.BASE, Dimension.RELIEF, 5.0), (Part.BASE, Dimension.ADVISORY, 15.0),
               (Part.BONUS, Dimension.SUPERVISION, 6.0)], grading)
    assert s.dimensions["relief"] == 50.0
    assert s.dimensions["advisory"] == 50.0  # not listed: 30 points make 100
    assert s.dimensions["supervision"] == 20.0  # bonus points count in their dimension too


def test_an_empty_year_scores_nothing_in_every_dimension() -> None:
    s = score([], GRADING)
    assert (s.base, s.bonus, s.total, s.stars, s.grade) == (0.0, 0.0, 0.0, 0, Grade.NOT_COMPETENT)
    assert s.dimensions == {d.value: 0.0 for d in Dimension}


# ---- stars and grades ----------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "expected"), [
    (0, 0), (9.99, 0), (10, 1), (19.99, 1), (55, 5), (99.99, 9), (100, 10), (150, 10), (-5, 0),
])
def test_a_star_per_ten_points_capped_at_ten(total: float, expected: int) -> None:
    assert stars(total, GRADING) == expected


def test_stars_follow_the_points_per_star_of_the_grading() -> None:
    grading = Grading(points_per_star=7.5)
    assert stars(15, grading) == 2 and stars(14.99, grading) == 1 and stars(1000, grading) == 10


@pytest.mark.parametrize(("total", "expected"), [
    (130, Grade.EXCELLENT), (90, Grade.EXCELLENT), (89.99, Grade.GOOD), (75, Grade.GOOD),
    (74.99, Grade.COMPETENT), (60, Grade.COMPETENT), (59.99, Grade.BASICALLY_COMPETENT),
    (45, Grade.BASICALLY_COMPETENT), (44.99, Grade.NOT_COMPETENT), (0, Grade.NOT_COMPETENT),
])
def test_grade_thresholds_include_their_boundary(total: float, expected: Grade) -> None:
    assert grade(total, GRADING) == expected


def test_grade_follows_the_thresholds_of_the_grading() -> None:
    grading = Grading(excellent=80, good=70, competent=50, basically_competent=30)
    assert grade(80, grading) == Grade.EXCELLENT
    assert grade(79, grading) == Grade.GOOD
    assert grade(30, grading) == Grade.BASICALLY_COMPETENT
    assert grade(29.99, grading) == Grade.NOT_COMPETENT


# ---- which rule set is in force ------------------------------------------------------------------


@pytest.mark.parametrize(("code", "prefix"), [("340000", "34"), ("340800", "3408"), ("340811", "340811")])
def test_prefix_of_trims_the_levels_a_region_covers(code: str, prefix: str) -> None:
    assert prefix_of(code) == prefix


def test_the_most_specific_region_rule_set_wins() -> None:
    province, city, county = (_set("340000", date(2025, 1, 1)), _set("340800", date(2025, 1, 1)),
                              _set("340811", date(2025, 1, 1)))
    sets = [county, province, city]
    assert in_force(sets, "340811", DAY) is county
    assert in_force(sets, "340822", DAY) is city
    assert in_force(sets, "340800", DAY) is city
    assert in_force(sets, "341000", DAY) is province


def test_a_specific_region_wins_even_over_a_newer_general_version() -> None:
    city, province = _set("340800", date(2025, 1, 1)), _set("340000", date(2026, 6, 1), 4)
    assert in_force([province, city], "340811", DAY) is city


def test_among_versions_of_a_region_the_latest_effective_one_wins() -> None:
    v1, v2, v3 = (_set("340800", date(2025, 1, 1), 1), _set("340800", date(2026, 1, 1), 2),
                  _set("340800", date(2026, 6, 1), 3))
    sets = [v3, v1, v2]
    assert in_force(sets, "340811", date(2025, 12, 31)) is v1
    assert in_force(sets, "340811", date(2026, 5, 31)) is v2
    assert in_force(sets, "340811", date(2026, 6, 1)) is v3  # in force on its first day


def test_a_version_effective_tomorrow_does_not_apply_today() -> None:
    old, tomorrow = _set("340800", date(2025, 1, 1), 1), _set("340800", date(2026, 11, 21), 2)
    assert in_force([old, tomorrow], "340811", DAY) is old
    assert in_force([tomorrow], "340811", DAY) is DEFAULT
    # A county's set not yet in force leaves the city's set in force.
    county_soon = _set("340811", date(2026, 11, 21))
    assert in_force([old, county_soon], "340811", DAY) is old


def test_a_region_rules_do_not_apply_to_another_region() -> None:
    sets = [_set("340000", date(2025, 1, 1)), _set("340811", date(2025, 1, 1))]
    assert in_force(sets, "320000", DAY) is DEFAULT
    assert in_force(sets, "320923", DAY) is DEFAULT
    assert in_force([_set("340811", date(2025, 1, 1))], "340812", DAY) is DEFAULT


def test_without_any_rule_set_the_default_applies_and_a_stored_default_overrides_it() -> None:
    assert in_force([], "340811", DAY) is DEFAULT
    stored = _set("", date(2026, 1, 1), 2)
    assert in_force([stored], "340811", DAY) is stored
    city = _set("340800", date(2025, 1, 1))
    assert in_force([stored, city], "340811", DAY) is city


def test_a_township_rules_do_not_reach_its_sibling_townships() -> None:
    township = _set("340811100", date(2025, 1, 1))
    assert in_force([township], "340811100", DAY) is township
    assert in_force([township], "340811101", DAY) is DEFAULT
    assert in_force([township], "340811199001", DAY) is DEFAULT


# ---- awards --------------------------------------------------------------------------------------


def test_a_submitted_suggestion_scores_the_lead_and_each_co_signer() -> None:
    found = awards(DEFAULT, SUBMITTED, {}, {Role.LEAD: ["d1"], Role.CO_SIGNER: ["d2", "d3"]}, "s-1")
    assert _codes(found) == {("d1", "suggestion_led"), ("d2", "suggestion_cosigned"), ("d3", "suggestion_cosigned")}
    points = {a.deputy_id: (a.rule.points, a.rule.part, a.rule.dimension) for a in found}
    assert points["d1"] == (4, Part.BASE, Dimension.ADVISORY)
    assert points["d2"] == points["d3"] == (1, Part.BASE, Dimension.ADVISORY)


def test_a_suggestion_from_a_topic_also_gives_the_lead_hotspot_supervision() -> None:
    found = awards(DEFAULT, SUBMITTED, {"from_topic": True}, {Role.LEAD: ["d1"], Role.CO_SIGNER: ["d2", "d3"]}, "s-1")
    assert _codes(found) == {("d1", "suggestion_led"), ("d1", "hotspot_supervision"), ("d2", "suggestion_cosigned"),
                             ("d3", "suggestion_cosigned")}
    hotspot = next(a.rule for a in found if a.rule.code == "hotspot_supervision")
    assert (hotspot.points, hotspot.part, hotspot.dimension) == (3, Part.BONUS, Dimension.SUPERVISION)


def test_a_role_missing_from_the_people_scores_nobody_and_blank_ids_are_skipped() -> None:
    assert _codes(awards(DEFAULT, SUBMITTED, {}, {Role.LEAD: ["d1"]}, "s-1")) == {("d1", "suggestion_led")}
    assert _codes(awards(DEFAULT, SUBMITTED, {}, {Role.LEAD: [""], Role.CO_SIGNER: ["d2"]}, "s-1")) == {
        ("d2", "suggestion_cosigned")}
    # Acknowledgement rules score the report's deputy; a lead is not that deputy.
    assert awards(DEFAULT, ACKNOWLEDGED, {"on_time": True}, {Role.LEAD: ["d1"]}, "r-1") == []


def test_on_time_false_matches_only_late_acknowledgements() -> None:
    people = {Role.DEPUTY: ["d1"]}
    late = awards(DEFAULT, ACKNOWLEDGED, {"on_time": False}, people, "r-1")
    assert [(a.rule.code, a.rule.points) for a in late] == [("report_ack_late", -0.5)]
    on_time = awards(DEFAULT, ACKNOWLEDGED, {"on_time": True}, people, "r-1")
    assert [(a.rule.code, a.rule.points) for a in on_time] == [("report_ack_on_time", 0.5)]
    # Without the fact neither rule can tell, so neither applies.
    assert awards(DEFAULT, ACKNOWLEDGED, {}, people, "r-1") == []


@pytest.mark.parametrize(("stars_given", "codes"), [
    (5, ["report_rated_5"]), (4, []), (3, []), (2, []), (1, ["report_rated_1"]),
])
def test_ratings_score_only_the_stars_their_rule_matches(stars_given: int, codes: list[str]) -> None:
    found = awards(DEFAULT, RATED, {"stars": stars_given}, {Role.DEPUTY: ["d1"]}, "r-1")
    assert [a.rule.code for a in found] == codes


def test_a_rule_on_another_event_type_gives_nothing() -> None:
    people = {Role.DEPUTY: ["d1"], Role.LEAD: ["d1"], Role.CO_SIGNER: ["d2"]}
    assert awards(DEFAULT, "intake.report.closed", {"on_time": True, "stars": 5}, people, "r-1") == []
    only = RuleSet("34", date(2025, 1, 1), 1, (Rule("r", "intake.report.answered", 2, Part.BASE, Dimension.RELIEF),))
    assert awards(only, ACKNOWLEDGED, {}, {Role.DEPUTY: ["d1"]}, "r-1") == []
    assert _codes(awards(only, "intake.report.answered", {}, {Role.DEPUTY: ["d1"]}, "r-1")) == {("d1", "r")}


def test_an_activity_scores_the_deputy_it_is_about() -> None:
    found = awards(DEFAULT, "activity:inspection", {}, {Role.DEPUTY: ["d7"]}, "act-1")
    assert [(a.deputy_id, a.rule.code, a.rule.points, a.rule.dimension) for a in found] == [
        ("d7", "inspection", 3, Dimension.SUPERVISION)]


def test_entry_ids_are_deterministic_per_source_rule_and_deputy() -> None:
    people = {Role.LEAD: ["d1"], Role.CO_SIGNER: ["d2", "d3"]}
    first = awards(DEFAULT, SUBMITTED, {}, people, "s-1")
    again = awards(DEFAULT, SUBMITTED, {}, people, "s-1")
    other = awards(DEFAULT, SUBMITTED, {}, people, "s-2")
    assert [a.entry_id for a in first] == [a.entry_id for a in again]
    assert not {a.entry_id for a in first} & {a.entry_id for a in other}
    assert len({a.entry_id for a in first}) == 3
    for a in first:
        assert a.entry_id == entry_id("s-1", a.rule.code, a.deputy_id)
        assert str(uuid.UUID(a.entry_id)) == a.entry_id


def test_entry_id_changes_with_each_of_its_parts() -> None:
    base = entry_id("s-1", "suggestion_led", "d1")
    assert entry_id("s-1", "suggestion_led", "d1") == base
    assert len({base, entry_id("s-2", "suggestion_led", "d1"), entry_id("s-1", "hotspot_supervision", "d1"),
                entry_id("s-1", "suggestion_led", "d2")}) == 4


# ---- the talk list -------------------------------------------------------------------------------


def _ranking(n: int) -> list[tuple[str, float, int]]:
    return rank([(f"d{i:03}", float(i)) for i in range(n)])


def test_the_talk_list_is_the_bottom_share_of_the_ranking() -> None:
    assert talk_list(_ranking(20), 0.05) == ["d000"]
    assert talk_list(_ranking(21), 0.05) == ["d001", "d000"]  # 1.05 deputies round up to two
    assert talk_list(_ranking(40), 0.05) == ["d001", "d000"]


def test_the_talk_list_holds_at_least_one_deputy() -> None:
    assert talk_list(_ranking(3), 0.05) == ["d000"]
    assert talk_list(rank([("only", 80.0)]), 0.05) == ["only"]


def test_ties_with_the_cutoff_are_on_the_talk_list() -> None:
    ranked = rank([("a", 10.0), ("b", 3.0), ("c", 3.0), ("d", 3.0)])
    assert talk_list(ranked, 0.05) == ["b", "c", "d"]
    # Forty deputies: two are listed, and the one tied with the second from the bottom too.
    rows = [(f"d{i:03}", float(i)) for i in range(39)] + [("tie", 1.0)]
    assert talk_list(rank(rows), 0.05) == ["d001", "tie", "d000"]


def test_an_empty_ranking_has_an_empty_talk_list() -> None:
    assert talk_list([], 0.05) == []


def test_a_share_that_is_a_whole_number_of_deputies_lists_exactly_that_many() -> None:
    assert len(talk_list(_ranking(100), 0.07)) == 7


# ---- the units' board ----------------------------------------------------------------------------


@pytest.mark.parametrize(("replies", "on_time", "evaluations", "satisfied", "expected"), [
    (20, 19, 10, 9, Board.RED),  # exactly 95 % and 90 %
    (20, 20, 10, 10, Board.RED),
    (20, 18, 10, 10, None),  # 90 % on time: good, not red
    (20, 19, 10, 8, None),  # 80 % satisfied: good, not red
    (5, 4, 10, 7, None),  # exactly 80 % and 70 %: not yellow
    (100, 79, 10, 10, Board.YELLOW),
    (100, 100, 100, 69, Board.YELLOW),
    (5, 3, 10, 5, Board.YELLOW),  # exactly 60 % and 50 %: not black
    (100, 59, 10, 10, Board.BLACK),
    (100, 100, 100, 49, Board.BLACK),  # a very low satisfaction is black whatever the on-time rate
    (100, 59, 100, 69, Board.BLACK),
])
def test_board_at_and_around_the_default_thresholds(replies: int, on_time: int, evaluations: int, satisfied: int,
                                                     expected: Board | None) -> None:
    assert board(replies, on_time, evaluations, satisfied, T) == expected


def test_without_evaluations_a_unit_is_judged_by_its_on_time_rate_alone() -> None:
    assert board(20, 19, 0, 0, T) == Board.RED
    assert board(20, 17, 0, 0, T) is None
    assert board(20, 15, 0, 0, T) == Board.YELLOW
    assert board(10, 5, 0, 0, T) == Board.BLACK


def test_fewer_replies_than_min_replies_puts_a_unit_on_no_board() -> None:
    assert board(0, 0, 0, 0, T) is None
    assert board(0, 0, 5, 0, T) is None
    strict = BoardThresholds(min_replies=5)
    assert board(4, 0, 4, 0, strict) is None
    assert board(5, 0, 4, 0, strict) == Board.BLACK


# ---- rule sets from their stored form ------------------------------------------------------------


def test_the_default_rule_set_round_trips_through_its_json_form() -> None:
    doc = json.loads(json.dumps(rule_set_doc(DEFAULT)))
    assert rule_set_of("", DEFAULT.effective_from, 0, doc) == DEFAULT


def test_a_custom_rule_set_round_trips_with_its_grading_and_board() -> None:
    rs = RuleSet("340800", date(2026, 12, 1), 3, (
        Rule("late", "intake.report.answered", -2.5, Part.BASE, Dimension.RELIEF, Role.DEPUTY, {"on_time": False},
             "逾期答复"),
        Rule("co", SUBMITTED, 1.5, Part.BONUS, Dimension.ADVISORY, Role.CO_SIGNER),
    ), Grading(points_per_star=8, excellent=85, good=70, competent=55, basically_competent=40, talk_share=0.1,
               dimension_full={"exemplary": 30.0, "conduct": 30.0, "supervision": 30.0, "advisory": 40.0,
                               "relief": 20.0}),
        BoardThresholds(red_on_time=0.9, black_satisfaction=0.4, min_replies=3))
    doc = json.loads(json.dumps(rule_set_doc(rs)))
    assert doc["region_code"] == "340800" and doc["effective_from"] == "2026-12-01" and doc["version"] == 3
    assert rule_set_of("340800", date(2026, 12, 1), 3, doc) == rs


def test_a_minimal_rule_takes_the_defaults() -> None:
    rs = rule_set_of("34", DAY, 1, {"rules": [_rule(points=2)]})
    assert rs.rules == (Rule("x", "intake.report.answered", 2.0, Part.BASE, Dimension.RELIEF, Role.DEPUTY, {}, ""),)
    assert rs.grading == Grading() and rs.board == BoardThresholds()
    assert (rs.region_code, rs.effective_from, rs.version) == ("34", DAY, 1)


def test_every_activity_kind_is_a_valid_trigger() -> None:
    rules = [_rule(code=kind, on=f"activity:{kind}") for kind in ACTIVITY_KINDS]
    ons = [r.on for r in rule_set_of("34", DAY, 1, {"rules": rules}).rules]
    assert ons == [f"activity:{k}" for k in ACTIVITY_KINDS]


@pytest.mark.parametrize(("doc", "field"), [
    pytest.param({}, "rules", id="no-rules"),
    pytest.param({"rules": []}, "rules", id="empty-rules"),
    pytest.param({"rules": "x"}, "rules", id="rules-not-a-list"),
    pytest.param({"rules": ["x"]}, "rules[0]", id="rule-not-an-object"),
    pytest.param({"rules": [_rule(code="a"), _rule(code="a")]}, "rules[1].code", id="duplicate-code"),
    pytest.param({"rules": [_rule(code="")]}, "rules[0].code", id="empty-code"),
    pytest.param({"rules": [_rule(on="intake.report")]}, "rules[0].on", id="two-part-trigger"),
    pytest.param({"rules": [_rule(on="intake..answered")]}, "rules[0].on", id="empty-segment-trigger"),
    pytest.param({"rules": [_rule(on=7)]}, "rules[0].on", id="trigger-not-a-string"),
    pytest.param({"rules": [_rule(), _rule(code="y", on="activity:dancing")]}, "rules[1].on", id="unknown-activity"),
    pytest.param({"rules": [_rule(points="3")]}, "rules[0].points", id="points-string"),
    pytest.param({"rules": [_rule(points=True)]}, "rules[0].points", id="points-bool"),
    pytest.param({"rules": [_rule(points=None)]}, "rules[0].points", id="points-missing"),
    pytest.param({"rules": [_rule(points=math.nan)]}, "rules[0].points", id="points-nan"),
    pytest.param({"rules": [_rule(points=math.inf)]}, "rules[0].points", id="points-inf"),
    pytest.param({"rules": [_rule(dimension="joy")]}, "rules[0]", id="unknown-dimension"),
    pytest.param({"rules": [_rule(part="extra")]}, "rules[0]", id="unknown-part"),
    pytest.param({"rules": [_rule(role="mayor")]}, "rules[0]", id="unknown-role"),
    pytest.param({"rules": [_rule(match=[1])]}, "rules[0].match", id="match-not-an-object"),
    pytest.param({"rules": [_rule()], "grading": {"excellent": 70, "good": 75}}, "grading", id="not-decreasing"),
    pytest.param({"rules": [_rule()], "grading": {"competent": 40}}, "grading", id="competent-below-basic"),
    pytest.param({"rules": [_rule()], "grading": {"points_per_star": 0}}, "grading.points_per_star",
                 id="zero-per-star"),
    pytest.param({"rules": [_rule()], "grading": {"stars": 3}}, "grading", id="unknown-grading-key"),
    pytest.param({"rules": [_rule()], "grading": {"talk_share": 0}}, "grading.talk_share", id="talk-share-0"),
    pytest.param({"rules": [_rule()], "grading": {"talk_share": 1}}, "grading.talk_share", id="talk-share-1"),
])
def test_rule_set_errors_name_the_field_at_fault(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleError) as caught:
        rule_set_of("34", DAY, 1, doc)
    assert caught.value.field == field
    assert caught.value.message


def test_an_unknown_board_parameter_is_reported_on_the_board_field() -> None:
    with pytest.raises(RuleError) as caught:
        rule_set_of("34", DAY, 1, {"rules": [_rule()], "board": {"purple_on_time": 0.5}})
    assert caught.value.field == "board"


@pytest.mark.parametrize("doc", [
    pytest.param({"grading": {"excellent": "90"}}, id="threshold-string-raises-TypeError"),
    pytest.param({"grading": {"points_per_star": math.nan}}, id="nan-per-star-accepted"),
    pytest.param({"grading": {"dimension_full": {"relief": 0}}}, id="zero-dimension-full-accepted"),
    pytest.param({"board": {"min_replies": 0}}, id="zero-min-replies-accepted"),
])
def test_rule_set_of_rejects_grading_and_board_values_that_would_crash_later(doc: dict[str, Any]) -> None:
    with pytest.raises(RuleError):
        rule_set_of("34", DAY, 1, {"rules": [_rule()], **doc})


# ---- the scoring year ----------------------------------------------------------------------------


@pytest.mark.parametrize(("at", "year"), [
    (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), 2027),
    (datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC), 2026),
    (datetime(2027, 1, 1, 0, 30, tzinfo=CHINA), 2027),
    (datetime(2026, 12, 31, 23, 59, tzinfo=CHINA), 2026),
])
def test_the_scoring_year_is_the_calendar_year_in_china(at: datetime, year: int) -> None:
    assert year_of(at) == year
