"""Bus subscriptions of the scoring service: deputies from identity, points from intake's reports and
from suggestions, the units' board from suggestions' replies and evaluations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain, ledger
from services.scoring.facts import Facts, report_facts, suggestion_facts
from services.scoring.models import DeputyRow
from shared import events
from shared.bus.consumer import Delivered, Subscription, one_by_one
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime

SATISFIED = ("satisfied", "basically_satisfied")
DEPUTIES, REPORTS, SUGGESTIONS = "scoring-deputies", "scoring-reports", "scoring-suggestions"
# Messages in hand at once per subscription, and so the largest batch written in one transaction.
BATCH = 64


async def deputy_updated(event: CloudEvent, session: AsyncSession) -> None:
    d = event.payload(events.DeputyUpdated)
    stmt = insert(DeputyRow).values(id=d.id, name=d.name, level=d.level, region_code=d.region_code, version=d.version)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={k: stmt.excluded[k] for k in ("name", "level", "region_code", "version")},
        where=DeputyRow.version < stmt.excluded.version))


def unit_fact(event: CloudEvent, found: Facts) -> dict[str, Any] | None:
    """What a reply or an evaluation says about its lead unit, for the board."""
    suggestion = event.payload(events.SuggestionEvent)
    kind = event.type.rsplit(".", 1)[1]
    if not suggestion.lead_unit_id or kind not in ("replied", "evaluated"):
        return None
    facts = found.values
    good = bool(facts.get("on_time", True)) if kind == "replied" else facts.get("result") in SATISFIED
    return {"event_id": event.id, "unit_id": suggestion.lead_unit_id, "at": found.at, "region_code": found.region_code,
            "suggestion_id": suggestion.id, "kind": "reply" if kind == "replied" else "evaluation", "good": good}


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
    def _entries(sets: list[domain.RuleSet], event: CloudEvent, found: Facts) -> list[ledger.NewEntry]:
        rules = domain.in_force(sets, found.region_code, ledger.day_of(found.at))
        awards = domain.awards(rules, event.type, found.values, found.people, event.id)
        return ledger.entries_of(rules, awards, found.at, event.type, event.id) if awards else []

    async def reports(self, batch: Sequence[Delivered], session: AsyncSession) -> None:
        sets = await self.rules(session)
        entries: list[ledger.NewEntry] = []
        for d in batch:
            found = report_facts(d.event)
            if found is not None:
                entries += self._entries(sets, d.event, found)
        await ledger.record(self.runtime, session, entries, {d.event.id: d.trace for d in batch})

    async def suggestions(self, batch: Sequence[Delivered], session: AsyncSession) -> None:
        sets = await self.rules(session)
        entries: list[ledger.NewEntry] = []
        for d in batch:
            found = suggestion_facts(d.event)
            entries += self._entries(sets, d.event, found)
            fact = unit_fact(d.event, found)
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
