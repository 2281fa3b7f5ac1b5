"""Reads back what platforms on the open311 transport did with their tickets.

GeoReport platforms call nobody back, so every `grid_open311_poll_seconds` each such platform is
asked, for its tickets still open (sent, accepted, in progress):

1. what each token it gave has become (`tokens/{token}.json`), until it names a service_request_id;
2. the requests themselves (`requests.json?service_request_id=a,b,c`, a hundred ids a call);
3. where it offers mySociety's extension, the updates since the last ones read
   (`servicerequestupdates.json?start_date=…`); a 404 (or 405, 501) says it does not, and it is not
   asked again until the platform is registered anew.

What comes back is applied as a platform's callback is (tickets.apply_status, so intake hears it
through `routing.ticket.updated`), one transaction per ticket under its row lock, each reading once:
open311.verdict drops what is older than the last reading and what was read before, so polling
twice, two replicas polling at once, or the two sources telling one change, add nothing twice.

Each replica runs this poller, but a platform is read by one of them per interval, not by each: a
round of a platform begins by leasing it (`lease_due`, the dispatcher's way with tickets: the row
locked SKIP LOCKED and its `next_poll_at` pushed one interval ahead). Another replica finds it not
due and leaves it; when the replica holding the lease dies mid-round, the lease simply runs out and
the next replica to look takes the platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, or_, select, update

from services.routing import destinations, open311, open311_client, tickets
from services.routing.destinations import DestinationRefused
from services.routing.domain import TicketStatus
from services.routing.models import GridPlatform, Ticket
from services.routing.open311 import Observation, Verdict
from services.routing.open311_client import Endpoint, Failed
from services.routing.open311_dispatch import endpoint_of
from shared.service import Runtime

log = logging.getLogger("minyi.routing.open311")

FOLLOWED = (TicketStatus.SENT, TicketStatus.ACCEPTED, TicketStatus.IN_PROGRESS)
# Tokens asked about per platform and pass: a platform that is slow to turn them into requests
# is not asked about a whole backlog every time.
TOKENS_PER_PASS = 100
# The first read of a platform's updates looks back this far.
FIRST_UPDATES_LOOKBACK = timedelta(days=1)
# The share of the interval a round leases its platform for: a little short of it, so that the
# replica holding the lease finds the platform due again on its next pass, however its sleep and
# the database's clock drift.
LEASE_SHARE = 0.9


async def lease_due(runtime: Runtime, lease: timedelta) -> list[GridPlatform]:
    """The open311 platforms due for a round, each leased to the caller for `lease`. A platform whose
    row another replica holds at this moment (leasing it too, or a change being saved) is left to
    that replica or to the next pass."""
    due = (select(GridPlatform.id)
           .where(GridPlatform.transport == "open311",
                  or_(GridPlatform.next_poll_at.is_(None), GridPlatform.next_poll_at <= func.now()))
           .with_for_update(skip_locked=True))
    # updated_at is kept: a lease is not a change of the platform.
    leased = (update(GridPlatform).where(GridPlatform.id.in_(due))
              .values(next_poll_at=func.now() + lease, updated_at=GridPlatform.updated_at)
              .returning(GridPlatform).execution_options(synchronize_session=False))
    async with runtime.transaction() as session:
        return list((await session.scalars(leased)).all())


def _order(observation: Observation) -> tuple[bool, datetime, int]:
    """Oldest first; at one moment an update before the request, which states the outcome."""
    at = observation.at or datetime.min.replace(tzinfo=UTC)
    return observation.at is None, at, 0 if observation.source == "update" else 1


class Open311Poller:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.policy = destinations.policy_of(runtime.settings)

    async def run(self) -> None:
        seconds = self.settings.grid_timeout_seconds
        timeout = httpx.Timeout(seconds, connect=min(5.0, seconds))
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                try:
                    await self.poll_once(client)
                except Exception as exc:
                    log.warning("open311 poll failed (%s: %s); trying again shortly", type(exc).__name__, exc)
                await asyncio.sleep(self.settings.grid_open311_poll_seconds)

    async def poll_once(self, client: httpx.AsyncClient) -> int:
        """One pass over the open311 platforms no other replica is reading this interval; returns how
        many statuses were passed to tickets."""
        lease = timedelta(seconds=self.settings.grid_open311_poll_seconds * LEASE_SHARE)
        platforms = await lease_due(self.runtime, lease)
        return sum(await asyncio.gather(*(self._guarded(client, p) for p in platforms)))

    async def _guarded(self, client: httpx.AsyncClient, platform: GridPlatform) -> int:
        try:
            return await self._platform(client, platform)
        except (Failed, DestinationRefused) as exc:
            # The next pass asks again; the platform's answers to our POSTs say how it is.
            log.warning("open311 platform %s: not read this time: %s", platform.id, exc)
            return 0

    async def _platform(self, client: httpx.AsyncClient, platform: GridPlatform) -> int:
        async with self.runtime.sessions()() as session:
            any_open = await session.scalar(select(Ticket.id).where(
                Ticket.platform_id == platform.id, Ticket.status.in_(FOLLOWED),
                or_(Ticket.remote_id.is_not(None), Ticket.remote_token.is_not(None))).limit(1))
        if any_open is None:
            return 0  # nothing to follow: the platform is not disturbed
        host, addresses = await destinations.allowed_addresses(self.policy, platform.url or "")
        endpoint = endpoint_of(self.runtime, platform, addresses[0], host)
        await self._tokens(client, platform, endpoint)
        async with self.runtime.sessions()() as session:
            following = dict((await session.execute(select(Ticket.remote_id, Ticket.id).where(
                Ticket.platform_id == platform.id, Ticket.remote_id.is_not(None),
                Ticket.status.in_(FOLLOWED)))).all())
        if not following:
            return 0
        remote_ids = [r for r in following if r is not None]
        observations = [open311.of_request(r) for r in await open311_client.requests(client, endpoint, remote_ids)]
        if platform.updates_feed is not False:
            observations += await self._updates(client, platform, endpoint)
        by_ticket: dict[str, list[Observation]] = defaultdict(list)
        for observation in observations:
            ticket_id = following.get(observation.request_id)
            if ticket_id is not None:
                by_ticket[ticket_id].append(observation)
        applied = 0
        for ticket_id, seen in by_ticket.items():
            applied += await self._apply(ticket_id, sorted(seen, key=_order))
        return applied

    async def _tokens(self, client: httpx.AsyncClient, platform: GridPlatform, endpoint: Endpoint) -> None:
        async with self.runtime.sessions()() as session:
            waiting = (await session.execute(select(Ticket.id, Ticket.remote_token).where(
                Ticket.platform_id == platform.id, Ticket.remote_id.is_(None), Ticket.remote_token.is_not(None),
                Ticket.status.in_(FOLLOWED)).order_by(Ticket.created_at).limit(TOKENS_PER_PASS))).all()
        for ticket_id, token in waiting:
            if token is None:
                continue
            remote_id = await open311_client.token_request_id(client, endpoint, token)
            if remote_id is None:
                continue
            async with self.runtime.transaction() as session:
                ticket = await tickets.lock(session, ticket_id)
                if ticket is not None and ticket.remote_id is None:
                    ticket.remote_id = remote_id

    async def _updates(self, client: httpx.AsyncClient, platform: GridPlatform,
                       endpoint: Endpoint) -> list[Observation]:
        since = platform.updates_since or datetime.now(UTC) - FIRST_UPDATES_LOOKBACK
        found = await open311_client.updates(client, endpoint, since)
        async with self.runtime.transaction() as session:
            locked = await session.get(GridPlatform, platform.id, with_for_update=True)
            if locked is None or locked.version != platform.version:
                return []  # changed meanwhile: its new registration decides
            if found is None:
                log.info("open311 platform %s offers no servicerequestupdates.json; reading requests only", platform.id)
                locked.updates_feed = False
                return []
            locked.updates_feed = True
            # The start is inclusive, so updates of the last moment are read again: they are known by
            # their update_id and change nothing.
            newest = max((u.at for u in found if u.at is not None), default=None)
            if newest is not None and (locked.updates_since is None or newest > locked.updates_since):
                locked.updates_since = newest
            elif locked.updates_since is None:
                locked.updates_since = since
        return [open311.of_update(u) for u in found]

    async def _apply(self, ticket_id: str, observations: list[Observation]) -> int:
        applied = 0
        now = datetime.now(UTC)
        async with self.runtime.transaction() as session:
            ticket = await tickets.lock(session, ticket_id)
            if ticket is None or ticket.status not in FOLLOWED:
                return 0
            seen = ticket.remote_seen
            for observation in observations:
                if observation.request_id != ticket.remote_id:
                    continue
                verdict = open311.verdict(observation, current=ticket.status, seen=seen)
                if verdict == Verdict.SEEN:
                    continue
                status = open311.minyi_status(observation.status)
                if verdict == Verdict.APPLY and status is not None:
                    await tickets.apply_status(self.runtime, session, ticket, status, note=observation.note,
                                               at=observation.at or now, source="open311")
                    applied += 1
                else:
                    log.info("ticket %s: platform %s status %r means nothing to Minyi; kept as read", ticket.id,
                             ticket.platform_id, observation.status[:40])
                seen = open311.remembered(observation, seen)
            if seen is not ticket.remote_seen:
                ticket.remote_seen = seen
        return applied
