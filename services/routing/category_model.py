"""A naive Bayes model of the categories over characters and character pairs, learnt from labelled
reports, which the classifier adds to the domain dictionary's scores.

The dictionary knows the words that decide (化粪池, 低保); it does not know how citizens talk
around them (放出来的水跟铁锈一样, 搞到凌晨两点). The model learns that from the labelled sets of
tests/data/routing: every file except the held-out one (`hotspots_v2/heldout.jsonl`), trained by
`bench/train_categories.py`, which writes `category_counts.json` beside this module and measures
each file with the model trained on the others.

The counts file holds, per category, how many reports it has and in how many of them each feature
occurs; features seen in only one report are left out (they say nothing about an unseen report).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from services.routing import places, problems

COUNTS_FILE = Path(__file__).with_name("category_counts.json")
# Add-alpha smoothing of each feature's share of a category's reports.
ALPHA = 0.5
_SKIP = frozenset("，。！？、；：,.!?;:（）()…~～“”\"' \n\t")


def features(text: str) -> set[str]:
    """Characters, character pairs, and the kinds of problem the text names (problems.py), which
    tie 锅炉 and 取暖 to one matter the way no single character does."""
    chars = [c for c in text if c not in _SKIP and not c.isspace()]
    kinds = {f"kind:{k}" for k in problems.kinds(text, places.masked(text))}
    return set(chars) | {chars[i] + chars[i + 1] for i in range(len(chars) - 1)} | kinds


@dataclass(frozen=True)
class CategoryCounts:
    reports: Mapping[str, int]  # category → labelled reports
    features: Mapping[str, Mapping[str, int]]  # feature → category → reports holding it

    def to_json(self) -> dict[str, object]:
        return {"alpha": ALPHA, "reports": dict(sorted(self.reports.items())),
                "features": {f: dict(sorted(c.items())) for f, c in sorted(self.features.items())}}


def count(rows: Iterable[tuple[str, str]], min_reports: int = 2) -> CategoryCounts:
    """Counts from (text, category) pairs; a feature must occur in `min_reports` reports."""
    reports: dict[str, int] = {}
    table: dict[str, dict[str, int]] = {}
    for text, category in rows:
        reports[category] = reports.get(category, 0) + 1
        for feature in features(text):
            per = table.setdefault(feature, {})
            per[category] = per.get(category, 0) + 1
    kept = {f: per for f, per in table.items() if sum(per.values()) >= min_reports}
    return CategoryCounts(reports, kept)


def log_scores(counts: CategoryCounts, text: str) -> dict[str, float]:
    """Each category's log-likelihood of the text (Bernoulli presence of the known features seen
    in it), shifted so that the best is 0."""
    seen = [counts.features[f] for f in features(text) if f in counts.features]
    out: dict[str, float] = {}
    for category, n in counts.reports.items():
        score = math.log(n)
        for per in seen:
            score += math.log((per.get(category, 0) + ALPHA) / (n + 2 * ALPHA))
        out[category] = score
    best = max(out.values(), default=0.0)
    return {c: s - best for c, s in out.items()}


@lru_cache(maxsize=1)
def shipped() -> CategoryCounts | None:
    """The counts shipped with the service; None when the file is missing (the dictionary alone
    then decides)."""
    if not COUNTS_FILE.exists():
        return None
    data = json.loads(COUNTS_FILE.read_text(encoding="utf-8"))
    return CategoryCounts(data["reports"], data["features"])
