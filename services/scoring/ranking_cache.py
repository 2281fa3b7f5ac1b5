"""Live rankings kept for a short while, so an anonymous page of a province does not rank it again.

Ranking a province reads every deputy's total; anyone may ask, and the public boards ask often.
Points change with every event any replica handles, so no replica can know when its copy went
stale: a copy lives TTL seconds and is then made again (a short TTL, not invalidation). While
one request makes a copy, the others asking for the same one wait for it instead of ranking too.
Each row is kept as its JSON, so a page is a join of bytes. The copies are bounded by their rows
and their number in all; the oldest go first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

LIVE_SECONDS = 30.0
MAX_ROWS = 300_000
# Region codes are anyone's to choose, and most match few deputies: the copies are counted too.
MAX_COPIES = 512


@dataclass(frozen=True)
class Ranked:
    """One ranking as made at `at`: each row's JSON, in rank order."""

    at: datetime
    rows: Sequence[bytes]

    def page(self, offset: int, limit: int) -> bytes:
        return b"[" + b",".join(self.rows[offset:offset + limit]) + b"]"


class RankingCache:
    def __init__(self, ttl: float = LIVE_SECONDS, max_rows: int = MAX_ROWS, max_copies: int = MAX_COPIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_rows, self.max_copies, self.clock = ttl, max_rows, max_copies, clock
        self._rows = 0
        self._kept: OrderedDict[Hashable, tuple[float, Ranked]] = OrderedDict()
        self._making: dict[Hashable, asyncio.Future[Ranked]] = {}
        self.made = 0  # how many times a ranking was computed, for tests and metrics

    def _fresh(self, key: Hashable) -> Ranked | None:
        kept = self._kept.get(key)
        if kept is None:
            return None
        if self.clock() - kept[0] >= self.ttl:
            self._drop(key)
            return None
        return kept[1]

    async def get(self, key: Hashable, make: Callable[[], Awaitable[Ranked]]) -> Ranked:
        if (ranked := self._fresh(key)) is not None:
            return ranked
        if (pending := self._making.get(key)) is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Ranked] = asyncio.get_running_loop().create_future()
        self._making[key] = future
        try:
            ranked = await make()
        except Exception as exc:
            # The waiters get the same failure; the next request tries again.
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._making.pop(key, None)
        self.made += 1
        future.set_result(ranked)
        self._keep(key, ranked)
        return ranked

    def _keep(self, key: Hashable, ranked: Ranked) -> None:
        if len(ranked.rows) > self.max_rows:
            return  # larger than the whole cache: answered, not kept
        self._drop(key)
        self._kept[key] = (self.clock(), ranked)
        self._rows += len(ranked.rows)
        while self._rows > self.max_rows or len(self._kept) > self.max_copies:
            self._drop(next(iter(self._kept)))

    def _drop(self, key: Hashable) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._rows -= len(kept[1].rows)

    def forget(self) -> None:
        self._kept.clear()
        self._rows = 0
