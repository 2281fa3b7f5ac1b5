"""What the workflow hands to the record activity, and the suggestion as readers see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from services.suggestions import domain
from services.suggestions.lifecycle import Happening, Suggestion

RECORD_ACTIVITY = "record_suggestion"


@dataclass
class Record:
    """Steps `first_seq` … of a suggestion, with its state after them."""

    state: dict[str, Any]
    happened: list[Happening]
    first_seq: int
    at: datetime


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def view(s: Suggestion) -> dict[str, Any]:
    """The suggestion without its timeline: the GET body, the projection row, every event's data."""
    outcome = s.outcome_class
    reply, request = s.reply, s.extension_request
    return {
        "id": s.id, "title": s.title, "content": s.content, "lead_deputy_id": s.lead_deputy_id,
        "co_signer_ids": list(s.co_signer_ids), "region_code": s.region_code, "year": s.year,
        "years": list(s.years), "term": domain.term_of(s.list_year, s.term_first_year, s.term_number), "kind": s.kind,
        "micro": s.micro, "status": str(s.status), "outcome": s.outcome,
        "outcome_label": outcome.label if outcome else None, "reference": bool(outcome and outcome.reference),
        "key": s.key, "key_requested": s.key_requested, "supervisor": s.supervisor,
        "lead_unit_id": s.lead_unit_id, "assisting_unit_ids": list(s.assisting_unit_ids),
        "assigned_at": _iso(s.assigned_at), "due_at": _iso(s.due_at), "extended": s.extended,
        "extension_request": None if request is None else {
            "unit_id": request.unit_id, "reason": request.reason, "months": request.months,
            "at": request.at.isoformat(),
        },
        "assisting_due_at": _iso(s.assisting_due_at), "assisting_views": list(s.assisting_views),
        "meetings": list(s.meetings), "dissatisfied": s.dissatisfied,
        # the classes this suggestion's reply is given in: its region's, as they were when it was submitted
        "outcome_classes": [asdict(c) for c in s.outcomes],
        "reply": None if reply is None else {
            "unit_id": reply.unit_id, "content": reply.content, "outcome": reply.outcome,
            "planned_year": reply.planned_year, "public": reply.public, "at": reply.at.isoformat(),
        },
        "next_review_at": _iso(s.next_review_at), "review_year": s.review_year,
        "repeat_of": s.repeat_of, "topic_id": s.topic_id,
        "submitted_at": s.submitted_at.isoformat(), "closed_at": _iso(s.closed_at), "seq": s.seq,
    }
