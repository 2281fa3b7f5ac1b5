"""Writing the ledger: entries with their running totals and their `scoring.points.recorded` events,
the rules in force, and the units' board facts. Every write is idempotent on its id."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain
from services.scoring.models import Entry, RuleSetRow, UnitFact
from shared.bus.outbox import Outgoing
from shared.service import Runtime

RULES_CACHE_SECONDS = 30.0

# One statement for a whole batch: one row per deputy and year, in a fixed order, so two batches
# that touch the same deputies lock their totals rows in the same order and cannot deadlock.
_ADD_TO_TOTALS = text("""
INSERT INTO scoring.totals AS t (deputy_id, year, base_sum, bonus_sum, total, dimensions)
SELECT v.deputy_id, v.year, v.base, v.bonus, LEAST(100, GREATEST(0, v.base)) + GREATEST(0, v.bonus),
       (SELECT jsonb_object_agg(d.key, CAST(d.value AS numeric)) FROM jsonb_each_text(v.dims) AS d)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(deputy_id text, year int, base numeric, bonus numeric, dims jsonb)
ORDER BY v.deputy_id, v.year
ON CONFLICT (deputy_id, year) DO UPDATE SET
    base_sum = t.base_sum + EXCLUDED.base_sum,
    bonus_sum = t.bonus_sum + EXCLUDED.bonus_sum,
    total = LEAST(100, GREATEST(0, t.base_sum + EXCLUDED.base_sum)) + GREATEST(0, t.bonus_sum + EXCLUDED.bonus_sum),
    dimensions = (
        SELECT jsonb_object_agg(k.key, COALESCE(CAST(t.dimensions ->> k.key AS numeric), 0)
                                       + COALESCE(CAST(EXCLUDED.dimensions ->> k.key AS numeric), 0))
        FROM (SELECT jsonb_object_keys(t.dimensions) UNION SELECT jsonb_object_keys(EXCLUDED.dimensions)) AS k(key))
""")

# Built once and run for many rows at a time (one multi-row INSERT): a statement made per entry cost
# more in SQLAlchemy than the insert in PostgreSQL.
_ENTRIES = Entry.__table__
_INSERT_ENTRY = (
    insert(_ENTRIES)
    .values({c: bindparam(c, type_=_ENTRIES.c[c].type) for c in (
        "id", "deputy_id", "year", "at", "points", "part", "dimension", "rule_code", "rule_region", "rule_version",
        "source", "source_id", "reason", "recorded_by", "evidence", "reverses")})
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(_ENTRIES.c.id)
)


@dataclass(frozen=True)
class NewEntry:
    id: str
    deputy_id: str
    at: datetime
    points: float
    part: str
    dimension: str
    rule_code: str
    rule_region: str
    rule_version: int
    source: str
    source_id: str
    reason: str
    recorded_by: str | None = None
    evidence: dict[str, Any] | None = None
    reverses: str | None = None

    @property
    def year(self) -> int:
        return domain.year_of(self.at)

    def as_event(self) -> dict[str, Any]:
        return {"id": self.id, "deputy_id": self.deputy_id, "year": self.year, "at": self.at.isoformat(),
                "points": self.points, "part": self.part, "dimension": self.dimension, "rule_code": self.rule_code,
                "rule_region": self.rule_region, "rule_version": self.rule_version, "source": self.source,
                "source_id": self.source_id, "reason": self.reason, "recorded_by": self.recorded_by,
                "evidence": self.evidence, "reverses": self.reverses}

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> NewEntry:
        fields = {k: data.get(k) for k in cls.__dataclass_fields__}
        fields["at"] = datetime.fromisoformat(data["at"])
        fields["points"] = float(data["points"])
        return cls(**fields)


def entries_of(rules: domain.RuleSet, awards: Sequence[domain.Award], at: datetime, source: str,
               source_id: str, *, recorded_by: str | None = None, evidence: dict[str, Any] | None = None,
               note: str | None = None) -> list[NewEntry]:
    return [NewEntry(a.entry_id, a.deputy_id, at, a.rule.points, a.rule.part.value, a.rule.dimension.value,
                     a.rule.code, rules.region_code, rules.version, source, source_id,
                     a.rule.label + (f"：{note}" if note else ""), recorded_by, evidence)
            for a in awards]


def totals_delta(entries: Sequence[NewEntry]) -> list[dict[str, Any]]:
    """What the entries add to each deputy's year, summed exactly, ordered by deputy and year."""
    sums: dict[tuple[str, int], tuple[Decimal, Decimal, dict[str, Decimal]]] = {}
    for e in entries:
        base, bonus, dims = sums.get((e.deputy_id, e.year), (Decimal(0), Decimal(0), {}))
        points = Decimal(str(e.points))
        if e.part == domain.Part.BASE:
            base += points
        else:
            bonus += points
        dims[e.dimension] = dims.get(e.dimension, Decimal(0)) + points
        sums[(e.deputy_id, e.year)] = (base, bonus, dims)
    return [{"deputy_id": deputy, "year": year, "base": str(base), "bonus": str(bonus),
             "dims": {k: str(v) for k, v in dims.items()}}
            for (deputy, year), (base, bonus, dims) in sorted(sums.items())]


