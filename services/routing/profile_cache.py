"""Clusters' profiles kept parsed between requests, by hotspot id and version.

"Already reported?" scores up to a hundred clusters while a citizen types, and most of them are
the same from one request to the next: reading each one's profile column and parsing it into
signatures was a quarter of a request (bench/README.md). A profile is only ever written together
with a new version (`hotspots.refresh`), so a (id, version) pair names one profile for good and a
kept one is never stale; the cache only has to stay bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from services.routing import clustering

# About 12 members' signatures each: some tens of kilobytes, so a few thousand stay well under
# the routing process's memory.
KEPT = 4096

Key = tuple[str, int]
Loader = Callable[[list[str]], Awaitable[Iterable[tuple[str, int, Mapping[str, Any]]]]]


class ProfileCache:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._profiles: OrderedDict[Key, clustering.Profile] = OrderedDict()
        self.loaded = 0  # profiles read and parsed, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._profiles)

    async def profiles(self, wanted: Iterable[Key], load: Loader) -> dict[str, clustering.Profile]:
        """The profile of each (id, version), parsing only those not kept: `load` reads (id,
        version, profile JSON) of the ids it is given. A cluster written meanwhile comes back at
        its newer version and is kept under that one."""
        out: dict[str, clustering.Profile] = {}
        missing: list[str] = []
        for key in wanted:
            profile = self._profiles.get(key)
            if profile is None:
                missing.append(key[0])
            else:
                self._profiles.move_to_end(key)
                out[key[0]] = profile
        if missing:
            for hotspot_id, version, data in await load(missing):
                profile = clustering.Profile.from_json(data)
                self._keep((hotspot_id, version), profile)
                out[hotspot_id] = profile
                self.loaded += 1
        return out

    def _keep(self, key: Key, profile: clustering.Profile) -> None:
        self._profiles[key] = profile
        self._profiles.move_to_end(key)
        while len(self._profiles) > self._kept:
            self._profiles.popitem(last=False)
