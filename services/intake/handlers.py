"""Bus side of the intake service.

- `identity.deputy.updated` keeps the deputies' stations at hand, so a deputy's list holds the
  reports aimed at their stations too.
- `routing.report.classified`, `routing.ticket.created` and `routing.ticket.updated` turn
  routing's work into the report's status and the citizen's timeline. Ticket news is applied
  newest-wins by the ticket's `version` (`lifecycle.superseded_by`): an older event is
  acknowledged, logged and counted in `minyi_stale_ticket_news_total`, and changes nothing. An
  event without a version (from a routing not yet upgraded) is applied as it comes.
- `routing.hotspot.progressed` tells each member report's citizen what became of the hotspot
  (共性事项) it joined, on their receipt (`hotspot_news`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Counter
from sqlalchemy import event as orm_event
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.intake import clock, hotspot_news, lifecycle, timers
from services.intake.models import DeputyView, Report
from shared import events
from shared.bus.consumer import BadEvent, Subscription, each
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime

log = logging.getLogger("minyi.intake.handlers")

# `failed`: the platform refused the ticket for good; like `returned`, it comes back to the deputy.
GRID_STATUSES = frozenset({"accepted", "in_progress", "resolved", "returned", "failed"})
# The most events one fetch brings and one transaction applies.
BATCH = 32


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    stale_news = Counter("minyi_stale_ticket_news", "Routing ticket events set aside: an equal or newer version "
                         "of the ticket's news was applied before", ["event"], registry=runtime.metrics.registry)

    async def old_news(event: CloudEvent, ticket: events.TicketEvent, session: AsyncSession, report: Report) -> bool:
        """Whether the event is older than the ticket news already applied (then it is only logged)."""
        ticket_id, version = ticket.ticket_id, ticket.version
        newer = await lifecycle.superseded_by(session, report, ticket_id, version)
        if newer is None:
            return False
        log.info("%s %s of ticket %s (report %s) is version %s, version %s was applied before: set aside",
                 event.type, event.id, ticket_id, report.id, version, newer)

        def count(_session: Session) -> None:
            stale_news.labels(event.type).inc()

        # Counted once the transaction holds: a rolled-back attempt comes again and is counted then.
        orm_event.listen(session.sync_session, "after_commit", count, once=True)
        return True

    async def deputy_updated(event: CloudEvent, session: AsyncSession) -> None:
        deputy = event.payload(events.DeputyUpdated)
        stmt = insert(DeputyView).values(id=deputy.id, region_code=deputy.region_code,
                                         station_ids=list(deputy.station_ids), version=deputy.version)
        # Events can arrive out of order after a redelivery; the higher version wins.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={"region_code": stmt.excluded.region_code,
                                         "station_ids": stmt.excluded.station_ids, "version": stmt.excluded.version},
            where=DeputyView.version < stmt.excluded.version,
        ))

    async def classified(event: CloudEvent, session: AsyncSession) -> None:
        decision = event.payload(events.ReportClassified)
        await session.execute(update(Report).where(Report.id == decision.report_id)
                              .values(category=decision.category))

    async def ticket_created(event: CloudEvent, session: AsyncSession) -> None:
        ticket = event.payload(events.TicketCreated)
        report = await lifecycle.lock(session, ticket.report_id)
        if report is None:
            raise BadEvent(f"routing.ticket.created {event.id} names an unknown report")
        if await old_news(event, ticket, session, report):
            return
        await lifecycle.dispatch(runtime, session, report, ticket_id=ticket.ticket_id,
                                 platform_id=ticket.platform_id, at=ticket.at)

    async def ticket_updated(event: CloudEvent, session: AsyncSession) -> None:
        ticket = event.payload(events.TicketUpdated)
        status = ticket.status
        if status not in GRID_STATUSES:
            raise BadEvent(f"routing.ticket.updated {event.id} has status {status!r}, which is no platform's news")
        report = await lifecycle.lock(session, ticket.report_id)
        if report is None:
            raise BadEvent(f"routing.ticket.updated {event.id} names an unknown report")
        if await old_news(event, ticket, session, report):
            return
        if report.ticket_id is None and status != "failed":
            # routing.ticket.created comes through another consumer and can come later; the platform's
            # word proves the ticket reached it (a refused ticket never did).
            await lifecycle.dispatch(runtime, session, report, ticket_id=ticket.ticket_id,
                                     platform_id=ticket.platform_id, at=ticket.at)
        # The book through this session: a handler holding a connection and the report's lock must not
        # wait for a second connection from a pool its peers, waiting for that lock, may have emptied.
        await lifecycle.grid_update(runtime, session, report, await clock.book(runtime, session),
                                    ticket_id=ticket.ticket_id, status=status, note_text=ticket.note, at=ticket.at)

    async def hotspot_progressed(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.apply(session, event)

    identity, routing = STREAMS["identity"].name, STREAMS["routing"].name
    # Each fetch is applied in one transaction, event after event in stream order (`each`): routing
    # sends three events for every report, and handled one by one in transactions of their own they
    # cost intake more than accepting the report did.
    return (
        Subscription("identity.deputy.updated", identity, "intake-deputies", deputy_updated,
                     "keeps each deputy's stations, for the deputy's own list",
                     concurrency=BATCH, batch=each(deputy_updated)),
        Subscription("routing.report.classified", routing, "intake-classified", classified,
                     "the category routing gave a report", concurrency=BATCH, batch=each(classified)),
        Subscription("routing.ticket.created", routing, "intake-ticket-created", ticket_created,
                     "the report went to a grid platform: status dispatched",
                     concurrency=BATCH, batch=each(ticket_created)),
        Subscription("routing.ticket.updated", routing, "intake-ticket-updated", ticket_updated,
                     "a grid platform's status: resolved answers the report, returned hands it back",
                     concurrency=BATCH, batch=each(ticket_updated)),
        Subscription("routing.hotspot.progressed", routing, "intake-hotspot-progressed", hotspot_progressed,
                     "what became of the hotspot (共性事项) a report joined, on each member's receipt",
                     concurrency=BATCH, batch=each(hotspot_progressed)),
    )


def workers(runtime: Runtime) -> Sequence[Callable[[], Awaitable[None]]]:
    from services.intake.attachments_api import sweeper

    return (timers.worker(runtime), sweeper(runtime))
