"""Open311 GeoReport v2 over HTTP: the calls routing makes to a grid platform on the open311 transport.

Every call goes to the address the destination policy checked (dispatch.pinned), reads at most a
bounded answer within one read timeout, and turns what came back into plain values (open311.py).

Sending a ticket when an earlier POST of it may have created a request we never heard of
(`pending_since`): GeoReport has no idempotency key, so the request is looked for first, by the
marker every description carries (open311.marker), among the platform's requests of that service
code made since shortly before that POST. Found, it is the ticket's request and nothing is posted;
not found, the ticket is posted again. Such a POST is only retried after a settling time (the
ambiguous answer's `retry_after`), so a request the platform was still storing when our read gave
up has had time to appear. What this cannot cover, said plainly: a platform that queues requests
(answers with a token) lists a queued one only once it is processed, and a platform that edits
descriptions loses the marker; either can then get the ticket twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from services.routing import domain, open311
from services.routing.destinations import Address
from services.routing.dispatch import MAX_ANSWER_BYTES, Answer, pinned, read_bounded
from services.routing.domain import Outcome

log = logging.getLogger("minyi.routing.open311")

# Lists of requests and updates: a hundred requests with 4,000-character descriptions fit easily.
MAX_LIST_BYTES = 8 * 1024 * 1024
# Around the POST that may have created the request: the platform's clock may differ from ours.
LOOKUP_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class Endpoint:
    url: str
    api_key: str
    jurisdiction_id: str | None
    address: Address | None = None
    host: str | None = None

    def params(self, **extra: str) -> dict[str, str]:
        params = {"jurisdiction_id": self.jurisdiction_id} if self.jurisdiction_id else {}
        return {**params, **extra}

    def target(self, path: str, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, str]]:
        return pinned(httpx.URL(self.url.rstrip("/") + "/" + path), headers, address=self.address, host=self.host)


@dataclass(frozen=True)
class Open311Answer(Answer):
    remote_id: str | None = None
    token: str | None = None
    # The POST may have created a request whose answer we did not hear: look before posting again.
    ambiguous: bool = False
    posted_at: datetime | None = None


class Failed(Exception):
    """A call the platform did not answer usefully; `status` is None when nothing came back."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


