"""The workflow's one side effect: record its steps in the projection, the timeline and the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opentelemetry import trace
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity

from services.suggestions.lifecycle import Happening
from services.suggestions.models import SuggestionRow, TimelineEntry
from services.suggestions.projection import RECORD_ACTIVITY, Record
from shared.service import Runtime

tracer = trace.get_tracer("minyi.suggestions")


def row_values(state: dict[str, Any]) -> dict[str, Any]:
    """The projection row of a suggestion's state (the view the workflow hands over)."""

    def when(name: str) -> datetime | None:
        value = state.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    reply = state.get("reply") or {}
    repeat = state.get("repeat_of") or {}
    return {
        "id": state["id"], "title": state["title"], "content": state["content"],
        "lead_deputy_id": state["lead_deputy_id"], "co_signer_ids": state["co_signer_ids"],
        "region_code": state["region_code"], "year": state["year"], "years": state["years"], "term": state["term"],
        "kind": state["kind"], "micro": state["micro"], "key": state["key"], "status": state["status"],
        "outcome": state["outcome"], "reference": state["reference"], "lead_unit_id": state["lead_unit_id"],
        "assisting_unit_ids": state["assisting_unit_ids"], "due_at": when("due_at"),
        "next_review_at": when("next_review_at"), "repeat_of": repeat.get("id"), "topic_id": state.get("topic_id"),
        "reply_public": bool(reply.get("public")), "replied_at": datetime.fromisoformat(reply["at"]) if reply else None,
        "submitted_at": when("submitted_at"), "closed_at": when("closed_at"), "state": state, "seq": state["seq"],
    }


def event_type(kind: str) -> str:
    return f"suggestions.suggestion.{kind}"


def event_data(state: dict[str, Any], seq: int, step: Happening, at: datetime) -> dict[str, Any]:
    """What each step publishes: the state after it, and the step as the timeline holds it."""
    return {**state, "step": {"seq": seq, "kind": step.kind, "actor": step.actor, "note": step.note,
                              "at": at.isoformat(), "data": step.data}}


async def write_step(session: Any, suggestion_id: str, seq: int, step: Happening, at: datetime) -> bool:
    """The timeline entry of one step, unless it is there already; whether it was new."""
    inserted = await session.scalar(
        insert(TimelineEntry).values(suggestion_id=suggestion_id, seq=seq, at=at, kind=step.kind,
                                     actor=step.actor, note=step.note, data=step.data)
        .on_conflict_do_nothing(index_elements=["suggestion_id", "seq"]).returning(TimelineEntry.seq))
    return inserted is not None


async def write_row(session: Any, state: dict[str, Any]) -> None:
    """The projection row, unless a later state of the suggestion is there already."""
    values = row_values(state)
    stmt = insert(SuggestionRow).values(**values)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={**{k: stmt.excluded[k] for k in values if k != "id"}, "updated_at": func.now()},
        where=SuggestionRow.seq < stmt.excluded.seq))


async def apply(runtime: Runtime, session: Any, rec: Record) -> int:
    """Write one record; steps already written (an activity retried after its commit) are skipped.
    Returns how many steps were new."""
    state = rec.state
    new = 0
    for offset, step in enumerate(rec.happened):
        seq = rec.first_seq + offset
        if await write_step(session, state["id"], seq, step, rec.at):
            new += 1
            await runtime.emit(session, event_type(step.kind), event_data(state, seq, step, rec.at),
                               subject=state["id"])
            # The workflow decided on someone's request; its step is the decision on record.
            await runtime.record_audit(session, step.actor, f"suggestion.{step.kind}", subject_type="suggestion",
                                       subject_id=state["id"], region_code=state["region_code"],
                                       detail={"seq": seq, "note": step.note, **step.data})
    await write_row(session, state)
    return new


class Recorder:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @activity.defn(name=RECORD_ACTIVITY)
    async def record(self, rec: Record) -> int:
        # A span of its own, child of whoever started the workflow step: the events it stages carry it.
        with tracer.start_as_current_span(f"{RECORD_ACTIVITY} activity", attributes={
                "suggestion.id": rec.state["id"], "suggestion.steps": [s.kind for s in rec.happened]}):
            async with self.runtime.transaction() as session:
                return await apply(self.runtime, session, rec)
