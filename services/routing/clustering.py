"""Hotspots (共性事项): reports on the same concrete problem at the same place, found as they arrive.

A report is compared with the open clusters of its county whose last report falls inside the
window, whatever category each report was given: two citizens who describe one blocked sewer as
污水冒出来 and as 路面积水 may be classified apart, and are still one matter. The cluster's
category is its members' majority.

What a report says is reduced once to a `Signature`: the character pairs of its text (people
paraphrase; pairs of characters survive 排水不畅 / 下水道堵 / 冒水 better than segmented words, and
typos cost one pair, not a word), the place names it mentions (`places.mentions`), its point when
the phone gave one, and its township. A cluster folds its members' signatures into a `Profile`:
for each pair, the share of members that use it.

The score of a report against a cluster is the weighted Jaccard (Ruzicka) index of the text pairs,
then corrected by place: two points far apart cannot be one place; two place names that share
nothing are probably two places; another township is less likely the same place. The thresholds
were chosen on tests/data/routing/hotspots_v2/dev.jsonl only (bench/hotspot_eval.py).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from services.routing import places, problems

# A report joins the best cluster scoring at least this; "already reported?" shows down to SIMILAR.
JOIN_SIMILARITY = 0.25
SIMILAR = 0.2
# Two points farther apart than this are two places, whatever the texts say; nearer than NEAR_M one.
FAR_M = 250.0
NEAR_M = 90.0
# The place agreement assumed when a report names no place and gives no point.
UNNAMED_PLACE = 0.6
# … and when one of them names a place and the other does not.
HALF_NAMED_PLACE = 0.45
# Shared character pairs count this much more than their Jaccard share toward the same problem.
TEXT_WEIGHT = 2.0
MAX_MEMBERS = 12
# What a kind of problem named after the first weighs against the first.
LATER_KIND_WEIGHT = 0.7
# What a related kind (problems.RELATED) counts for against the same kind.
RELATED_SHARE = 0.3
OTHER_TOWNSHIP_FACTOR = 0.6
# The least mean agreement on the problem and on the place for a report to join a cluster.
PROBLEM_MIN = 0.3
PLACE_MIN = 0.4
# A cluster more than this share of whose members are at another place (far points, another
# building, names with nothing in common) is not joined, however well the rest agree.
APART_SHARE = 0.2
REGION_LEVELS = (12, 9, 6)
# The model's cosine (meaning.py) between a report and a cluster's mean: at MEANING_LOW or below it
# says nothing, at MEANING_HIGH or above the problem is the same; linear between. Chosen on the
# development files only (bench/hotspot_eval.py).
MEANING_LOW = 0.88
MEANING_HIGH = 0.94

_SKIP = frozenset("的了是在我们你他她这那有和也都就很还又被把给让到从对为与及或啊吧呢吗呀哦嗯"
                  "，。！？、；：“”‘’（）()【】…~～ ,.!?;:-—/\n\t")


@dataclass(frozen=True)
class Signature:
    """What one report says, for clustering: computed once and kept with the report."""

    grams: frozenset[str]
    kinds: tuple[str, ...]  # problems.kinds of the text without its place names, first named first
    words: tuple[str, ...]  # content words, for the cluster's keywords
    places: tuple[str, ...]
    point: tuple[float, float] | None
    region_code: str
    category: str
    meaning: bytes | None = None  # meaning.encode: the text's unit vector, float16

    def to_json(self, with_meaning: bool = True) -> dict[str, Any]:
        out = {"grams": sorted(self.grams), "kinds": list(self.kinds), "words": list(self.words),
               "places": list(self.places),
               "point": list(self.point) if self.point else None, "region_code": self.region_code,
               "category": self.category}
        if with_meaning and self.meaning is not None:
            out["meaning"] = base64.b64encode(self.meaning).decode("ascii")
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        point = data.get("point")
        return cls(frozenset(data.get("grams") or ()),
                   tuple(data.get("kinds") or ()),
                   tuple(data.get("words") or ()), tuple(data.get("places") or ()),
                   (float(point[0]), float(point[1])) if point else None, str(data.get("region_code") or ""),
                   str(data.get("category") or "other"),
                   base64.b64decode(data["meaning"]) if data.get("meaning") else None)


def text_grams(text: str) -> frozenset[str]:
    chars = [c for c in text.lower() if c not in _SKIP and not c.isspace()]
    return frozenset(chars[i] + chars[i + 1] for i in range(len(chars) - 1))


def signature(text: str, words: Iterable[str], region_code: str, category: str,
              point: tuple[float, float] | None = None, meaning: bytes | None = None) -> Signature:
    """`words` are the text's content words (`classify.fingerprint`), segmented once by the caller;
    `meaning` its vector (`meaning.encode`), encoded by the caller outside any lock."""
    mentioned = places.mentions(text)
    masked = places.masked(text)
    return Signature(text_grams(masked), problems.kinds(text, masked), tuple(dict.fromkeys(words)), mentioned,
                     point, region_code, category, meaning)


def vector_of(meaning: bytes) -> np.ndarray:
    return np.frombuffer(meaning, dtype=np.float16).astype(np.float32)


@dataclass
class Profile:
    """A cluster's members: their signatures (the latest MAX_MEMBERS, enough to judge a newcomer by)
    and what the cluster shows: categories, places named, content words."""

    count: int = 0
    members: list[Signature] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    mentions: dict[str, int] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    # The sum of the members' meaning vectors and how many were summed: the mean's cosine with a
    # newcomer is the mean of its cosines with them, computed once per cluster.
    meaning_sum: np.ndarray | None = None
    meaning_n: int = 0

    def add(self, sig: Signature) -> None:
        self.count += 1
        if sig.meaning is not None:
            vector = vector_of(sig.meaning)
            self.meaning_sum = vector if self.meaning_sum is None else self.meaning_sum + vector
            self.meaning_n += 1
        self.members = [*self.members, sig][-MAX_MEMBERS:]
        for m in sig.places:
            self.mentions[m] = self.mentions.get(m, 0) + 1
        for w in sig.words:
            self.words[w] = self.words.get(w, 0) + 1
        self.categories[sig.category] = self.categories.get(sig.category, 0) + 1

    def to_json(self) -> dict[str, Any]:
        # A cluster's members are kept without their vectors (a kilobyte each, read for every
        # candidate of every placement): their sum stands for them.
        return {"count": self.count, "members": [m.to_json(with_meaning=False) for m in self.members],
                "categories": self.categories,
                "mentions": self.mentions, "words": self.words,
                "meaning_sum": (base64.b64encode(self.meaning_sum.astype(np.float32).tobytes()).decode("ascii")
                                if self.meaning_sum is not None else None),
                "meaning_n": self.meaning_n}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        summed = data.get("meaning_sum")
        return cls(int(data.get("count", 0)), [Signature.from_json(m) for m in data.get("members") or ()],
                   dict(data.get("categories") or {}), dict(data.get("mentions") or {}), dict(data.get("words") or {}),
                   np.frombuffer(base64.b64decode(summed), dtype=np.float32).copy() if summed else None,
                   int(data.get("meaning_n") or 0))


def fold(signatures: Iterable[Signature]) -> Profile:
    profile = Profile()
    for sig in signatures:
        profile.add(sig)
    return profile


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _kind_weights(kinds: tuple[str, ...]) -> dict[str, float]:
    return {kind: 1.0 if i == 0 else LATER_KIND_WEIGHT for i, kind in enumerate(kinds)}


def _kind_agreement(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Weighted Dice of the kinds of problem: the one named first weighs most."""
    wa, wb = _kind_weights(a), _kind_weights(b)
    total = sum(wa.values()) + sum(wb.values())
    shared = sum(min(wa[k], wb[k]) for k in wa.keys() & wb.keys())
    # A kind on one side only, related to one on the other (manhole and sewer), counts half.
    only_a, only_b = wa.keys() - wb.keys(), wb.keys() - wa.keys()
    for k in only_a:
        near = [wb[j] for j in only_b if problems.related(k, j)]
        if near:
            shared += RELATED_SHARE * min(wa[k], max(near))
    return min(1.0, 2 * shared / total) if total else 0.0