async def record(runtime: Runtime | None, session: AsyncSession, entries: Sequence[NewEntry],
                 traces: Mapping[str, dict[str, str]] | None = None) -> list[NewEntry]:
    """Append the entries not there yet, add them to their totals, and (with a runtime) publish
    each; returns the new ones. Without a runtime (a rebuild) nothing is published again. `traces`
    gives, by source id, the trace each entry's event continues (the current one otherwise)."""
    unique = list({e.id: e for e in entries}.values())
    if not unique:
        return []
    result = await session.execute(_INSERT_ENTRY, [{
        "id": e.id, "deputy_id": e.deputy_id, "year": e.year, "at": e.at, "points": e.points, "part": e.part,
        "dimension": e.dimension, "rule_code": e.rule_code, "rule_region": e.rule_region,
        "rule_version": e.rule_version, "source": e.source, "source_id": e.source_id, "reason": e.reason,
        "recorded_by": e.recorded_by, "evidence": e.evidence, "reverses": e.reverses} for e in unique])
    inserted = set(result.scalars())
    new = [e for e in unique if e.id in inserted]
    if not new:
        return []
    await session.execute(_ADD_TO_TOTALS, {"rows": json.dumps(totals_delta(new))})
    if runtime is not None:
        await runtime.emit_many(session, [
            Outgoing("scoring.points.recorded", e.as_event(), e.deputy_id, (traces or {}).get(e.source_id))
            for e in new])
    return new


async def add_fact(session: AsyncSession, *, event_id: str, unit_id: str, at: datetime, region_code: str,
                   suggestion_id: str, kind: str, good: bool) -> None:
    await session.execute(insert(UnitFact).values(
        event_id=event_id, unit_id=unit_id, year=domain.year_of(at), region_code=region_code,
        suggestion_id=suggestion_id, kind=kind, good=good).on_conflict_do_nothing(index_elements=["event_id"]))


# ---- rules ----------------------------------------------------------------------------------------


async def load_rule_sets(session: AsyncSession) -> list[domain.RuleSet]:
    rows = (await session.scalars(select(RuleSetRow))).all()
    return [domain.rule_set_of(r.region_code, r.effective_from, r.version, r.doc) for r in rows]


async def rule_sets(runtime: Runtime, session: AsyncSession) -> list[domain.RuleSet]:
    """All versions, cached briefly: a new version takes effect tomorrow at the earliest, so a
    replica that learns of it half a minute late has scored nothing by the wrong rules."""
    cached = runtime.state.get("scoring.rules")
    now = time.monotonic()
    if cached is not None and now - cached[0] < RULES_CACHE_SECONDS:
        return list(cached[1])
    sets = await load_rule_sets(session)
    runtime.state["scoring.rules"] = (now, sets)
    return sets


def forget_rules(runtime: Runtime) -> None:
    runtime.state.pop("scoring.rules", None)


async def store_rule_set(session: AsyncSession, rs: domain.RuleSet, recorded_by: str) -> bool:
    """False when that version of the region is there already (a replay)."""
    doc = domain.rule_set_doc(rs)
    inserted = await session.scalar(insert(RuleSetRow).values(
        region_code=rs.region_code, version=rs.version, effective_from=rs.effective_from,
        doc={k: doc[k] for k in ("rules", "grading", "board")}, recorded_by=recorded_by,
    ).on_conflict_do_nothing().returning(RuleSetRow.version))
    return inserted is not None


def day_of(at: datetime) -> date:
    return at.astimezone(domain.CHINA).date()
