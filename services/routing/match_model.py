"""The learned matcher: does a report join an open cluster? Gradient-boosted trees over
`match_features`, trained on labelled development reports (bench/train_hotspot_matches.py) and
shipped as plain numbers in match_model.json with the problem space they read
(problem_space.npz), evaluated here with numpy (no learning library at run time).

Hand-made rules (`clustering.similarity`) measured well on the files they were tuned on and
worse on files written later: another problem at the same place, told with the same nouns, kept
joining. The trees read the same comparisons and the hand-made score, and learned from
people's labels when each can be trusted; out of fold, on files the trees did not see, they found
the matter more precisely and more completely (bench/README.md).

A report without a meaning vector (the model not installed) and a cluster without one (placed
before it was) are judged by the hand-made score, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from services.routing import clustering, match_features, problem_space

MODEL_FILE = Path(__file__).with_name("match_model.json")


@dataclass(frozen=True)
class Trees:
    """All trees' nodes in flat arrays; `roots` indexes each tree's first node. A node sends a row
    left when its feature is at most the node's threshold (NaN: `missing_left`)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    depth: int
    baseline: float
    join: float
    features: tuple[str, ...]
    space: np.ndarray  # the problem space the features were computed in (problem_space.py)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(joins) for each row of features (n × len(features))."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features, got shape {rows.shape}")
        node = np.broadcast_to(self.roots, (len(rows), len(self.roots))).copy()
        index = np.arange(len(rows))[:, None]
        for _ in range(self.depth):
            x = rows[index, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(self.leaf[node], node, np.where(go_left, self.left[node], self.right[node]))
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))


def trees_from(data: Mapping[str, Any], space: np.ndarray) -> Trees:
    """Trees from the shipped document: {"features", "baseline", "join", "trees": [{"feature",
    "threshold", "left", "right", "leaf", "value", "missing_left"}, …]}, child indexes within a tree."""
    columns: dict[str, list[Any]] = {k: [] for k in ("feature", "threshold", "left", "right", "leaf", "value",
                                                      "missing_left")}
    roots, depth = [], 0
    for tree in data["trees"]:
        offset = len(columns["feature"])
        roots.append(offset)
        for key in ("feature", "threshold", "leaf", "value", "missing_left"):
            columns[key].extend(tree[key])
        for key in ("left", "right"):
            columns[key].extend(offset + int(i) for i in tree[key])
        depth = max(depth, int(tree["depth"]))
    features = tuple(data["features"])
    if features != match_features.FEATURES:
        raise ValueError("match_model.json was trained on other features than match_features.FEATURES; "
                         "train it again (bench/train_hotspot_matches.py)")
    return Trees(np.array(columns["feature"], dtype=np.int64), np.array(columns["threshold"], dtype=np.float64),
                 np.array(columns["left"], dtype=np.int64), np.array(columns["right"], dtype=np.int64),
                 np.array(columns["leaf"], dtype=bool), np.array(columns["value"], dtype=np.float64),
                 np.array(columns["missing_left"], dtype=bool), np.array(roots, dtype=np.int64), depth,
                 float(data["baseline"]), float(data["join"]), features, space)


@lru_cache(maxsize=1)
def shipped() -> Trees:
    space = problem_space.shipped()
    if space is None:
        raise FileNotFoundError(f"{problem_space.SPACE_FILE} is missing: train it (bench/train_hotspot_matches.py)")
    return trees_from(json.loads(MODEL_FILE.read_text(encoding="utf-8")), space)


def scores(sig: clustering.Signature, candidates: list[clustering.ClusterView],
           trees: Trees | None = None) -> list[tuple[str, float, float]]:
    """(cluster id, score, how far past joining: score / its threshold) for each candidate: the
    trees' probability where both sides have a meaning vector, the hand-made score elsewhere."""
    trees = trees if trees is not None else shipped()
    out: list[tuple[str, float, float]] = []
    learned: list[tuple[str, list[float]]] = []
    for view in candidates:
        row = match_features.features(sig, view.profile, trees.space)
        if row is None:
            score = clustering.similarity(sig, view.profile)
            out.append((view.id, score, score / clustering.JOIN_SIMILARITY))
        else:
            learned.append((view.id, row))
    if learned:
        probabilities = trees.probabilities(np.array([row for _, row in learned]))
        out.extend((cid, float(p), float(p) / trees.join) for (cid, _), p in zip(learned, probabilities, strict=True))
    return out


def best_match(sig: clustering.Signature, candidates: Iterable[clustering.ClusterView], at: datetime,
               window: timedelta, trees: Trees | None = None) -> tuple[str, float] | None:
    """The open cluster this report joins, with its score; None starts a new one. Ties: the older id."""
    open_ = [c for c in candidates if c.last_at >= at - window]
    joining = [(cid, score, margin) for cid, score, margin in scores(sig, open_, trees) if margin >= 1.0]
    if not joining:
        return None
    cid, score, _ = min(joining, key=lambda t: (-t[2], t[0]))
    return cid, score