def _same_township(a: str, b: str) -> bool:
    level = min(len(a), len(b), 9)
    return a[:level] == b[:level]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two reports side by side: how far they agree on the problem and on the place (each 0–1),
    and what those were made of: the kinds of problem, the text's character pairs, the place names
    (None when neither or only one names a place)."""

    problem: float
    place: float
    kinds: float
    text: float
    named: float | None


def compare(a: Signature, b: Signature) -> Comparison:
    distance = places.distance_m(a.point, b.point) if a.point is not None and b.point is not None else None
    kinds = _kind_agreement(a.kinds, b.kinds)
    text = _jaccard(a.grams, b.grams)
    problem = min(1.0, max(kinds, TEXT_WEIGHT * text))
    named = places.match(a.places, b.places)
    if distance is not None and distance > FAR_M:
        return Comparison(problem, 0.0, kinds, text, named)
    if named is None:
        # Neither names a place: nothing says they differ. One does: the other may be anywhere.
        unnamed = UNNAMED_PLACE if not a.places and not b.places else HALF_NAMED_PLACE
        place = unnamed if distance is None else (1.0 if distance <= NEAR_M else unnamed)
    else:
        place = max(named, 1.0 if distance is not None and distance <= NEAR_M and named > 0 else 0.0)
    # Another township is less likely the same place, not impossible: a deputy's code names the
    # deputy's township, the problem may lie across the road in the next one.
    place *= 1.0 if _same_township(a.region_code, b.region_code) else OTHER_TOWNSHIP_FACTOR
    return Comparison(problem, place, kinds, text, named)


def agreement(a: Signature, b: Signature) -> tuple[float, float]:
    """How far two reports agree on the problem and on the place, each 0–1. The place is 0 when
    their points lie far apart or they name another building or gate."""
    compared = compare(a, b)
    return compared.problem, compared.place


def pair(a: Signature, b: Signature) -> float:
    """How likely two reports are one problem at one place, 0–1."""
    problem, place = agreement(a, b)
    return problem * place


def meaning_agreement(sig: Signature, profile: Profile) -> float | None:
    """How far the model says the report means what the cluster's reports mean, 0–1; None when
    either has no vector (the model not installed, or reports placed before it was)."""
    return meaning_agreement_with(sig, profile.meaning_sum, profile.meaning_n)


def meaning_agreement_with(sig: Signature, meaning_sum: np.ndarray | bytes | None, meaning_n: int) -> float | None:
    """`meaning_agreement` against a cluster's stored sum (float32, as `summed_meaning` writes it)."""
    cosine = meaning_cosine(sig, meaning_sum, meaning_n)
    return None if cosine is None else meaning_agreement_of(cosine)


