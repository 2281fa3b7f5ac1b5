"""Flood control: one source sending too much gets 429 while everyone else goes on.

Counted per process in a sliding window (two counters per source, so the cost does not grow with
the limit). With several replicas behind a load balancer a source
gets up to that many times the limit; the ingress in front is the place for a global cap.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from shared.errors import Problem


class FloodGuard:
    def __init__(self, limit: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def check(self, bucket: str, source: str) -> None:
        if await self._limiter.hit(self.item, bucket, source):
            return
        stats = await self._limiter.get_window_stats(self.item, bucket, source)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(429, f"请求过于频繁，请 {retry_after} 秒后再试。", headers={"Retry-After": str(retry_after)})
