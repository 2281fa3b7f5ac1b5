"""Routing's `routing.hotspot.progressed` on the citizens' receipts (全程可视).

When a report joins a hotspot (共性事项), and as that hotspot becomes a supervision topic, a key
suggestion, is answered, followed up and solved (or is closed), each member report's public
timeline gets one entry worded by `lineage.note`. The report's status and clocks do not change:
this is news about the matter, not handling of the report.

The same step is written once per report: an entry carries a key (`lineage.dedupe_key`) that is
unique per report, so a redelivered or replayed announcement adds nothing. Reports intake does
not hold (another installation's, or deleted) are passed over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import lineage
from services.intake.models import Report, TimelineEntry
from shared.bus.consumer import BadEvent
from shared.bus.envelope import CloudEvent

log = logging.getLogger("minyi.intake.hotspot_news")

# The timeline's `actor` of these entries: the receipt shows them as the matter's, not the report's.
ACTOR = "lineage"
# A converted hotspot may count hundreds of reports; one statement per this many keeps each small.
CHUNK = 500


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def apply(session: AsyncSession, event: CloudEvent) -> int:
    """Write the step's entry on every member report intake holds; how many were new."""
    try:
        progress = lineage.parse(event.data)
    except lineage.Malformed as exc:
        raise BadEvent(f"{event.type} {event.id}: {exc}") from exc
    text = lineage.note(progress)
    key = lineage.dedupe_key(progress, event.id)
    at = progress.at or event.time
    written = unknown = 0
    for ids in _chunks(progress.report_ids):
        known = (await session.execute(select(Report.id, Report.status).where(Report.id.in_(ids)))).all()
        unknown += len(ids) - len(known)
        if not known:
            continue
        rows = [{"report_id": r.id, "at": at, "status": r.status, "note": text, "public": True, "actor": ACTOR,
                 "source_event": key} for r in known]
        stmt = insert(TimelineEntry).values(rows).on_conflict_do_nothing(
            index_elements=["report_id", "source_event"]).returning(TimelineEntry.report_id)
        written += len((await session.execute(stmt)).all())
        # Joining names the report's hotspot (a split or merge moves it to another); any later step
        # names it too when the join was missed.
        where = (Report.hotspot_id.is_distinct_from(progress.hotspot_id) if progress.step == "joined"
                 else Report.hotspot_id.is_(None))
        await session.execute(update(Report).where(Report.id.in_([r.id for r in known]), where)
                              .values(hotspot_id=progress.hotspot_id))
    if unknown:
        log.info("%s %s (%s of hotspot %s): %d of %d reports are not intake's; passed over", event.type, event.id,
                 progress.step, progress.hotspot_id, unknown, len(progress.report_ids))
    return written
