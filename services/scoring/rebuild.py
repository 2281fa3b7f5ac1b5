"""Rebuild the ledger, its totals, the rules, the published rankings and the units' board from the streams.

First SCORING itself (kept with no age limit): every rules version, every entry as it was
recorded (staff activities and corrections included) and every publication. Then the sources
through the same code the live consumers run: deputies from IDENTITY, reports from INTAKE,
suggestions from SUGGESTIONS. An entry has the same id however it is derived, and each source
event is claimed in the inbox under its live consumer's name, so nothing counts twice, and a
rebuild may run into an empty schema or over a live one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain, ledger, rankings_store
from services.scoring.handlers import DEPUTIES, REPORTS, SUGGESTIONS, Scorer, deputy_updated
from services.scoring.models import INBOX
from shared.bus import inbox
from shared.bus.consumer import POISON
from shared.bus.envelope import CloudEvent
from shared.bus.replay import Progress, Replayed, replay
from shared.contracts import STREAMS
from shared.db import Database

log = logging.getLogger("minyi.scoring.rebuild")


async def own_event(event: CloudEvent, session: AsyncSession) -> None:
    d = event.data
    if event.type == "scoring.points.recorded":
        await ledger.record(None, session, [ledger.NewEntry.from_event(d)])
    elif event.type == "scoring.rules.changed":
        rs = domain.rule_set_of(d["region_code"], datetime.fromisoformat(d["effective_from"]).date(),
                                int(d["version"]), d)
        await ledger.store_rule_set(session, rs, str(d.get("recorded_by") or "replay"))
    elif event.type == "scoring.ranking.published":
        # One page of a publication (the whole ranking, for those published before pages).
        await rankings_store.store_page(session, d)


async def rebuild(db: Database, js: JetStreamContext, progress: Progress | None = None) -> Replayed:
    done = Replayed()

    def through(handler: Callable[[CloudEvent, AsyncSession], Awaitable[None]],
                consumer: str | None) -> Callable[[list[CloudEvent]], Awaitable[None]]:
        async def apply(events: list[CloudEvent]) -> None:
            async with db.transaction() as session:
                for event in events:
                    if consumer is not None and not await inbox.claim(
                            session, INBOX, consumer=consumer, event_id=event.id, subject=event.type):
                        continue
                    try:
                        async with session.begin_nested():
                            await handler(event, session)
                    except POISON as exc:  # the live consumer dead-lettered it too
                        done.malformed += 1
                        log.warning("rebuild: %s %s skipped: %s", event.type, event.id, exc)
        return apply

    async def add(stream: str, subject: str, handler: Callable[[CloudEvent, AsyncSession], Awaitable[None]],
                  consumer: str | None) -> None:
        try:
            await js.stream_info(stream)
        except Exception as exc:  # a stream nobody has declared yet holds nothing to replay
            if progress:
                progress(f"{stream}: {type(exc).__name__}: {exc}; skipped")
            return
        got = await replay(js, stream, subject, through(handler, consumer), progress=progress)
        done.events += got.events
        done.malformed += got.malformed
        done.seconds += got.seconds

    await add(STREAMS["scoring"].name, "scoring.>", own_event, None)
    async with db.transaction() as session:
        sets = await ledger.load_rule_sets(session)

    async def rules(_: AsyncSession) -> list[domain.RuleSet]:
        return sets

    scorer = Scorer(rules, None)
    await add(STREAMS["identity"].name, "identity.deputy.updated", deputy_updated, DEPUTIES)
    await add(STREAMS["intake"].name, "intake.report.>", scorer.report_event, REPORTS)
    await add(STREAMS["suggestions"].name, "suggestions.suggestion.>", scorer.suggestion_event, SUGGESTIONS)
    return done

