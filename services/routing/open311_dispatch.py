"""Delivers queued tickets to grid platforms on the open311 transport, as service requests.

The dispatcher of the http transport does the rest unchanged: leases, the destination policy, the
backoff of a failing platform and of a failing ticket, a 4xx failing the ticket for good. What
differs is the sending (open311_client.deliver, which looks for a request an unheard POST may have
made before posting again) and what the ticket keeps: the platform's service_request_id or token,
and when a POST may have made a request we did not hear of.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime

import httpx
from sqlalchemy import select

from services.routing import open311, open311_client
from services.routing.destinations import Address
from services.routing.dispatch import PER_PLATFORM, Answer, Claimed, Dispatcher
from services.routing.domain import Outcome
from services.routing.models import GridPlatform, Ticket
from services.routing.open311_client import Endpoint, Failed, Open311Answer
from services.routing.platforms import api_key_of
from services.routing.taxonomy import BY_CODE
from shared.service import Runtime

log = logging.getLogger("minyi.routing.open311")

# A platform's services.json is read again after this long, or at once when the platform is changed.
SERVICES_MAX_AGE_SECONDS = 300.0
# How long a POST whose answer never came is given, in read timeouts, before its request is looked
# for: as long again as we waited for it, and twice that for the platform to finish storing it.
SETTLE_TIMEOUTS = 3


def endpoint_of(runtime: Runtime, platform: GridPlatform, address: Address | None, host: str | None) -> Endpoint:
    return Endpoint(platform.url or "", api_key_of(runtime.keyring, platform), platform.jurisdiction_id, address, host)


class Open311Dispatcher(Dispatcher):
    transport = "open311"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._services: dict[str, tuple[int, float, list[open311.Service]]] = {}

    async def _catalog(self, client: httpx.AsyncClient, platform: GridPlatform,
                       endpoint: Endpoint) -> list[open311.Service] | None:
        if platform.service_codes is not None:
            return None
        cached = self._services.get(platform.id)
        fresh = cached is not None and time.monotonic() - cached[1] < SERVICES_MAX_AGE_SECONDS
        if cached is not None and fresh and cached[0] == platform.version:
            return cached[2]
        found = await open311_client.services(client, endpoint)
        self._services[platform.id] = (platform.version, time.monotonic(), found)
        return found

    async def send(self, client: httpx.AsyncClient, platform: GridPlatform, claimed: list[Claimed], host: str,
                   addresses: list[Address]) -> list[Answer]:
        endpoint = endpoint_of(self.runtime, platform, addresses[0], host)
        try:
            catalog = await self._catalog(client, platform, endpoint)
        except Failed as exc:
            return [Open311Answer(Outcome.RETRY, f"读取平台服务类型（services.json）失败：{exc}")] * len(claimed)
        async with self.runtime.sessions()() as session:
            pending = dict((await session.execute(select(Ticket.id, Ticket.remote_sent_at).where(
                Ticket.id.in_([t.id for t in claimed])))).all())
        settle = SETTLE_TIMEOUTS * self.settings.grid_timeout_seconds
        gate = asyncio.Semaphore(PER_PLATFORM)

        async def one(claim: Claimed) -> Answer:
            ticket = json.loads(claim.body)
            category = str(ticket.get("category"))
            code = open311.service_code(category, mapping=platform.service_codes, services=catalog)
            if code is None:
                label = BY_CODE[category].label if category in BY_CODE else category
                return Open311Answer(Outcome.REFUSED, f"基层治理平台没有与类别“{label}”对应的服务类型（service_code）")
            async with gate:
                return await open311_client.deliver(client, endpoint, ticket, service_code=code,
                                                    pending_since=pending.get(claim.id), settle_seconds=settle)

        return list(await asyncio.gather(*(one(t) for t in claimed)))

    def noted(self, ticket: Ticket, answer: Answer, now: datetime) -> None:
        if not isinstance(answer, Open311Answer):
            return
        if answer.outcome == Outcome.DELIVERED:
            # Two senders whose leases overlapped may both have delivered: the first id stays.
            ticket.remote_id = ticket.remote_id or answer.remote_id
            ticket.remote_token = ticket.remote_token or answer.token
            ticket.remote_sent_at = None
            if ticket.remote_id is None and ticket.remote_token is None:
                log.info("ticket %s: platform %s named no request for it; it cannot be followed", ticket.id,
                         ticket.platform_id)
        elif answer.ambiguous and ticket.remote_sent_at is None:
            ticket.remote_sent_at = answer.posted_at or now
