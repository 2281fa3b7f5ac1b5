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
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import event as orm_event
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.intake import clock, hotspot_news, lifecycle, timers
from services.intake.models import DeputyView, Report
from shared.bus.consumer import BadEvent, Subscription
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime

log = logging.getLogger("minyi.intake.handlers")

# `failed`: the platform refused the ticket for good; like `returned`, it comes back to the deputy.
GRID_STATUSES = frozenset({"accepted", "in_progress", "resolved", "returned", "failed"})


def _field(event: CloudEvent, name: str) -> str:
    value = event.data.get(name)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"{event.type} {event.id} has no {name}")
    return value


def _time(event: CloudEvent) -> datetime:
    raw = event.data.get("at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError as exc:
            raise BadEvent(f"{event.type} {event.id}: 'at' is not a time") from exc
    return event.time


def _version(event: CloudEvent) -> int | None:
    raw = event.data.get("version")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise BadEvent(f"{event.type} {event.id}: 'version' is not a positive integer")
    return raw


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    stale_news = Counter("minyi_stale_ticket_news", "Routing ticket events set aside: an equal or newer version "
                         "of the ticket's news was applied before", ["event"], registry=runtime.metrics.registry)

    async def old_news(event: CloudEvent, session: AsyncSession, report: Report) -> bool:
        """Whether the event is older than the ticket news already applied (then it is only logged)."""
        ticket_id, version = _field(event, "ticket_id"), _version(event)
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
        deputy_id = _field(event, "id")
        version = event.data.get("version")
        stations = event.data.get("station_ids") or []
        if not isinstance(version, int) or not isinstance(stations, list):
            raise BadEvent(f"identity.deputy.updated {event.id} lacks version or station_ids")
        stmt = insert(DeputyView).values(id=deputy_id, region_code=_field(event, "region_code"),
                                         station_ids=[str(s) for s in stations], version=version)
        # Events can arrive out of order after a redelivery; the higher version wins.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={"region_code": stmt.excluded.region_code,
                                         "station_ids": stmt.excluded.station_ids, "version": stmt.excluded.version},
            where=DeputyView.version < stmt.excluded.version,
        ))

    async def classified(event: CloudEvent, session: AsyncSession) -> None:
        category = _field(event, "category")
        await session.execute(update(Report).where(Report.id == _field(event, "report_id"))
                              .values(category=category))

    async def ticket_created(event: CloudEvent, session: AsyncSession) -> None:
        report = await lifecycle.lock(session, _field(event, "report_id"))
        if report is None:
            raise BadEvent(f"routing.ticket.created {event.id} names an unknown report")
        if await old_news(event, session, report):
            return
        platform = event.data.get("platform_id")
        await lifecycle.dispatch(runtime, session, report, ticket_id=_field(event, "ticket_id"),
                                 platform_id=platform if isinstance(platform, str) else None, at=_time(event))

    async def ticket_updated(event: CloudEvent, session: AsyncSession) -> None:
        status = _field(event, "status")
        if status not in GRID_STATUSES:
            raise BadEvent(f"routing.ticket.updated {event.id} has unknown status {status!r}")
        report = await lifecycle.lock(session, _field(event, "report_id"))
        if report is None:
            raise BadEvent(f"routing.ticket.updated {event.id} names an unknown report")
        if await old_news(event, session, report):
            return
        ticket_id, at = _field(event, "ticket_id"), _time(event)
        if report.ticket_id is None and status != "failed":
            # routing.ticket.created comes through another consumer and can come later; the platform's
            # word proves the ticket reached it (a refused ticket never did).
            platform = event.data.get("platform_id")
            await lifecycle.dispatch(runtime, session, report, ticket_id=ticket_id,
                                     platform_id=platform if isinstance(platform, str) else None, at=at)
        note = event.data.get("note")
        # The book through this session: a handler holding a connection and the report's lock must not
        # wait for a second connection from a pool its peers, waiting for that lock, may have emptied.
        await lifecycle.grid_update(runtime, session, report, await clock.book(runtime, session),
                                    ticket_id=ticket_id, status=status,
                                    note_text=note if isinstance(note, str) else None, at=at)

    async def hotspot_progressed(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.apply(session, event)

    identity, routing = STREAMS["identity"].name, STREAMS["routing"].name
    return (
        Subscription("identity.deputy.updated", identity, "intake-deputies", deputy_updated,
                     "keeps each deputy's stations, for the deputy's own list"),
        Subscription("routing.report.classified", routing, "intake-classified", classified,
                     "the category routing gave a report", concurrency=8),
        Subscription("routing.ticket.created", routing, "intake-ticket-created", ticket_created,
                     "the report went to a grid platform: status dispatched", concurrency=8),
        Subscription("routing.ticket.updated", routing, "intake-ticket-updated", ticket_updated,
                     "a grid platform's status: resolved answers the report, returned hands it back"),
        Subscription("routing.hotspot.progressed", routing, "intake-hotspot-progressed", hotspot_progressed,
                     "what became of the hotspot (共性事项) a report joined, on each member's receipt"),
    )


def workers(runtime: Runtime) -> Sequence[Callable[[], Awaitable[None]]]:
    from services.intake.attachments_api import sweeper

    return (timers.worker(runtime), sweeper(runtime))
