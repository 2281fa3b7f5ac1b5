"""Open311 GeoReport v2 as routing speaks it to a grid platform: plain functions, no I/O.

- The service request a ticket becomes: a form-encoded POST of `requests.json` with the report's
  words as `description`, its coordinates (`lat`/`long`) or, without them, an `address_string` of
  the places the citizen names and the region code, and the platform's `service_code` for the
  ticket's category (the admin's mapping, else a service of `services.json` whose code or name is
  the category's code or Chinese label).
- GeoReport has no idempotency key. Every description ends with a marker naming the ticket, so
  after an attempt whose outcome we did not hear (a timeout, a 5xx a gateway may have sent after
  the platform stored the request) the request can be looked for before it is posted again
  (`requests.json?service_code=…&start_date=…`, whose results carry the description).
- What the platform says: created (`service_request_id`) or queued (`token`), its errors in the
  spec's form `[{"code": …, "description": …}]`, and its requests and mySociety's
  `servicerequestupdates.json` read back as observations of a status.
- How an Open311 status becomes a ticket status, and which observations are news (newest wins, the
  same one read again changes nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from services.routing import domain, places
from services.routing.domain import Change, TicketStatus
from services.routing.taxonomy import BY_CODE

# The spec's limit on a description.
MAX_DESCRIPTION = 4000
# service_request_ids per GET of requests.json: a URL of a hundred ids stays well under what
# servers and proxies accept.
REQUESTS_PER_CALL = 100


class Unreadable(ValueError):
    """An answer that is not what the spec says it should be."""


# ---- the service request ------------------------------------------------------------------------


def marker(ticket_id: str) -> str:
    return f"[民意工单 {ticket_id}]"


def description(content: str, ticket_id: str) -> str:
    """The citizen's words and, on a line of its own, the ticket's marker; the words are shortened
    so that the whole stays within the spec's 4,000 characters and the marker is never cut."""
    tag = marker(ticket_id)
    room = MAX_DESCRIPTION - len(tag) - 2
    text = content.strip()
    if len(text) > room:
        text = text[:room - 1] + "…"
    return f"{text}\n\n{tag}" if text else tag


def address_string(content: str, region_code: str, address: str | None = None) -> str:
    """Most specific first, as the spec asks: the citizen's own address or the places the report
    names, then the region."""
    named = address.strip() if address and address.strip() else "，".join(places.mentions(content)[:3])
    region = f"行政区划代码 {region_code}"
    return f"{named}，{region}" if named else region


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _coordinates(location: Mapping[str, Any]) -> tuple[float, float] | None:
    lat, lon = _number(location.get("lat")), _number(location.get("lon", location.get("long")))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def request_form(ticket: Mapping[str, Any], *, api_key: str, jurisdiction_id: str | None,
                 service_code: str) -> list[tuple[str, str]]:
    """The fields of `POST requests.json` for a ticket (the routing ticket document). No
    `attribute[…]`: Minyi knows nothing of a platform's service definitions."""
    form = [("api_key", api_key)]
    if jurisdiction_id:
        form.append(("jurisdiction_id", jurisdiction_id))
    content = str(ticket.get("content") or "")
    form += [("service_code", service_code), ("description", description(content, str(ticket["ticket_id"])))]
    location = ticket.get("location") if isinstance(ticket.get("location"), Mapping) else None
    point = _coordinates(location) if location is not None else None
    address = location.get("address") if location is not None and isinstance(location.get("address"), str) else None
    if point is not None:
        form += [("lat", f"{point[0]:.7f}"), ("long", f"{point[1]:.7f}")]
        if address:
            form.append(("address_string", address_string(content, str(ticket["region_code"]), address)))
    else:
        form.append(("address_string", address_string(content, str(ticket["region_code"]), address)))
    media = ticket.get("media_url")
    if isinstance(media, str) and media.startswith(("http://", "https://")):
        form.append(("media_url", media))
    return form


# ---- services and their codes -------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    code: str
    name: str


