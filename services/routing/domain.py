"""Domain rules of the routing service: plain functions, no I/O.

- Which grid platform serves a report: the longest region prefix among the platforms that take its
  category; none means the deputy and congress staff handle it.
- The signature both directions carry: `sha256=HMAC-SHA256(secret, timestamp + "." + body)`, in
  HTTP headers or, for statuses on the nats transport, in NATS headers of the same names.
- A ticket's statuses only move forward; a repeated or late status changes nothing.
- How long to wait before sending again to a platform that failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.routing.taxonomy import GRID_CATEGORIES

SIGNATURE_PREFIX = "sha256="
# A callback older or newer than this is refused even when correctly signed: it may be a replay.
MAX_SKEW_SECONDS = 300


# ---- where a report goes ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformScope:
    id: str
    region_prefixes: tuple[str, ...]
    categories: frozenset[str]


@dataclass(frozen=True)
class Decision:
    handler: str  # "grid" or "deputy"
    platform_id: str | None
    reason: str


def choose_platform(region_code: str, category: str, platforms: Iterable[PlatformScope]) -> Decision:
    """The platform with the longest prefix of `region_code` that takes `category`.

    Equal prefixes are broken by platform id, so every replica decides alike.
    """
    if category not in GRID_CATEGORIES:
        return Decision("deputy", None, "not_grid_category")
    best: tuple[int, str] | None = None
    serving_region = False
    for platform in platforms:
        length = max((len(p) for p in platform.region_prefixes if region_code.startswith(p)), default=-1)
        if length < 0:
            continue
        serving_region = True
        if category not in platform.categories:
            continue
        if best is None or length > best[0] or (length == best[0] and platform.id < best[1]):
            best = (length, platform.id)
    if best is None:
        return Decision("deputy", None, "outside_scope" if serving_region else "no_platform")
    return Decision("grid", best[1], "longest_prefix")


def check_prefixes(prefixes: Iterable[str]) -> list[str]:
    """Region prefixes as a platform registers them: digits, unique, at least a province."""
    seen: list[str] = []
    for prefix in prefixes:
        if not prefix.isdigit() or not 2 <= len(prefix) <= 12:
            raise ValueError(f"地区前缀“{prefix[:20]}”应为 2 至 12 位数字")
        if prefix not in seen:
            seen.append(prefix)
    if not seen:
        raise ValueError("至少需要一个地区前缀")
    return seen


# ---- signatures ---------------------------------------------------------------------------------


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    return {"X-Minyi-Timestamp": timestamp, "X-Minyi-Signature": signature(secret, timestamp, body),
            "Content-Type": "application/json"}


class SignatureError(ValueError):
    """Why a callback is refused, in words the platform's operators can act on."""


def parse_timestamp(raw: str | None, now: float, *, fresh: bool = True) -> str:
    """The signed timestamp; with `fresh`, refused when more than 5 minutes off `now`."""
    if not raw:
        raise SignatureError("缺少 X-Minyi-Timestamp 请求头")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise SignatureError("X-Minyi-Timestamp 应为 Unix 秒数")
    if fresh and abs(now - int(raw)) > MAX_SKEW_SECONDS:
        raise SignatureError("X-Minyi-Timestamp 与当前时间相差超过 5 分钟")
    return raw


def verify(secret: bytes, timestamp: str, body: bytes, given: str | None) -> None:
    if not given:
        raise SignatureError("缺少 X-Minyi-Signature 请求头")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.strip().encode()):
        raise SignatureError("签名不正确")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name in any case: NATS keeps header names as the publisher wrote them."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def grid_platform_of(subject: str) -> str | None:
    """The platform id of a `grid.<platform_id>.events` subject, or None for any other subject."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "grid" or parts[2] != "events" or not parts[1]:
        return None
    return parts[1]


def ticket_body(ticket_id: str, report: Mapping[str, Any], category: str, callback_url: str) -> bytes:
    """The contract's ticket, serialised once: every retry sends the very same bytes."""
    doc: dict[str, Any] = {
        "ticket_id": ticket_id,
        "report_id": report["report_id"],
        "region_code": report["region_code"],
        "category": category,
        "content": report.get("content") or "",
        "due_at": report.get("reply_due"),
        "callback_url": callback_url,
    }
    if report.get("location"):
        doc["location"] = report["location"]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# ---- ticket statuses ----------------------------------------------------------------------------


class TicketStatus(StrEnum):
    QUEUED = "queued"  # waiting to reach the platform
    SENT = "sent"  # the platform took it (2xx, or PubAck on the nats transport)
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    RETURNED = "returned"  # 退回: the platform will not handle it
    FAILED = "failed"  # the platform refused it for good (4xx)


PLATFORM_STATUSES = frozenset({"accepted", "in_progress", "resolved", "returned"})
_RANK = {TicketStatus.QUEUED: 0, TicketStatus.SENT: 1, TicketStatus.ACCEPTED: 2, TicketStatus.IN_PROGRESS: 3,
         TicketStatus.RESOLVED: 4, TicketStatus.RETURNED: 4, TicketStatus.FAILED: 4}
FINAL = frozenset({TicketStatus.RESOLVED, TicketStatus.RETURNED, TicketStatus.FAILED})


class Change(StrEnum):
    APPLY = "apply"
    REPEAT = "repeat"  # the status it has already: the platform sent it again
    STALE = "stale"  # an earlier status arriving late, or anything after the end


def change(current: str, new: str) -> Change:
    now, then = TicketStatus(current), TicketStatus(new)
    if now == then:
        return Change.REPEAT
    if now in FINAL or _RANK[then] <= _RANK[now]:
        return Change.STALE
    return Change.APPLY


# ---- retries ------------------------------------------------------------------------------------


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


def outcome_of_status(status: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx are worth trying again; any other answer will not change."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.REFUSED


# The longest wait a platform's `Retry-After` can ask for: enough for a maintenance window, and
# never so long that a mistaken or hostile value parks its tickets for good.
MAX_RETRY_AFTER_SECONDS = 3600.0
# Doubling stops here: 2**1024 is past what a float holds, and the cap is reached long before.
_MAX_DOUBLINGS = 60


def backoff_seconds(failures: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": never less than half the step, so a down platform
    is not hammered, and spread so that many replicas do not retry in step."""
    step = min(cap, base * 2 ** min(_MAX_DOUBLINGS, max(0, failures - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


def retry_after_seconds(header: str | None, now: datetime, *, cap: float = MAX_RETRY_AFTER_SECONDS) -> float | None:
    """A platform's own `Retry-After` (seconds or an HTTP date), when it gives one, at most `cap`."""
    if not header:
        return None
    text = header.strip()
    if text.isascii() and text.isdigit():
        # Compared as text first: a thousand digits are a valid header and no float.
        return cap if len(text) > 12 else min(cap, float(text))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(cap, max(0.0, (when - now).total_seconds()))
