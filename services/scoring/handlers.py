"""Bus subscriptions of the scoring service: deputies from identity, points from intake's reports and
from suggestions, the units' board from suggestions' replies and evaluations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain, ledger
from services.scoring.models import DeputyRow
from shared.bus.consumer import BadEvent, Delivered, Subscription, one_by_one
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime

SATISFIED = ("satisfied", "basically_satisfied")
DEPUTIES, REPORTS, SUGGESTIONS = "scoring-deputies", "scoring-reports", "scoring-suggestions"
# Messages in hand at once per subscription, and so the largest batch written in one transaction.
BATCH = 64


def _text(event: CloudEvent, data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"{event.type} {event.id} has no {name}")
    return value


def _time(event: CloudEvent, value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise BadEvent(f"{event.type} {event.id}: {value!r} is not a time with a zone")
    return at


async def deputy_updated(event: CloudEvent, session: AsyncSession) -> None:
    d = event.data
    version = d.get("version")
    if not isinstance(version, int):
        raise BadEvent(f"identity.deputy.updated {event.id} lacks a version")
    stmt = insert(DeputyRow).values(id=_text(event, d, "id"), name=_text(event, d, "name"),
                                    level=_text(event, d, "level"), region_code=_text(event, d, "region_code"),
                                    version=version)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={k: stmt.excluded[k] for k in ("name", "level", "region_code", "version")},
        where=DeputyRow.version < stmt.excluded.version))


def report_facts(event: CloudEvent) -> tuple[dict[str, Any], dict[domain.Role, list[str]], datetime, str] | None:
    """What a report event says to the rules: its data, its deputy, when, and its region."""
    d = event.data
    deputy_id = d.get("deputy_id")
    if not deputy_id:
        return None  # a report to a station scores no deputy
    # Not every report event says when (a submission does not): the envelope's time stands in.
    at = _time(event, d["at"]) if d.get("at") else event.time
    return d, {domain.Role.DEPUTY: [str(deputy_id)]}, at, _text(event, d, "region_code")


def suggestion_facts(event: CloudEvent) -> tuple[dict[str, Any], dict[domain.Role, list[str]], datetime, str]:
    d = event.data
    step = d.get("step")
    if not isinstance(step, dict):
        raise BadEvent(f"{event.type} {event.id} has no step")
    facts = {**d, **(step.get("data") or {}), "from_topic": bool(d.get("topic_id"))}
    people = {domain.Role.LEAD: [_text(event, d, "lead_deputy_id")],
              domain.Role.CO_SIGNER: [str(c) for c in d.get("co_signer_ids") or []]}
    return facts, people, _time(event, step.get("at")), _text(event, d, "region_code")


def unit_fact(event: CloudEvent, facts: dict[str, Any], at: datetime, region_code: str) -> dict[str, Any] | None:
    """What a reply or an evaluation says about its lead unit, for the board."""
    unit_id = event.data.get("lead_unit_id")
    kind = event.type.rsplit(".", 1)[1]
    if not unit_id or kind not in ("replied", "evaluated"):
        return None
    good = bool(facts.get("on_time", True)) if kind == "replied" else facts.get("result") in SATISFIED
    return {"event_id": event.id, "unit_id": str(unit_id), "at": at, "region_code": region_code,
            "suggestion_id": _text(event, event.data, "id"), "kind": "reply" if kind == "replied" else "evaluation",
            "good": good}


class Scorer:
    """Turns report and suggestion events into entries and board facts, many events at a time. Live,
    it publishes each entry and reads the rules through the runtime's cache; in a rebuild it
    publishes nothing."""

    def __init__(self, rules: Callable[[AsyncSession], Awaitable[list[domain.RuleSet]]],
                 runtime: Runtime | None) -> None:
        self.rules, self.runtime = rules, runtime
        self.report_event = one_by_one(self.reports)
        self.suggestion_event = one_by_one(self.suggestions)

    @staticmethod
    def _entries(sets: list[domain.RuleSet], event: CloudEvent, facts: dict[str, Any],
                 people: dict[domain.Role, list[str]], at: datetime, region_code: str) -> list[ledger.NewEntry]:
        rules = domain.in_force(sets, region_code, ledger.day_of(at))
        awards = domain.awards(rules, event.type, facts, people, event.id)
        return ledger.entries_of(rules, awards, at, event.type, event.id) if awards else []

    async def reports(self, batch: Sequence[Delivered], session: AsyncSession) -> None:
        sets = await self.rules(session)
        entries: list[ledger.NewEntry] = []
        for d in batch:
            found = report_facts(d.event)
            if found is not None:
                entries += self._entries(sets, d.event, *found)
        await ledger.record(self.runtime, session, entries, {d.event.id: d.trace for d in batch})

    async def suggestions(self, batch: Sequence[Delivered], session: AsyncSession) -> None:
        sets = await self.rules(session)
        entries: list[ledger.NewEntry] = []
        for d in batch:
            facts, people, at, region_code = suggestion_facts(d.event)
            entries += self._entries(sets, d.event, facts, people, at, region_code)
            fact = unit_fact(d.event, facts, at, region_code)
            if fact is not None:
                await ledger.add_fact(session, **fact)
        await ledger.record(self.runtime, session, entries, {d.event.id: d.trace for d in batch})


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    scorer = Scorer(lambda session: ledger.rule_sets(runtime, session), runtime)
    return (
        Subscription("identity.deputy.updated", STREAMS["identity"].name, DEPUTIES, deputy_updated,
                     "who is ranked, at which level and in which region"),
        Subscription("intake.report.>", STREAMS["intake"].name, REPORTS, scorer.report_event,
                     "points for reports acknowledged and answered in time (or late), and for citizens' ratings",
                     concurrency=BATCH, batch=scorer.reports),
        Subscription("suggestions.suggestion.>", STREAMS["suggestions"].name, SUGGESTIONS, scorer.suggestion_event,
                     "points for suggestions led, co-signed, made key or born of a hotspot; the units' board",
                     concurrency=BATCH, batch=scorer.suggestions),
    )
