"""Bus side of the routing service.

- `intake.report.submitted`: classify each report, decide who handles it, open its ticket when a
  grid platform does, and place it in a hotspot cluster; all in one transaction per fetched batch
  (a batch that fails is applied again event by event, so a poison event is dead-lettered alone).
- `grid.<platform_id>.events`: statuses from platforms on the nats transport, signed, each believed
  only of the platform its subject names.
- `suggestions.suggestion.*`, `suggestions.topic.closed`, `intake.report.supported`: the life of
  hotspots after they are found (`hotspot_news`).
- The dispatcher workers deliver tickets on the http and open311 transports; the open311 poller
  reads back what those platforms did with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import clustering, domain, hotspot_news, hotspots, meaning, platforms, tickets
from services.routing.classify import Classification, classify
from services.routing.dispatch import Dispatcher
from services.routing.models import GridPlatform, RoutingDecision
from services.routing.open311_dispatch import Open311Dispatcher
from services.routing.open311_poll import Open311Poller
from services.routing.taxonomy import BY_CODE
from shared import events
from shared.bus.consumer import BadEvent, Delivered, Subscription, continuing, one_by_one
from shared.bus.envelope import CloudEvent
from shared.bus.outbox import Outgoing
from shared.contracts import GRID_STREAM, STREAMS
from shared.service import Runtime

log = logging.getLogger("minyi.routing")

DISPATCHER = "routing.dispatcher"
OPEN311_DISPATCHER = "routing.open311_dispatcher"
# Reports in hand at once, and so the most one transaction routes.
BATCH = 32


async def route_reports(runtime: Runtime, session: AsyncSession, batch: Sequence[Delivered]) -> None:
    """Route the reports a fetch brought, in its one transaction: one statement finds those decided
    already, one writes the decisions, one stages their `routing.report.classified` events; tickets
    are opened and reports placed in hotspots one by one, county by county."""
    fresh: dict[str, tuple[Delivered, events.ReportSubmitted]] = {}
    for d in batch:
        report = d.event.payload(events.ReportSubmitted)
        # The same report twice in one batch (published again under another id): routed once.
        fresh.setdefault(report.report_id, (d, report))
    # Decided already: the event came again under another id, e.g. replayed from a backup.
    decided = set((await session.scalars(select(RoutingDecision.report_id).where(
        RoutingDecision.report_id.in_(list(fresh))))).all())
    routed = [(d, report) for report_id, (d, report) in fresh.items() if report_id not in decided]
    if not routed:
        return
    scopes = await platforms.scopes(session)
    now = datetime.now(UTC)
    # The model runs in a worker thread (it releases the GIL) while no lock is held yet.
    meanings = (await asyncio.to_thread(meaning.encode, [report.content for _d, report in routed])
                if runtime.settings.hotspot_meaning else [None] * len(routed))
    chosen: list[tuple[Delivered, events.ReportSubmitted, Classification, domain.Decision]] = []
    vectors: dict[str, bytes | None] = {}
    for (d, report), vector in zip(routed, meanings, strict=True):
        vectors[report.report_id] = vector
        result = classify(report.content, report.category, vector)
        chosen.append((d, report, result, domain.choose_platform(report.region_code, result.category, scopes)))
    await session.execute(insert(RoutingDecision), [
        {"report_id": report.report_id, "region_code": report.region_code, "category": result.category,
         "category_source": result.source, "confidence": result.confidence, "handler": decision.handler,
         "platform_id": decision.platform_id, "reason": decision.reason}
        for _d, report, result, decision in chosen])
    await runtime.emit_many(session, [Outgoing("routing.report.classified", {
        "report_id": report.report_id, "category": result.category,
        "category_label": BY_CODE[result.category].label, "source": result.source, "handler": decision.handler,
        "platform_id": decision.platform_id, "reason": decision.reason,
    }, report.report_id, d.trace) for d, report, result, decision in chosen])
    wanted = {decision.platform_id for *_, decision in chosen if decision.platform_id is not None}
    handling = {p.id: p for p in (await session.scalars(select(GridPlatform).where(GridPlatform.id.in_(wanted))))
                .all()} if wanted else {}
    for d, _report, result, decision in chosen:
        platform = handling.get(decision.platform_id) if decision.platform_id is not None else None
        if platform is not None:
            with continuing(d.trace):
                # The ticket carries the report as intake published it (its times as written).
                await tickets.open_ticket(runtime, session, d.event.data, result.category, platform, now)
    # Each county's placement lock once, every batch taking them in the same order: two replicas
    # taking several in different orders could deadlock.
    for county in sorted({clustering.county_of(report.region_code) for _d, report, _r, _c in chosen}):
        await hotspots.lock_county(session, county)
    for d, report, result, _decision in chosen:
        location = report.location.model_dump(exclude_none=True) if report.location is not None else None
        with continuing(d.trace):
            await hotspots.place(runtime, session, report_id=report.report_id, region_code=report.region_code,
                                 category=result.category, content=report.content, received_at=report.received_at,
                                 now=now, location=location, county_locked=True,
                                 meaning=vectors[report.report_id])


async def grid_event(runtime: Runtime, session: AsyncSession, event: CloudEvent) -> None:
    """A status from a platform on the nats transport.

    The platform is the one named by the SUBJECT the message arrived on, which NATS lets only that
    platform's user publish; a body naming another platform, or a ticket of another platform, is
    refused. The message must carry the platform's signature as an HTTP callback does
    (`X-Minyi-Timestamp`, `X-Minyi-Signature` as NATS headers over the message's bytes). Its age is
    not held against it: the stream keeps a status until routing reads it, and a status read again
    changes nothing.
    """
    delivery = event.delivery
    platform_id = domain.grid_platform_of(delivery.subject) if delivery is not None else None
    if delivery is None or platform_id is None:
        raise BadEvent(f"{event.type} {event.id}: not from a grid platform's events subject")
    if event.type != delivery.subject:
        raise BadEvent(f"{delivery.subject} {event.id}: the body names {event.type[:80]!r}, not the subject "
                       "it arrived on")
    status = event.payload(events.GridStatus)
    named = status.model_extra.get("platform_id") if status.model_extra else None
    if named is not None and named != platform_id:
        raise BadEvent(f"{delivery.subject} {event.id}: the body names platform {str(named)[:64]!r}")
    platform = await session.get(GridPlatform, platform_id)
    if platform is None:
        raise BadEvent(f"{delivery.subject} {event.id}: no grid platform {platform_id!r}")
    try:
        timestamp = domain.parse_timestamp(domain.header(delivery.headers, "X-Minyi-Timestamp"), 0, fresh=False)
        domain.verify(platforms.secret_of(runtime.keyring, platform), timestamp, delivery.raw,
                      domain.header(delivery.headers, "X-Minyi-Signature"))
    except domain.SignatureError as exc:
        raise BadEvent(f"{delivery.subject} {event.id}: not signed by platform {platform_id}: {exc}") from exc
    ticket = await tickets.lock(session, status.ticket_id)
    if ticket is None or ticket.platform_id != platform_id:
        # Another platform's ticket is not this platform's to move.
        raise BadEvent(f"{event.type} {event.id}: ticket {status.ticket_id[:40]} is not one of platform "
                       f"{platform_id}'s")
    await tickets.apply_status(runtime, session, ticket, status.status, note=status.note, at=status.at,
                               source="nats")


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    async def submitted(batch: Sequence[Delivered], session: AsyncSession) -> None:
        await route_reports(runtime, session, batch)

    async def platform_event(event: CloudEvent, session: AsyncSession) -> None:
        await grid_event(runtime, session, event)

    async def suggestion(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.suggestion_event(runtime, session, event)

    async def topic_closed(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.topic_closed(runtime, session, event)

    async def supported(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.report_supported(session, event)

    return (
        Subscription("intake.report.submitted", STREAMS["intake"].name, "routing-submitted", one_by_one(submitted),
                     "classify, dispatch to the grid platform and cluster every new report",
                     concurrency=BATCH, batch=submitted),
        Subscription("grid.*.events", GRID_STREAM.name, "routing-grid-events", platform_event,
                     "ticket statuses from grid platforms on the nats transport"),
        Subscription("suggestions.suggestion.>", STREAMS["suggestions"].name, "routing-suggestions", suggestion,
                     "a hotspot's topic converted into a suggestion, and that suggestion's steps until it closes"),
        Subscription("suggestions.topic.closed", STREAMS["suggestions"].name, "routing-topics-closed", topic_closed,
                     "a hotspot's topic closed without a suggestion closes the hotspot"),
        Subscription("intake.report.supported", STREAMS["intake"].name, "routing-supported", supported,
                     "citizens who said \"me too\" on a report count for the hotspot holding it"),
    )


def workers(runtime: Runtime) -> Sequence[Callable[[], Awaitable[None]]]:
    dispatcher = runtime.state.setdefault(DISPATCHER, Dispatcher(runtime))
    open311_dispatcher = runtime.state.setdefault(OPEN311_DISPATCHER, Open311Dispatcher(runtime))
    poller = Open311Poller(runtime)

    def queued() -> None:
        dispatcher.wake()
        open311_dispatcher.wake()

    runtime.commit_hooks[tickets.QUEUED] = queued
    runtime.commit_hooks[tickets.queued_for(dispatcher.transport)] = dispatcher.wake
    runtime.commit_hooks[tickets.queued_for(open311_dispatcher.transport)] = open311_dispatcher.wake

    async def ticket_dispatcher() -> None:
        await dispatcher.run()

    async def open311_ticket_dispatcher() -> None:
        await open311_dispatcher.run()

    async def open311_poller() -> None:
        await poller.run()

    return (ticket_dispatcher, open311_ticket_dispatcher, open311_poller)
