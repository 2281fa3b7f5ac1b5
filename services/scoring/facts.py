"""What the points rules may match on: the facts of a report or suggestion event, read through the
event catalogue's models (shared/events.py), never by picking keys out of another service's JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.scoring import domain
from shared import events
from shared.bus.envelope import CloudEvent

# What a suggestion's steps add to its facts (SuggestionStep.data), besides the suggestion's own fields.
STEP_FACTS = frozenset({"due_at", "key", "on_time", "outcome", "planned_year", "result", "referred", "review_year",
                        "stage", "decision", "deadline", "new_term", "term", "year", "repeat_of"})
# Derived for the rules: the suggestion was born of a supervision topic (a hotspot).
DERIVED_FACTS = frozenset({"from_topic"})


@dataclass(frozen=True)
class Facts:
    values: dict[str, Any]
    people: dict[domain.Role, list[str]]
    at: datetime
    region_code: str


def report_facts(event: CloudEvent) -> Facts | None:
    """A report event's facts for its deputy; None when it went to a station (no deputy scores)."""
    model = events.MODELS.get(event.type)
    if model is None or not issubclass(model, events.ReportEvent):
        return None  # another kind of intake event (a "me too"): nothing for the rules
    report = event.payload(model)
    if not report.deputy_id:
        return None
    # Not every report event says when (a submission does not): the envelope's time stands in.
    at = report.at if "at" in type(report).model_fields else event.time
    return Facts(report.model_dump(), {domain.Role.DEPUTY: [report.deputy_id]}, at, report.region_code)


def suggestion_facts(event: CloudEvent) -> Facts:
    suggestion = event.payload(events.SuggestionEvent)
    values = {**suggestion.model_dump(), **suggestion.step.data, "from_topic": suggestion.topic_id is not None}
    people = {domain.Role.LEAD: [suggestion.lead_deputy_id],
              domain.Role.CO_SIGNER: list(suggestion.co_signer_ids)}
    return Facts(values, people, suggestion.step.at, suggestion.region_code)


def matchable(on: str) -> frozenset[str] | None:
    """The fields a rule on `on` may match; None when the trigger is not an event of the catalogue."""
    model = events.MODELS.get(on)
    if model is None:
        return None
    fields = frozenset(model.model_fields)
    if model is events.SuggestionEvent:
        return fields | STEP_FACTS | DERIVED_FACTS
    return fields


def unknown_match_fields(rule_set: domain.RuleSet) -> list[tuple[int, str]]:
    """(rule index, field) for every match condition on a field its event never carries: such a rule
    would silently never apply."""
    found = []
    for i, rule in enumerate(rule_set.rules):
        allowed = matchable(rule.on)
        if allowed is None:
            continue
        found += [(i, key) for key in rule.match if key not in allowed]
    return found
