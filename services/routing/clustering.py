"""Hotspots (共性事项): reports on the same concrete problem in one place, found as they arrive.

A report is compared only with the open clusters of its county and category whose last report
falls inside the window, never with history: it joins the most similar one or starts its own.
A cluster keeps, for each content word, in how many of its reports the word occurs; similarity
is the weighted Jaccard (Ruzicka) index between the report's words and those shares, so words
most reports of the cluster use weigh most, and a one-report cluster compares as plain Jaccard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Chosen on the labelled set of tests/data/routing/hotspots.jsonl (see the README there).
JOIN_SIMILARITY = 0.2
REGION_LEVELS = (12, 9, 6)


@dataclass(frozen=True)
class ClusterView:
    id: str
    document_frequency: Mapping[str, int]
    count: int
    last_at: datetime


def county_of(region_code: str) -> str:
    return region_code[:6]


def similarity(words: Iterable[str], cluster: ClusterView) -> float:
    mine = set(words)
    if not mine or cluster.count <= 0:
        return 0.0
    shares = {w: n / cluster.count for w, n in cluster.document_frequency.items()}
    shared = sum(shares.get(w, 0.0) for w in mine)
    others = sum(s for w, s in shares.items() if w not in mine)
    return shared / (len(mine) + others)


def best_match(words: Sequence[str], candidates: Iterable[ClusterView], at: datetime, window: timedelta,
               threshold: float = JOIN_SIMILARITY) -> tuple[str, float] | None:
    """The open cluster this report joins, with its similarity; None starts a new one."""
    best: tuple[str, float] | None = None
    for cluster in candidates:
        if cluster.last_at < at - window:
            continue
        score = similarity(words, cluster)
        if score >= threshold and (best is None or score > best[1] or (score == best[1] and cluster.id < best[0])):
            best = (cluster.id, score)
    return best


def joined(frequency: Mapping[str, int], words: Iterable[str]) -> dict[str, int]:
    out = dict(frequency)
    for word in set(words):
        out[word] = out.get(word, 0) + 1
    return out


def keywords(frequency: Mapping[str, int], count: int, limit: int = 6) -> list[str]:
    """The words most of the cluster's reports use, longest first among equals."""
    ranked = sorted(frequency.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    floor = max(1, count // 2) if count > 2 else 1
    return [w for w, n in ranked if n >= floor][:limit]


def common_region(codes: Iterable[str]) -> str:
    """The narrowest region (grid, township or county) that holds every report of the cluster."""
    codes = list(codes)
    for level in REGION_LEVELS:
        prefixes = {c[:level] for c in codes if len(c) >= level}
        if len(prefixes) == 1 and all(len(c) >= level for c in codes):
            return prefixes.pop()
    return county_of(codes[0]) if codes else ""


def within_window(times: Iterable[datetime], at: datetime, window: timedelta) -> int:
    return sum(1 for t in times if at - window <= t <= at)
