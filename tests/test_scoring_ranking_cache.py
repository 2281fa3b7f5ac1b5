"""Live rankings kept a short while: made once per key and TTL, once for many callers at a time, bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.scoring.ranking_cache import Ranked, RankingCache

AT = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Maker:
    """Counts how often a ranking is made; each one has `size` rows."""

    def __init__(self, size: int = 1) -> None:
        self.calls, self.size = 0, size
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Ranked:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return Ranked(AT, [f'{{"n":{self.calls}}}'.encode()] * self.size)


async def test_a_ranking_is_made_once_within_its_ttl_and_again_after() -> None:
    clock, make = Clock(), Maker()
    cache = RankingCache(ttl=30, clock=clock)
    first = await cache.get("k", make)
    clock.now += 29.9
    assert await cache.get("k", make) is first and make.calls == 1
    clock.now += 0.1  # 30 s after it was made
    assert (await cache.get("k", make)).rows == [b'{"n":2}'] and make.calls == 2


async def test_another_key_is_another_ranking() -> None:
    make = Maker()
    cache = RankingCache(clock=Clock())
    await cache.get((2026, "33", "", "", 0), make)
    await cache.get((2026, "33", "", "33", 2), make)  # a new rules version in force
    assert make.calls == 2


async def test_callers_arriving_while_it_is_made_wait_for_the_same_one() -> None:
    make = Maker()
    make.gate = asyncio.Event()
    cache = RankingCache(clock=Clock())
    waiting = [asyncio.create_task(cache.get("k", make)) for _ in range(5)]
    await asyncio.sleep(0)
    make.gate.set()
    got = await asyncio.gather(*waiting)
    assert make.calls == 1 and all(r is got[0] for r in got)


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    calls = 0
    gate = asyncio.Event()

    async def failing() -> Ranked:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("database away")

    cache = RankingCache(clock=Clock())
    waiting = [asyncio.create_task(cache.get("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    make = Maker()
    await cache.get("k", make)
    assert make.calls == 1


async def test_the_oldest_copies_go_when_the_rows_in_all_pass_the_bound() -> None:
    cache = RankingCache(max_rows=5, clock=Clock())
    a, b = Maker(size=3), Maker(size=3)
    await cache.get("a", a)
    await cache.get("b", b)  # 6 rows: "a" goes
    await cache.get("b", b)
    await cache.get("a", a)
    assert (a.calls, b.calls) == (2, 1)


async def test_the_number_of_copies_is_bounded_too() -> None:
    cache = RankingCache(max_copies=2, clock=Clock())
    makers = {k: Maker(size=0) for k in "abc"}
    for k in "abc":
        await cache.get(k, makers[k])
    for k in "bca":
        await cache.get(k, makers[k])
    assert {k: m.calls for k, m in makers.items()} == {"a": 2, "b": 1, "c": 1}


async def test_a_ranking_larger_than_the_whole_cache_is_answered_and_not_kept() -> None:
    cache = RankingCache(max_rows=5, clock=Clock())
    big = Maker(size=6)
    assert len((await cache.get("big", big)).rows) == 6
    await cache.get("big", big)
    assert big.calls == 2


@pytest.mark.parametrize(("offset", "limit", "body"), [
    (0, 2, b'[{"a":1},{"a":2}]'),
    (1, 5, b'[{"a":2},{"a":3}]'),
    (3, 2, b"[]"),
])
def test_a_page_is_the_rows_json_joined(offset: int, limit: int, body: bytes) -> None:
    ranked = Ranked(AT, [b'{"a":1}', b'{"a":2}', b'{"a":3}'])
    assert ranked.page(offset, limit) == body
