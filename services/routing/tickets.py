"""A ticket's life in the database: opened for a report, delivered, moved by the platform's word.

Every change writes a history entry and, when it is one intake must know of, a `routing.ticket.*`
event in the same transaction. Callers hold the ticket's row lock. Each event carries the ticket's
`version` as it stands after the change: with several relays and consumers the events can arrive
out of order, and the version lets intake apply the newest and set an older one aside.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import domain
from services.routing.domain import Change, TicketStatus
from services.routing.models import OUTBOX, GridPlatform, Ticket, TicketEntry
from shared.bus.outbox import Outgoing, raw_row, staged
from shared.contracts import GRID_STREAM
from shared.ids import new_id
from shared.service import Runtime

# session.info key: the commit queued tickets, so every dispatcher should look now.
QUEUED = "routing.tickets_queued"


def queued_for(transport: str) -> str:
    """session.info key: the commit queued tickets of this transport, so its dispatcher should look
    now (and the others need not)."""
    return f"{QUEUED}.{transport}"


def grid_subject(platform_id: str, kind: str) -> str:
    return f"grid.{platform_id}.{kind}"


async def lock(session: AsyncSession, ticket_id: str) -> Ticket | None:
    return await session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())


def record(session: AsyncSession, ticket: Ticket, status: str, *, note: str | None, at: datetime, source: str,
           applied: bool) -> None:
    session.add(TicketEntry(ticket_id=ticket.id, status=status, note=note, at=at, source=source, applied=applied))


async def open_ticket(runtime: Runtime, session: AsyncSession, report: dict[str, Any], category: str,
                      platform: GridPlatform, now: datetime) -> Ticket:
    ticket_id = new_id()
    body = domain.ticket_body(ticket_id, report, category, runtime.settings.callback_url)
    ticket = Ticket(id=ticket_id, report_id=report["report_id"], platform_id=platform.id, transport=platform.transport,
                    region_code=report["region_code"], category=category, body=body,
                    status=TicketStatus.QUEUED, attempts=0, next_attempt_at=now, version=1)
    session.add(ticket)
    record(session, ticket, TicketStatus.QUEUED, note=None, at=now, source="routing", applied=True)
    if platform.transport == "nats":
        # The platform's stream is its inbox: once the relay has the PubAck it holds the ticket,
        # and Nats-Msg-Id = ticket id makes a republished copy the same ticket.
        await session.flush()
        await session.execute(insert(OUTBOX).values(**raw_row(
            ticket_id, grid_subject(platform.id, "tickets"), json.loads(body), stream=GRID_STREAM.name)))
        staged(session)
        await delivered(runtime, session, ticket, now)
    else:
        session.info[queued_for(platform.transport)] = True
    return ticket


async def delivered(runtime: Runtime, session: AsyncSession, ticket: Ticket, at: datetime,
                    staged_by_caller: list[Outgoing] | None = None) -> None:
    """The platform has the ticket: the report is dispatched. The event goes to `staged_by_caller`
    when given, for the caller to stage with others in one statement."""
    if ticket.delivered_at is not None:
        return
    ticket.delivered_at = at
    ticket.next_attempt_at = None
    ticket.last_error = None
    # Every event gets a version of its own, even a delivery proven after a refusal (two senders
    # whose leases overlapped): an event sharing its version with another would be set aside.
    ticket.version += 1
    if ticket.status == TicketStatus.QUEUED:
        ticket.status = TicketStatus.SENT
        record(session, ticket, TicketStatus.SENT, note=None, at=at, source="routing", applied=True)
    created = Outgoing("routing.ticket.created", {
        "ticket_id": ticket.id, "report_id": ticket.report_id, "platform_id": ticket.platform_id,
        "region_code": ticket.region_code, "category": ticket.category, "at": at.isoformat(),
        "status": str(ticket.status), "version": ticket.version,
    }, ticket.report_id)
    if staged_by_caller is not None:
        staged_by_caller.append(created)
    else:
        await runtime.emit_many(session, [created])


async def apply_status(runtime: Runtime, session: AsyncSession, ticket: Ticket, status: str, *,
                       note: str | None, at: datetime, source: str) -> Change:
    """The platform's word on a ticket: applied once, never backwards."""
    change = domain.change(ticket.status, status)
    record(session, ticket, status, note=note, at=at, source=source, applied=change == Change.APPLY)
    if change != Change.APPLY:
        return change
    if ticket.delivered_at is None:
        # A callback can overtake the platform's answer to our POST; it proves the delivery.
        await delivered(runtime, session, ticket, at)
    ticket.status = status
    ticket.next_attempt_at = None
    ticket.version += 1
    await _updated(runtime, session, ticket, status, note, at)
    return change


async def refused(runtime: Runtime, session: AsyncSession, ticket: Ticket, answer: str, at: datetime) -> None:
    """The platform will not take the ticket (a 4xx): back to the deputy and staff with its answer."""
    if domain.change(ticket.status, TicketStatus.FAILED) != Change.APPLY:
        return
    ticket.status = TicketStatus.FAILED
    ticket.next_attempt_at = None
    ticket.last_error = answer
    ticket.version += 1
    record(session, ticket, TicketStatus.FAILED, note=answer, at=at, source="routing", applied=True)
    await _updated(runtime, session, ticket, TicketStatus.FAILED, answer, at)


async def _updated(runtime: Runtime, session: AsyncSession, ticket: Ticket, status: str, note: str | None,
                   at: datetime) -> None:
    data: dict[str, Any] = {"ticket_id": ticket.id, "report_id": ticket.report_id, "platform_id": ticket.platform_id,
                            "status": str(status), "at": at.isoformat(), "version": ticket.version}
    if note:
        data["note"] = note
    await runtime.emit(session, "routing.ticket.updated", data, subject=ticket.report_id)
