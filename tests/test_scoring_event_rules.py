"""What scoring reads from its sources' events, and how a batch of entries adds to the totals (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from busutil import conforming

from services.scoring.domain import rate, rule_set_of
from services.scoring.facts import report_facts, suggestion_facts, unknown_match_fields
from services.scoring.handlers import unit_fact
from services.scoring.ledger import NewEntry, totals_delta
from shared.bus.envelope import CloudEvent
from shared.events import PayloadError

CHINA = timezone(timedelta(hours=8))


def event(event_type: str, data: dict[str, object], *, at: datetime | None = None) -> CloudEvent:
    return CloudEvent(id="e1", source="/tests", type=event_type, data=data,
                      time=at or datetime(2026, 3, 1, 4, 0, tzinfo=UTC))


def entry(deputy: str, at: datetime, points: float, part: str = "base", dimension: str = "relief") -> NewEntry:
    return NewEntry(id=f"{deputy}-{at.isoformat()}-{points}", deputy_id=deputy, at=at, points=points, part=part,
                    dimension=dimension, rule_code="r", rule_region="", rule_version=0, source="s", source_id="x",
                    reason="")


@pytest.mark.parametrize(("part", "whole", "expected"), [
    (2, 3, 0.6667), (1, 8, 0.125), (0, 5, 0.0), (5, 5, 1.0), (0, 0, None), (3, 0, None)])
def test_a_rate_is_rounded_to_four_places_and_none_without_a_whole(part: int, whole: int,
                                                                   expected: float | None) -> None:
    assert rate(part, whole) == expected


def test_totals_delta_sums_each_deputy_year_exactly_by_part_and_dimension() -> None:
    jan = datetime(2026, 1, 5, 12, tzinfo=CHINA)
    # 2025-12-31 17:00 UTC is 2026-01-01 01:00 in China: the 2026 year.
    new_year = datetime(2025, 12, 31, 17, tzinfo=UTC)
    old = datetime(2025, 6, 1, 12, tzinfo=CHINA)
    entries = [entry("b", jan, 0.1), entry("b", jan, 0.2), entry("b", new_year, -1, dimension="conduct"),
               entry("b", jan, 3, part="bonus", dimension="advisory"), entry("a", old, 2)]
    assert totals_delta(entries) == [
        {"deputy_id": "a", "year": 2025, "base": "2", "bonus": "0", "dims": {"relief": "2"}},
        # 0.1 + 0.2 is 0.3 exactly (not 0.30000000000000004), less 1: -0.7
        {"deputy_id": "b", "year": 2026, "base": "-0.7", "bonus": "3",
         "dims": {"relief": "0.3", "conduct": "-1", "advisory": "3"}},
    ]


def report(event_type: str, **data: object) -> CloudEvent:
    """A report event as intake publishes it (its model's example), with `data` over it."""
    return event(event_type, conforming(event_type, data))


def suggestion(kind: str, **data: object) -> CloudEvent:
    return event(f"suggestions.suggestion.{kind}", conforming(f"suggestions.suggestion.{kind}", data))


def test_a_report_to_a_station_scores_nobody() -> None:
    assert report_facts(report("intake.report.answered", deputy_id=None, station_id="S1")) is None


def test_a_report_scores_its_deputy_at_its_own_time_or_else_the_envelope_time() -> None:
    found = report_facts(report("intake.report.answered", deputy_id="D1", region_code="350102",
                                at="2026-03-02T09:30:00+08:00", on_time=False))
    assert found is not None
    assert (found.people, found.at, found.region_code) == (
        {"deputy": ["D1"]}, datetime(2026, 3, 2, 1, 30, tzinfo=UTC), "350102")
    assert found.values["on_time"] is False and found.values["deputy_id"] == "D1"
    submitted = report_facts(report("intake.report.submitted", deputy_id="D1", region_code="350102"))
    assert submitted is not None and submitted.at == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_a_me_too_is_no_report_fact() -> None:
    assert report_facts(report("intake.report.supported")) is None


@pytest.mark.parametrize(("field", "value"), [("at", "2026-03-02T09:30:00"), ("on_time", "maybe"),
                                              ("region_code", None)])
def test_a_report_event_that_breaks_its_model_names_the_field(field: str, value: object) -> None:
    with pytest.raises(PayloadError, match=field):
        report_facts(report("intake.report.answered", deputy_id="D1", **{field: value}))


def test_a_suggestion_step_gives_lead_co_signers_and_its_data_over_the_state() -> None:
    found = suggestion_facts(suggestion(
        "replied", id="s1", lead_deputy_id="L", co_signer_ids=["C1", "C2"], region_code="350102", topic_id="t1",
        step={"seq": 3, "kind": "replied", "at": "2026-04-01T10:00:00+08:00", "data": {"on_time": True}}))
    assert found.people == {"lead": ["L"], "co_signer": ["C1", "C2"]}
    assert (found.values["on_time"], found.values["from_topic"], found.at, found.region_code) == (
        True, True, datetime(2026, 4, 1, 2, 0, tzinfo=UTC), "350102")
    alone = suggestion_facts(suggestion("submitted", topic_id=None))
    assert alone.values["from_topic"] is False


def step(kind: str, data: dict[str, object]) -> dict[str, object]:
    return {"seq": 3, "kind": kind, "at": "2026-04-01T10:00:00+08:00", "data": data}


@pytest.mark.parametrize(("kind", "step_data", "expected"), [
    ("replied", {"on_time": True}, ("reply", True)),
    ("replied", {"on_time": False}, ("reply", False)),
    ("replied", {}, ("reply", True)),  # a reply that does not say it was late counts as in time
    ("evaluated", {"result": "satisfied"}, ("evaluation", True)),
    ("evaluated", {"result": "basically_satisfied"}, ("evaluation", True)),
    ("evaluated", {"result": "dissatisfied"}, ("evaluation", False)),
])
def test_replies_and_evaluations_are_facts_about_the_lead_unit(kind: str, step_data: dict[str, object],
                                                               expected: tuple[str, bool]) -> None:
    ev = suggestion(kind, id="s1", lead_unit_id="U1", region_code="350102", step=step(kind, step_data))
    fact = unit_fact(ev, suggestion_facts(ev))
    assert fact is not None
    assert (fact["kind"], fact["good"], fact["unit_id"], fact["suggestion_id"], fact["event_id"], fact["at"]) == (
        *expected, "U1", "s1", "e1", datetime(2026, 4, 1, 2, tzinfo=UTC))


def test_other_steps_and_suggestions_without_a_unit_are_no_facts() -> None:
    assigned = suggestion("assigned", id="s1", lead_unit_id="U1", step=step("assigned", {}))
    assert unit_fact(assigned, suggestion_facts(assigned)) is None
    unassigned = suggestion("replied", id="s1", lead_unit_id=None, step=step("replied", {}))
    assert unit_fact(unassigned, suggestion_facts(unassigned)) is None


def test_a_rule_on_a_field_its_event_never_carries_is_found() -> None:
    rules = rule_set_of("35", datetime(2027, 1, 1).date(), 1, {"rules": [
        {"code": "a", "on": "intake.report.answered", "points": 1, "dimension": "relief", "match": {"on_time": True}},
        {"code": "b", "on": "intake.report.answered", "points": 1, "dimension": "relief", "match": {"ontime": True}},
        {"code": "c", "on": "suggestions.suggestion.evaluated", "points": 1, "dimension": "advisory",
         "match": {"result": "satisfied", "from_topic": True}},
        {"code": "d", "on": "activity:survey", "points": 1, "dimension": "advisory", "match": {"anything": 1}},
    ]})
    assert unknown_match_fields(rules) == [(1, "ontime")]