def meaning_agreement_of(cosine: float) -> float:
    """A cosine of the model's read as agreement on the problem, 0–1."""
    return min(1.0, max(0.0, (cosine - MEANING_LOW) / (MEANING_HIGH - MEANING_LOW)))


def meaning_cosine(sig: Signature, meaning_sum: np.ndarray | bytes | None, meaning_n: int) -> float | None:
    """The cosine of the report's vector with the mean of the cluster's; None when either has none."""
    if sig.meaning is None or meaning_sum is None or not meaning_n:
        return None
    summed = np.frombuffer(meaning_sum, dtype=np.float32) if isinstance(meaning_sum, bytes) else meaning_sum
    return float(np.dot(vector_of(sig.meaning), summed)) / meaning_n


def summed_meaning(profile: Profile) -> bytes | None:
    return profile.meaning_sum.astype(np.float32).tobytes() if profile.meaning_sum is not None else None


def similarity(sig: Signature, profile: Profile) -> float:
    """A report against a cluster: the mean of its agreements with the members kept, problem times
    place; 0 unless the problem and the place each agree well enough on average, so that a strong
    problem match cannot carry a doubtful place (城北 for 城南) nor the reverse. The problem agrees
    at least as far as the model's reading of the meanings says (`meaning_agreement`)."""
    if not profile.members:
        return 0.0
    return similarity_of([agreement(sig, member) for member in profile.members], meaning_agreement(sig, profile))


