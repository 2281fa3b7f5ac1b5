"""Delivers queued tickets to grid platforms on the http transport.

Each pass claims due tickets per platform with a lease (SKIP LOCKED, so replicas share the work
and a crashed sender's tickets come back when the lease runs out), POSTs them signed, and records
what each platform said in one transaction. A platform that fails is backed off as a whole and
probed with one ticket at a time; the first success releases its backlog at once. A failing ticket
is also backed off on its own, so one the platform chokes on does not stay the probe forever.

Before a pass sends anything, the platform's host is resolved and checked against the destination
policy (destinations.py); the tickets then go to the address that was checked, with the host name
kept for the Host header and TLS. What a platform answers is read up to `MAX_ANSWER_BYTES`: it is
kept as a note for staff, and a platform must not be able to fill routing's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, or_, select, text

from services.routing import destinations, domain, tickets
from services.routing.destinations import Address, DestinationRefused
from services.routing.domain import Outcome
from services.routing.models import GridPlatform, Ticket
from services.routing.platforms import secret_of
from shared.bus.outbox import Outgoing
from shared.service import Runtime

log = logging.getLogger("minyi.routing.dispatch")

BATCH = 64
# Tickets in flight to one platform at once: enough to keep up, not enough to flood it.
PER_PLATFORM = 16
# Enough for any problem+json a platform means to send; the rest is not read.
MAX_ANSWER_BYTES = 64 * 1024

_CLAIM = text("""
UPDATE routing.tickets SET next_attempt_at = now() + make_interval(secs => :lease), attempts = attempts + 1
WHERE id IN (SELECT id FROM routing.tickets
             WHERE platform_id = :platform AND status = 'queued' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, body, attempts
""")


@dataclass(frozen=True)
class Claimed:
    id: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    detail: str
    retry_after: float | None = None


class Dispatcher:
    """The http transport; a subclass for another transport over HTTP (open311_dispatch) says how
    its tickets are sent (`send`) and what of each answer it keeps on the ticket (`noted`)."""

    transport = "http"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._wake = asyncio.Event()
        self.policy = destinations.policy_of(runtime.settings)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        seconds = self.settings.grid_timeout_seconds
        timeout = httpx.Timeout(seconds, connect=min(5.0, seconds))
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as client:
            while True:
                try:
                    more = await self.dispatch_once(client)
                except Exception as exc:
                    log.warning("dispatch pass failed (%s: %s); trying again shortly", type(exc).__name__, exc)
                    more = False
                # Another pass at once only when a platform had more due than one pass takes: a pass
                # that found nothing more cost two transactions for every ticket sent alone (at an
                # ordinary rate, every ticket). Tickets queued meanwhile have set the wake-up.
                if more:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.grid_dispatch_poll_seconds)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def dispatch_once(self, client: httpx.AsyncClient) -> bool:
        """One pass over the platforms that may be tried now; whether one of them may have more due
        (it had as many as a pass takes)."""
        async with self.runtime.sessions()() as session:
            platforms = (await session.scalars(
                select(GridPlatform).where(GridPlatform.transport == self.transport,
                                           or_(GridPlatform.retry_at.is_(None), GridPlatform.retry_at <= func.now()))
            )).all()
        return any(await asyncio.gather(*(self._platform(client, p) for p in platforms)))

    async def _platform(self, client: httpx.AsyncClient, platform: GridPlatform) -> bool:
        """Send what is due to one platform; whether it had as many as one pass takes."""
        limit = 1 if platform.failures > 0 else BATCH
        async with self.runtime.transaction() as session:
            rows = (await session.execute(_CLAIM, {"platform": platform.id, "limit": limit,
                                                   "lease": self.settings.grid_lease_seconds})).all()
        if not rows:
            return False
        claimed = [Claimed(r.id, bytes(r.body), r.attempts) for r in rows]
        try:
            host, addresses = await destinations.allowed_addresses(self.policy, platform.url or "")
        except DestinationRefused as exc:
            # Kept queued, not failed: the operator may allow the address, or the admin fix the URL.
            log.warning("grid platform %s: not sending to %s: %s", platform.id, platform.url, exc)
            answers = [Answer(Outcome.RETRY, f"目的地址不允许：{exc}")] * len(claimed)
            await self._record(platform, claimed, answers)
            return False
        answers = await self.send(client, platform, claimed, host, addresses)
        await self._record(platform, claimed, answers)
        return len(claimed) == limit

    async def send(self, client: httpx.AsyncClient, platform: GridPlatform, claimed: list[Claimed], host: str,
                   addresses: list[Address]) -> list[Answer]:
        """Each claimed ticket sent to the checked address; an answer for each, in order."""
        secret = secret_of(self.runtime.keyring, platform)
        gate = asyncio.Semaphore(PER_PLATFORM)

        async def send(ticket: Claimed) -> Answer:
            async with gate:
                return await post_ticket(client, platform.url or "", secret, ticket.body, address=addresses[0],
                                         host=host)

        return list(await asyncio.gather(*(send(t) for t in claimed)))

    def noted(self, ticket: Ticket, answer: Answer, now: datetime) -> None:
        """What the transport keeps on the ticket of an answer, besides its outcome: nothing here."""

    async def _record(self, platform: GridPlatform, claimed: list[Claimed], answers: list[Answer]) -> None:
        now = datetime.now(UTC)
        settings = self.settings
        async with self.runtime.transaction() as session:
            # All the pass's tickets locked by one statement, in id order like every pass.
            held = {t.id: t for t in (await session.scalars(
                select(Ticket).where(Ticket.id.in_([c.id for c in claimed])).order_by(Ticket.id)
                .with_for_update())).all()}
            created: list[Outgoing] = []
            for ticket_row, answer in zip(claimed, answers, strict=True):
                ticket = held.get(ticket_row.id)
                if ticket is None:
                    continue
                self.noted(ticket, answer, now)
                if answer.outcome == Outcome.DELIVERED:
                    await tickets.delivered(self.runtime, session, ticket, now, created)
                elif answer.outcome == Outcome.REFUSED:
                    await tickets.refused(self.runtime, session, ticket, answer.detail, now)
                elif ticket.status == "queued":
                    wait = domain.backoff_seconds(ticket.attempts, base=settings.grid_retry_base_seconds,
                                                  cap=settings.grid_retry_max_seconds)
                    ticket.next_attempt_at = now + timedelta(seconds=max(wait, answer.retry_after or 0.0))
                    ticket.last_error = answer.detail
            await self.runtime.emit_many(session, created)
            locked = await session.get(GridPlatform, platform.id, with_for_update=True)
            if locked is None:
                return
            failed = [a for a in answers if a.outcome == Outcome.RETRY]
            if len(failed) < len(answers):
                if locked.failures:
                    log.info("grid platform %s answers again after %d failed tries", platform.id, locked.failures)
                locked.failures, locked.retry_at, locked.last_error = 0, None, None
            else:
                locked.failures += 1
                wait = domain.backoff_seconds(locked.failures, base=settings.grid_retry_base_seconds,
                                              cap=settings.grid_retry_max_seconds)
                wait = max([wait, *(a.retry_after or 0.0 for a in failed)])
                locked.retry_at = now + timedelta(seconds=wait)
                locked.last_error = failed[-1].detail
                log.warning("grid platform %s failing (%d tries in a row, last: %s); next try in %.1f s",
                            platform.id, locked.failures, failed[-1].detail[:200], wait)


async def post_ticket(client: httpx.AsyncClient, url: str, secret: bytes, body: bytes, *,
                      address: Address | None = None, host: str | None = None) -> Answer:
    """POST one ticket; to `address` when given (the checked one), naming `host` as the server.
    The status line decides: a body cut off after a 2xx does not make the ticket go again."""
    headers = domain.signed_headers(secret, body, time.time())
    target, extensions = pinned(httpx.URL(url.rstrip("/") + "/tickets"), headers, address=address, host=host)
    try:
        async with client.stream("POST", target, content=body, headers=headers, extensions=extensions) as resp:
            try:
                # Read even when delivered: a short answer read to its end leaves the connection reusable.
                # The whole body within one read timeout, so a trickle cannot hold the sender either.
                async with asyncio.timeout(client.timeout.read):
                    said = await read_bounded(resp, MAX_ANSWER_BYTES)
            except (httpx.HTTPError, TimeoutError) as exc:
                said = f"（答复未读完：{type(exc).__name__}）"
    except httpx.HTTPError as exc:
        return Answer(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__)
    outcome = domain.outcome_of_status(resp.status_code)
    if outcome == Outcome.DELIVERED:
        return Answer(outcome, f"HTTP {resp.status_code}")
    retry_after = domain.retry_after_seconds(resp.headers.get("retry-after"), datetime.now(UTC))
    return Answer(outcome, refusal_text(resp.status_code, said), retry_after)


def pinned(target: httpx.URL, headers: dict[str, str], *, address: Address | None, host: str | None
           ) -> tuple[httpx.URL, dict[str, str]]:
    """`target` with its host replaced by the checked `address` (the name kept in `headers` as
    Host, and for TLS), and the request extensions that go with it."""
    extensions: dict[str, str] = {}
    if address is not None and host is not None:
        headers["Host"] = target.netloc.decode("ascii")
        target = target.copy_with(host=str(address))
        if target.scheme == "https":
            extensions["sni_hostname"] = host
    return target, extensions


async def read_bounded(resp: httpx.Response, limit: int) -> str:
    """At most `limit` bytes of the answer's body, as text; the rest is left unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk[:limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks).decode(resp.encoding or "utf-8", errors="replace")


def refusal_text(status: int, said: str) -> str:
    """What the platform said, as staff will read it: its problem detail when it gives one."""
    said = said.strip()
    try:
        doc = json.loads(said)
        if isinstance(doc, dict):
            said = str(doc.get("detail") or doc.get("title") or doc.get("message") or said)
    except ValueError:
        pass
    return f"基层治理平台答复 HTTP {status}：{said[:500] or '（无说明）'}"
