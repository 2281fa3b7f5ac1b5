"""Parsed cluster profiles kept between "already reported?" requests (services/routing/profile_cache.py):
read once per version, never stale, bounded. No servers."""

from __future__ import annotations

from typing import Any

from services.routing import clustering
from services.routing.classify import fingerprint
from services.routing.profile_cache import ProfileCache


def _profile(text: str) -> dict[str, Any]:
    sig = clustering.signature(text, fingerprint(text), "330106001", "municipal_facilities")
    return clustering.fold([sig]).to_json()


class Table:
    """Rows (id → version, profile JSON) as the database holds them, counting what was read."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, dict[str, Any]]] = {}
        self.reads: list[list[str]] = []

    async def load(self, ids: list[str]) -> list[tuple[str, int, dict[str, Any]]]:
        self.reads.append(list(ids))
        return [(i, *self.rows[i]) for i in ids if i in self.rows]


async def test_a_profile_is_read_once_per_version() -> None:
    table, cache = Table(), ProfileCache()
    table.rows = {"a": (1, _profile("凤起路下水道堵了")), "b": (3, _profile("中河路路灯不亮"))}
    first = await cache.profiles([("a", 1), ("b", 3)], table.load)
    again = await cache.profiles([("a", 1), ("b", 3)], table.load)
    assert table.reads == [["a", "b"]] and cache.loaded == 2
    assert first["a"] is again["a"] and first["b"].members[0].words == again["b"].members[0].words

    table.rows["a"] = (2, _profile("凤起路下水道又堵了，污水漫到路上"))
    changed = await cache.profiles([("a", 2), ("b", 3)], table.load)
    assert table.reads[-1] == ["a"] and changed["a"].count == 1 and "污水" in changed["a"].members[0].words


async def test_a_cluster_gone_meanwhile_is_left_out_and_one_written_meanwhile_kept_at_its_new_version() -> None:
    table, cache = Table(), ProfileCache()
    table.rows = {"a": (5, _profile("凤起路下水道堵了"))}
    found = await cache.profiles([("a", 4), ("gone", 1)], table.load)
    assert set(found) == {"a"}
    await cache.profiles([("a", 5)], table.load)
    assert table.reads == [["a", "gone"]]


async def test_the_cache_stays_bounded_and_forgets_the_least_recently_used() -> None:
    table, cache = Table(), ProfileCache(kept=2)
    table.rows = {i: (1, _profile(f"{i}号楼电梯坏了")) for i in "abc"}
    await cache.profiles([("a", 1), ("b", 1)], table.load)
    await cache.profiles([("a", 1)], table.load)  # a used again: b is now the oldest
    await cache.profiles([("c", 1)], table.load)
    assert len(cache) == 2
    await cache.profiles([("a", 1), ("b", 1)], table.load)
    assert table.reads == [["a", "b"], ["c"], ["b"]]
