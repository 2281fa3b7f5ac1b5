"""How much one source (and everyone together) may keep in uploads that no report has claimed yet. No I/O.

An upload is kept for a day before a report must claim it (`attachments_api.UNCLAIMED_AFTER`), so
without a bound an anonymous sender could fill the attachment volume within that day at the pace
flood control allows. Claimed uploads do not count: they belong to reports.

Per source the count is kept in this process's memory, like flood control: the source is a
pseudonym that means nothing to another replica or after a restart. The ledger remembers which
uploads a source made; the database says which of them are still unclaimed.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.body_limit import readable_size

# Sources remembered at once, and uploads per source: beyond them the oldest are forgotten, so a
# crowd of sources costs bounded memory (and the total quota still holds).
MAX_SOURCES = 50_000
MAX_PER_SOURCE = 1_000


@dataclass(frozen=True)
class Held:
    attachment_id: str
    size: int
    at: datetime


class UnclaimedLedger:
    """Per source, the uploads this process took within the window, oldest first."""

    def __init__(self, window: timedelta, *, max_sources: int = MAX_SOURCES,
                 max_per_source: int = MAX_PER_SOURCE) -> None:
        self.window = window
        self.max_sources = max_sources
        self.max_per_source = max_per_source
        self._sources: OrderedDict[str, deque[Held]] = OrderedDict()

    def held(self, source: str, now: datetime) -> list[Held]:
        """The source's uploads of the last `window` (older ones are forgotten by now, claimed or not)."""
        uploads = self._sources.get(source)
        if uploads is None:
            return []
        while uploads and uploads[0].at <= now - self.window:
            uploads.popleft()
        if not uploads:
            del self._sources[source]
            return []
        return list(uploads)

    def add(self, source: str, held: Held) -> None:
        uploads = self._sources.setdefault(source, deque())
        self._sources.move_to_end(source)
        uploads.append(held)
        while len(uploads) > self.max_per_source:
            uploads.popleft()
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)

    def keep(self, source: str, unclaimed: set[str]) -> None:
        """Forget the source's uploads that are no longer unclaimed (a report took them, or they were swept)."""
        uploads = self._sources.get(source)
        if uploads is None:
            return
        kept = deque(h for h in uploads if h.attachment_id in unclaimed)
        if kept:
            self._sources[source] = kept
        else:
            del self._sources[source]


@dataclass(frozen=True)
class Refusal:
    retry_after: int
    message: str


def over_quota(held: int, incoming: int, limit: int, oldest: datetime | None, now: datetime,
               window: timedelta, *, whose: str) -> Refusal | None:
    """None when `incoming` more bytes fit beside `held` within `limit`; otherwise when to try again: once the
    oldest unclaimed upload (`oldest`) is forgotten. `whose` is "source" or "total", for the message."""
    if held + incoming <= limit:
        return None
    wait = window if oldest is None else oldest + window - now
    seconds = max(60, math.ceil(wait.total_seconds()))
    if whose == "source":
        message = (f"您已上传但尚未提交的附件超过 {readable_size(limit)}。请先提交反映，"
                   f"或约 {wait_text(seconds)}后再上传。")
    else:
        message = f"附件存储空间暂时已满，请约 {wait_text(seconds)}后再上传。"
    return Refusal(seconds, message)


def wait_text(seconds: int) -> str:
    """A wait in words: whole hours from an hour on, else whole minutes, rounded up."""
    if seconds >= 3600:
        return f"{math.ceil(seconds / 3600)} 小时"
    return f"{math.ceil(seconds / 60)} 分钟"