def similarity_of(pairs: list[tuple[float, float]], meant: float | None) -> float:
    """`similarity` from the report's agreements with the members kept and the meaning's."""
    if not pairs:
        return 0.0
    if meant is not None:
        pairs = [(max(p, meant), q) for p, q in pairs]
    problem = sum(p for p, _ in pairs) / len(pairs)
    place = sum(q for _, q in pairs) / len(pairs)
    apart = sum(1 for _, q in pairs if q == 0.0) / len(pairs)
    if problem < PROBLEM_MIN or place < PLACE_MIN or apart > APART_SHARE:
        return 0.0
    return sum(p * q for p, q in pairs) / len(pairs)


@dataclass(frozen=True)
class ClusterView:
    id: str
    profile: Profile
    last_at: datetime


def ranked(sig: Signature, candidates: Iterable[ClusterView], at: datetime, window: timedelta,
           threshold: float) -> list[tuple[str, float]]:
    """Open clusters scoring at least `threshold`, best first (ties: the older id)."""
    out = [(c.id, similarity(sig, c.profile)) for c in candidates if c.last_at >= at - window]
    return sorted(((i, s) for i, s in out if s >= threshold), key=lambda t: (-t[1], t[0]))


def best_match(sig: Signature, candidates: Iterable[ClusterView], at: datetime, window: timedelta,
               threshold: float | None = None) -> tuple[str, float] | None:
    """The open cluster this report joins, with its score; None starts a new one."""
    found = ranked(sig, candidates, at, window, JOIN_SIMILARITY if threshold is None else threshold)
    return found[0] if found else None


def search_keys(sigs: Iterable[Signature]) -> list[str]:
    """What a cluster is found by among many (a GIN index): for each member, each kind of problem
    alone (`340603:sewer`), and paired with each character of its place names (`340603:sewer|淮`)
    or with `-` when it names none (`340603:sewer|-`). The county leads each key, so the index
    finds the county's clusters only."""
    keys: set[str] = set()
    for sig in sigs:
        county = county_of(sig.region_code)
        chars = places.name_characters(sig.places) or {"-"}
        for kind in sig.kinds:
            keys.add(f"{county}:{kind}")
            keys.update(f"{county}:{kind}|{c}" for c in chars)
    return sorted(keys)


def lookup_keys(sig: Signature) -> list[str]:
    """The keys a new report looks clusters up by: one sharing a kind of problem with it and a place
    character (or a member naming no place) when it names a place; one sharing a kind when it
    names none. Empty when the report names no kind of problem: then only the most recent clusters
    are compared."""
    county = county_of(sig.region_code)
    chars = places.name_characters(sig.places)
    if not chars:
        return sorted(f"{county}:{kind}" for kind in sig.kinds)
    return sorted({f"{county}:{kind}|{c}" for kind in sig.kinds for c in chars}
                  | {f"{county}:{kind}|-" for kind in sig.kinds})


def majority(categories: Mapping[str, int], first: str) -> str:
    """The category most members got; a tie keeps the one the cluster started with."""
    if not categories:
        return first
    top = max(categories.values())
    return first if categories.get(first, 0) == top else min(c for c, n in categories.items() if n == top)


def top_places(profile: Profile, limit: int = 3) -> list[str]:
    ranked_ = sorted(profile.mentions.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    return [m for m, _ in ranked_[:limit]]


def keywords(words: Mapping[str, int], count: int, limit: int = 6) -> list[str]:
    """The words most of the cluster's reports use, longest first among equals."""
    ranked_ = sorted(words.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    floor = max(1, count // 2) if count > 2 else 1
    return [w for w, n in ranked_ if n >= floor][:limit]


def county_of(region_code: str) -> str:
    return region_code[:6]


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


def point_of(location: Mapping[str, Any] | None) -> tuple[float, float] | None:
    if not location:
        return None
    lat, lon = location.get("lat"), location.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float) and math.isfinite(lat) and math.isfinite(lon):
        return float(lat), float(lon)
    return None