def _text(value: object) -> str | None:
    """A scalar of a JSON answer as text: ids may come as numbers (the spec's own examples do)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _items(doc: object, *keys: str) -> list[Mapping[str, Any]]:
    """The objects of a JSON answer: a bare array, or one under the first of `keys` present."""
    if isinstance(doc, Mapping):
        doc = next((doc[k] for k in keys if k in doc), None)
    if not isinstance(doc, list):
        raise Unreadable("答复不是 JSON 数组")
    return [item for item in doc if isinstance(item, Mapping)]


def parse_services(doc: object) -> list[Service]:
    out = []
    for item in _items(doc, "services"):
        code = _text(item.get("service_code"))
        if code is not None:
            out.append(Service(code, _text(item.get("service_name")) or ""))
    return out


def service_code(category: str, *, mapping: Mapping[str, str] | None, services: Sequence[Service] | None
                 ) -> str | None:
    """The platform's service_code for a Minyi category: the admin's mapping when there is one
    (and only it: a category it leaves out is one the platform does not take), else the service
    whose code is the category's code or whose name is its Chinese label."""
    if mapping is not None:
        return mapping.get(category)
    label = BY_CODE[category].label if category in BY_CODE else None
    for service in services or ():
        if service.code == category:
            return service.code
    for service in services or ():
        if label is not None and service.name.strip() == label:
            return service.code
    return None


# ---- what a POST answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    service_request_id: str | None
    token: str | None


def parse_created(doc: object) -> Created:
    """The first request of the answer. Neither an id nor a token is a "blackbox" service: the
    platform has the request but will never name it."""
    items = _items(doc, "service_requests")
    if not items:
        raise Unreadable("答复中没有服务请求")
    first = items[0]
    return Created(_text(first.get("service_request_id")), _text(first.get("token")))


def parse_token(doc: object) -> str | None:
    """The service_request_id a token has become, or None while the platform has not made one."""
    for item in _items(doc, "service_requests"):
        found = _text(item.get("service_request_id"))
        if found is not None:
            return found
    return None


def error_text(status: int, body: str) -> str:
    """What the platform said, as staff will read it: the spec's `[{"code", "description"}]` when
    it gives them, else its words as they came."""
    said = body.strip()
    try:
        doc = json.loads(said)
        errors = _items(doc, "errors")
    except (ValueError, Unreadable):
        errors = []
    parts = []
    for error in errors[:5]:
        words = _text(error.get("description")) or ""
        code = _text(error.get("code"))
        parts.append(f"{code} {words}".strip() if code else words)
    if any(parts):
        said = "；".join(p for p in parts if p)
    return f"基层治理平台答复 HTTP {status}：{said[:500] or '（无说明）'}"


def ambiguous_status(status: int) -> bool:
    """Whether a failed POST may still have created the request. 503 and 429 (and 408, 425) say
    the request was not taken; a 500 or a gateway's 502/504 may come after the platform stored it."""
    return status >= 500 and status != 503


# ---- following requests -------------------------------------------------------------------------


