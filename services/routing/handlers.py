"""Bus side of the routing service.

- `intake.report.submitted`: classify the report, decide who handles it, open its ticket when a
  grid platform does, and place it in a hotspot cluster; all in the one transaction of the event.
- `grid.<platform_id>.events`: statuses from platforms on the nats transport, signed, each believed
  only of the platform its subject names.
- `suggestions.suggestion.*`, `suggestions.topic.closed`, `intake.report.supported`: the life of
  hotspots after they are found (`hotspot_news`).
- The dispatcher worker delivers tickets on the http transport.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import domain, hotspot_news, hotspots, platforms, tickets
from services.routing.classify import classify
from services.routing.dispatch import Dispatcher
from services.routing.models import GridPlatform, RoutingDecision
from services.routing.taxonomy import BY_CODE
from shared.bus.consumer import BadEvent, Subscription
from shared.bus.envelope import CloudEvent
from shared.contracts import GRID_STREAM, STREAMS
from shared.service import Runtime

log = logging.getLogger("minyi.routing")

DISPATCHER = "routing.dispatcher"


def _text(data: dict[str, Any], name: str, event: CloudEvent, *, required: bool = True) -> str | None:
    value = data.get(name)
    if isinstance(value, str) and value:
        return value
    if required:
        raise BadEvent(f"{event.type} {event.id} has no {name}")
    return None


def _time(raw: object, event: CloudEvent) -> datetime:
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise BadEvent(f"{event.type} {event.id}: {raw[:40]!r} is not a time") from exc
        if parsed.tzinfo is None:
            raise BadEvent(f"{event.type} {event.id}: {raw[:40]!r} has no time zone")
        return parsed
    return event.time


async def route_report(runtime: Runtime, session: AsyncSession, data: dict[str, Any], event: CloudEvent) -> None:
    report_id = _text(data, "report_id", event)
    region_code = _text(data, "region_code", event)
    assert report_id is not None and region_code is not None
    if await session.get(RoutingDecision, report_id) is not None:
        return  # decided already (the event came again under another id, e.g. replayed from a backup)
    content = _text(data, "content", event, required=False) or ""
    hint = data.get("category") if isinstance(data.get("category"), str) else None
    result = classify(content, hint)
    decision = domain.choose_platform(region_code, result.category, await platforms.scopes(session))
    now = datetime.now(UTC)
    session.add(RoutingDecision(report_id=report_id, region_code=region_code, category=result.category,
                                category_source=result.source, confidence=result.confidence,
                                handler=decision.handler, platform_id=decision.platform_id, reason=decision.reason))
    await runtime.emit(session, "routing.report.classified", {
        "report_id": report_id, "category": result.category, "category_label": BY_CODE[result.category].label,
        "source": result.source, "handler": decision.handler, "platform_id": decision.platform_id,
        "reason": decision.reason,
    }, subject=report_id)
    if decision.platform_id is not None:
        platform = await session.get(GridPlatform, decision.platform_id)
        if platform is not None:
            await tickets.open_ticket(runtime, session, {**data, "report_id": report_id, "region_code": region_code},
                                      result.category, platform, now)
    received = _time(data.get("received_at"), event)
    await hotspots.place(runtime, session, report_id=report_id, region_code=region_code, category=result.category,
                         content=content, received_at=received, now=now,
                         location=data.get("location") if isinstance(data.get("location"), dict) else None)


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
    data = event.data
    named = data.get("platform_id")
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
    ticket_id = _text(data, "ticket_id", event)
    status = _text(data, "status", event)
    assert ticket_id is not None and status is not None
    if status not in domain.PLATFORM_STATUSES:
        raise BadEvent(f"{event.type} {event.id}: unknown status {status[:40]!r}")
    ticket = await tickets.lock(session, ticket_id)
    if ticket is None or ticket.platform_id != platform_id:
        # Another platform's ticket is not this platform's to move.
        raise BadEvent(f"{event.type} {event.id}: ticket {ticket_id[:40]} is not one of platform {platform_id}'s")
    note = data.get("note") if isinstance(data.get("note"), str) else None
    await tickets.apply_status(runtime, session, ticket, status, note=note, at=_time(data.get("at"), event),
                               source="nats")


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    async def submitted(event: CloudEvent, session: AsyncSession) -> None:
        await route_report(runtime, session, event.data, event)

    async def platform_event(event: CloudEvent, session: AsyncSession) -> None:
        await grid_event(runtime, session, event)

    async def suggestion(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.suggestion_event(runtime, session, event)

    async def topic_closed(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.topic_closed(runtime, session, event)

    async def supported(event: CloudEvent, session: AsyncSession) -> None:
        await hotspot_news.report_supported(session, event)

    return (
        Subscription("intake.report.submitted", STREAMS["intake"].name, "routing-submitted", submitted,
                     "classify, dispatch to the grid platform and cluster every new report", concurrency=8),
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
    runtime.commit_hooks[tickets.QUEUED] = dispatcher.wake

    async def ticket_dispatcher() -> None:
        await dispatcher.run()

    return (ticket_dispatcher,)
