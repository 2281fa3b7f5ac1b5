"""A small time-bounded cache for public directory data the pages read on every view.

A QR code's owner, the categories and the region tree change rarely; reading them from identity
and routing on every scan would double the page's cost for nothing. Entries live a short while,
so a renamed station shows its new name within a minute. Per process, so replicas need nothing
shared.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl_seconds: float, max_entries: int = 2048) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            self._entries.move_to_end(key)
            return found[1]
        value = await load()
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def forget(self, key: Hashable) -> None:
        """Drop one entry now: this process changed what it held (a QR code revoked from the console)."""
        self._entries.pop(key, None)