def parse_time(raw: object) -> datetime | None:
    """A w3 datetime; the spec requires a zone, and one without is read as not given."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def w3(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RemoteRequest:
    id: str
    status: str
    notes: str | None
    description: str
    requested_at: datetime | None
    updated_at: datetime | None


def parse_requests(doc: object) -> list[RemoteRequest]:
    out = []
    for item in _items(doc, "service_requests", "requests"):
        rid = _text(item.get("service_request_id"))
        if rid is None:
            continue
        out.append(RemoteRequest(
            id=rid, status=(_text(item.get("status")) or "").lower(), notes=_text(item.get("status_notes")),
            description=str(item.get("description") or ""), requested_at=parse_time(item.get("requested_datetime")),
            updated_at=parse_time(item.get("updated_datetime"))))
    return out


def marked(requests: Iterable[RemoteRequest], ticket_id: str) -> list[RemoteRequest]:
    """The requests carrying the ticket's marker, the earliest first (should a platform ever hold
    two, the first is the one the ticket follows)."""
    tag = marker(ticket_id)
    found = [r for r in requests if tag in r.description]
    return sorted(found, key=lambda r: (r.requested_at is None, r.requested_at or datetime.min.replace(tzinfo=UTC),
                                        r.id))


@dataclass(frozen=True)
class Update:
    update_id: str
    request_id: str
    status: str
    at: datetime | None
    description: str | None


def parse_updates(doc: object) -> list[Update]:
    """mySociety's `servicerequestupdates.json`; the array as the extension's XML names it
    (`service_requests_updates`) or as the JSON of some servers does (`service_request_updates`)."""
    out = []
    for item in _items(doc, "service_request_updates", "service_requests_updates", "request_updates"):
        uid, rid = _text(item.get("update_id")), _text(item.get("service_request_id"))
        if uid is None or rid is None:
            continue
        out.append(Update(uid, rid, (_text(item.get("status")) or "").lower(), parse_time(item.get("updated_datetime")),
                          _text(item.get("description"))))
    return out


def batches(ids: Sequence[str], size: int = REQUESTS_PER_CALL) -> Iterator[list[str]]:
    """Ids for `service_request_id=a,b,c`; an id holding a comma cannot be listed so, and is asked
    for alone (`requests/{id}.json`) by the caller."""
    listable = [i for i in ids if "," not in i]
    for start in range(0, len(listable), size):
        yield listable[start:start + size]


# ---- statuses -----------------------------------------------------------------------------------

# GeoReport's own two, then mySociety's extended ones (FixMyStreet sends them in capitals; they are
# compared in lower case with spaces as underscores). `open` is accepted, never in_progress: many
# platforms write an acknowledgement into status_notes as they open a request, so notes on an open
# request say nothing of work begun; in_progress comes from the extended statuses only.
STATUSES: dict[str, TicketStatus] = {
    "open": TicketStatus.ACCEPTED,
    "closed": TicketStatus.RESOLVED,
    "confirmed": TicketStatus.ACCEPTED,
    "acknowledged": TicketStatus.ACCEPTED,
    "investigating": TicketStatus.IN_PROGRESS,
    "in_progress": TicketStatus.IN_PROGRESS,
    "action_scheduled": TicketStatus.IN_PROGRESS,
    "fixed": TicketStatus.RESOLVED,
    # The platform will not handle it: back to the deputy, who answers the citizen.
    "not_responsible": TicketStatus.RETURNED,
    "not_councils_responsibility": TicketStatus.RETURNED,
    "duplicate": TicketStatus.RETURNED,
    "internal_referral": TicketStatus.RETURNED,
    "unable_to_fix": TicketStatus.RETURNED,
    "no_further_action": TicketStatus.RETURNED,
}


def minyi_status(raw: str) -> TicketStatus | None:
    """The ticket status an Open311 status means; None for one we do not know."""
    return STATUSES.get(raw.strip().lower().replace(" ", "_").replace("-", "_"))


@dataclass(frozen=True)
class Observation:
    """One reading of a request's status, from requests.json or from the updates feed."""

    request_id: str
    status: str
    note: str | None
    at: datetime | None
    key: str
    source: str  # "request" or "update"


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def of_request(request: RemoteRequest) -> Observation:
    at = request.updated_at or request.requested_at
    return Observation(request.id, request.status, request.notes, at,
                       _digest("r", request.status, at.isoformat() if at else None, request.notes), "request")


def of_update(update: Update) -> Observation:
    return Observation(update.request_id, update.status, update.description, update.at, _digest("u", update.update_id),
                       "update")


# Readings a ticket remembers by key: a request and its updates, each read on every poll.
KEPT_KEYS = 32


class Verdict(StrEnum):
    APPLY = "apply"  # pass it to the ticket (which applies it or keeps it in its history)
    UNKNOWN = "unknown"  # a status we cannot map: remembered, not applied
    SEEN = "seen"  # nothing new: skipped without a trace


def verdict(observation: Observation, *, current: str, seen: Mapping[str, Any] | None) -> Verdict:
    """Whether an observation is news for a ticket whose status is `current` and whose last
    observation is `seen` (as `remembered` made it).

    - older than the last one: newest wins, so it is not;
    - one read before (a request polled twice, an update read again; the last `KEPT_KEYS` are
      kept, enough for both sources of a platform to take turns): not;
    - no step forward for the ticket and no new words (the other source telling the same change,
      plain GeoReport's `open` for a request the extended statuses have in progress, a request
      touched without a note): not;
    - anything else is.
    """
    seen = seen or {}
    last_at = parse_time(seen.get("at"))
    if observation.at is not None and last_at is not None and observation.at < last_at:
        return Verdict.SEEN
    if observation.key in (seen.get("keys") or ()):
        return Verdict.SEEN
    status = minyi_status(observation.status)
    if status is None:
        return Verdict.UNKNOWN
    forward = domain.change(current, status) == Change.APPLY
    if not forward and (observation.note is None or _digest(observation.note) == seen.get("note")):
        return Verdict.SEEN
    return Verdict.APPLY


def remembered(observation: Observation, seen: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the ticket keeps of what it has read: the newest time, the last words, the last keys."""
    seen = seen or {}
    last_at = parse_time(seen.get("at"))
    at = observation.at if last_at is None or (observation.at is not None and observation.at > last_at) else last_at
    earlier = [k for k in seen.get("keys") or () if k != observation.key][-(KEPT_KEYS - 1):]
    keys = [*earlier, observation.key]
    return {"keys": keys, "status": observation.status, "at": at.isoformat() if at else None,
            "note": _digest(observation.note) if observation.note is not None else None}