def _no_answer(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


async def get_json(client: httpx.AsyncClient, endpoint: Endpoint, path: str, params: Mapping[str, str]) -> Any:
    headers = {"Accept": "application/json"}
    target, extensions = endpoint.target(path, headers)
    try:
        async with client.stream("GET", target, params=dict(params), headers=headers, extensions=extensions) as resp:
            async with asyncio.timeout(client.timeout.read):
                text = await read_bounded(resp, MAX_LIST_BYTES)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise Failed(_no_answer(exc)) from exc
    if not 200 <= resp.status_code < 300:
        raise Failed(open311.error_text(resp.status_code, text), resp.status_code)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Failed(f"{path} 的答复不是 JSON", resp.status_code) from exc


async def services(client: httpx.AsyncClient, endpoint: Endpoint) -> list[open311.Service]:
    try:
        return open311.parse_services(await get_json(client, endpoint, "services.json", endpoint.params()))
    except open311.Unreadable as exc:
        raise Failed(f"services.json：{exc}") from exc


async def post_request(client: httpx.AsyncClient, endpoint: Endpoint, form: Sequence[tuple[str, str]]
                       ) -> Open311Answer:
    """POST requests.json. Whether a failure may have created the request decides `ambiguous`:
    no connection made, or a 503/429, created nothing; a timeout or a reset after the request went
    out, a 500 or a gateway's 502/504, or a 2xx we could not read, may have."""
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": "application/json"}
    target, extensions = endpoint.target("requests.json", headers)
    posted_at = datetime.now(UTC)
    try:
        async with client.stream("POST", target, content=urlencode(list(form)).encode(), headers=headers,
                                 extensions=extensions) as resp:
            async with asyncio.timeout(client.timeout.read):
                text = await read_bounded(resp, MAX_ANSWER_BYTES)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return Open311Answer(Outcome.RETRY, _no_answer(exc))
    except (httpx.HTTPError, TimeoutError) as exc:
        return Open311Answer(Outcome.RETRY, _no_answer(exc), ambiguous=True, posted_at=posted_at)
    outcome = domain.outcome_of_status(resp.status_code)
    if outcome == Outcome.DELIVERED:
        try:
            created = open311.parse_created(json.loads(text))
        except (ValueError, open311.Unreadable):
            return Open311Answer(Outcome.RETRY, f"HTTP {resp.status_code}，但答复无法识别：{text[:200]}",
                                 ambiguous=True, posted_at=posted_at)
        said = (f"服务请求 {created.service_request_id}" if created.service_request_id
                else f"排队凭据 {created.token}" if created.token else "平台未给出编号")
        return Open311Answer(outcome, f"HTTP {resp.status_code}：{said}", remote_id=created.service_request_id,
                             token=created.token)
    retry_after = domain.retry_after_seconds(resp.headers.get("retry-after"), datetime.now(UTC))
    ambiguous = outcome == Outcome.RETRY and open311.ambiguous_status(resp.status_code)
    return Open311Answer(outcome, open311.error_text(resp.status_code, text), retry_after, ambiguous=ambiguous,
                         posted_at=posted_at if ambiguous else None)


async def find_marked(client: httpx.AsyncClient, endpoint: Endpoint, *, ticket_id: str, service_code: str,
                      since: datetime) -> str | None:
    """The id of the platform's request for the ticket, made since about `since`, if there is one."""
    now = datetime.now(UTC)
    params = endpoint.params(service_code=service_code, start_date=open311.w3(since - LOOKUP_SLACK),
                             end_date=open311.w3(now + LOOKUP_SLACK))
    try:
        found = open311.marked(open311.parse_requests(await get_json(client, endpoint, "requests.json", params)),
                               ticket_id)
    except open311.Unreadable as exc:
        raise Failed(f"requests.json：{exc}") from exc
    if len(found) > 1:
        log.warning("ticket %s has %d requests at %s (%s); following the first", ticket_id, len(found), endpoint.url,
                    ", ".join(r.id for r in found[:5]))
    return found[0].id if found else None


async def deliver(client: httpx.AsyncClient, endpoint: Endpoint, ticket: Mapping[str, Any], *, service_code: str,
                  pending_since: datetime | None, settle_seconds: float) -> Open311Answer:
    """One ticket to the platform: looked for first when an earlier POST may have made it, else posted."""
    ticket_id = str(ticket["ticket_id"])
    if pending_since is not None:
        try:
            found = await find_marked(client, endpoint, ticket_id=ticket_id, service_code=service_code,
                                      since=pending_since)
        except Failed as exc:
            if exc.status is None or domain.outcome_of_status(exc.status) != Outcome.REFUSED:
                return Open311Answer(Outcome.RETRY, f"核对上次提交是否已生效时失败：{exc}")
            # A platform that refuses the spec's search cannot be checked; holding the ticket for good
            # would leave the citizen with nobody handling the matter, so it is posted again.
            log.warning("ticket %s: %s cannot be searched (%s); posting again, it may get the ticket twice",
                        ticket_id, endpoint.url, exc)
        else:
            if found is not None:
                return Open311Answer(Outcome.DELIVERED, f"上次提交已生效：服务请求 {found}", remote_id=found)
    form = open311.request_form(ticket, api_key=endpoint.api_key, jurisdiction_id=endpoint.jurisdiction_id,
                                service_code=service_code)
    answer = await post_request(client, endpoint, form)
    if answer.ambiguous:
        # Not looked for again before the platform has had time to finish what it may have begun.
        answer = replace(answer, retry_after=max(settle_seconds, answer.retry_after or 0.0))
    return answer


async def token_request_id(client: httpx.AsyncClient, endpoint: Endpoint, token: str) -> str | None:
    """The service_request_id a token has become; None while the platform is still on it."""
    try:
        doc = await get_json(client, endpoint, f"tokens/{quote(token, safe='')}.json", endpoint.params())
    except Failed as exc:
        if exc.status == 404:
            return None  # some platforms know a token only once its request exists
        raise
    try:
        return open311.parse_token(doc)
    except open311.Unreadable as exc:
        raise Failed(f"tokens/{token}.json：{exc}") from exc


async def requests(client: httpx.AsyncClient, endpoint: Endpoint, ids: Sequence[str]) -> list[open311.RemoteRequest]:
    """The platform's requests of `ids`, a hundred per call; an id holding a comma on its own."""
    out: list[open311.RemoteRequest] = []
    try:
        for batch in open311.batches(ids):
            doc = await get_json(client, endpoint, "requests.json",
                                 endpoint.params(service_request_id=",".join(batch)))
            out += open311.parse_requests(doc)
        for one in (i for i in ids if "," in i):
            out += open311.parse_requests(await get_json(client, endpoint, f"requests/{quote(one, safe='')}.json",
                                                         endpoint.params()))
    except open311.Unreadable as exc:
        raise Failed(f"requests.json：{exc}") from exc
    return out


async def updates(client: httpx.AsyncClient, endpoint: Endpoint, since: datetime) -> list[open311.Update] | None:
    """mySociety's updates since `since`; None when the platform does not offer them."""
    params = endpoint.params(start_date=open311.w3(since), end_date=open311.w3(datetime.now(UTC) + LOOKUP_SLACK),
                             api_key=endpoint.api_key)
    try:
        doc = await get_json(client, endpoint, "servicerequestupdates.json", params)
    except Failed as exc:
        if exc.status in (404, 405, 501):
            return None
        raise
    try:
        return open311.parse_updates(doc)
    except open311.Unreadable as exc:
        raise Failed(f"servicerequestupdates.json：{exc}") from exc
