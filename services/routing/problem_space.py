"""The problem space (问题空间): the directions of the meaning vectors along which two reports at
one place tell different problems apart.

The meaning model's cosine (meaning.py) reads what a text is about as a whole: "the KTV's noise
at night" and "cars parked at the KTV's door" share a subject and come out close. Reports that
people labelled as one matter differ from each other in some directions of the vectors, reports of
two matters in the same township in others; the directions where the second kind of difference is
large against the first are those of the problem. They are found from labelled development files
(bench/train_hotspot_matches.py writes `problem_space.npz` beside this module) as the leading
eigenvectors of the between-matters scatter of pairwise differences less twice the within-matter
one (the maximum margin criterion), and the learned matcher reads the cosine of a report and a
cluster's mean there as one of its features (match_features.py). Measured out of fold on the five
development files, the cosine there tells same-place pairs of one matter from those of two with an
AUC of 0.82–0.96 against 0.73–0.92 for the whole vectors' (bench/README.md).

A projection is linear, so a cluster's projected mean is the projection of the sum it keeps: no
new column, and a cluster placed before this module existed is read alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np

SPACE_FILE: Final = Path(__file__).with_name("problem_space.npz")
DIMENSIONS: Final = 64
# How much the spread of one matter's reports counts against the spread of two matters'; 0.5, 1
# and 2 were measured out of fold, and 2 told the same-place pairs apart best.
WITHIN_WEIGHT: Final = 2.0
# Pairs that people marked as the same place but another problem count this much more among the
# pairs of two matters: they are the ones the plain cosine confuses.
SAME_PLACE_WEIGHT: Final = 3.0


def learn(vectors: np.ndarray, matters: Sequence[str | None], townships: Sequence[str],
          places: Sequence[str | None], dimensions: int = DIMENSIONS) -> np.ndarray:
    """The projection (d × `dimensions`) from labelled reports: unit meaning vectors (n × d), each
    report's matter (None: a report of its own), township and labelled place. Pairs are taken
    within a township, as placement compares them."""
    d = vectors.shape[1]
    within, between = np.zeros((d, d)), np.zeros((d, d))
    within_n, between_n = 0.0, 0.0
    by_township: dict[str, list[int]] = defaultdict(list)
    for i, township in enumerate(townships):
        by_township[township].append(i)
    for members in by_township.values():
        if len(members) < 2:
            continue
        first, second = np.triu_indices(len(members), k=1)
        index = np.array(members)
        a, b = index[first], index[second]
        differences = vectors[a] - vectors[b]
        same = np.array([matters[i] is not None and matters[i] == matters[j] for i, j in zip(a, b, strict=True)])
        weight = np.array([SAME_PLACE_WEIGHT if places[i] is not None and places[i] == places[j] else 1.0
                           for i, j in zip(a, b, strict=True)])
        if same.any():
            kept = differences[same]
            within += kept.T @ kept
            within_n += float(same.sum())
        if (~same).any():
            kept, w = differences[~same], weight[~same]
            between += (kept * w[:, None]).T @ kept
            between_n += float(w.sum())
    if not within_n or not between_n:
        raise ValueError("learning the problem space needs pairs of one matter and pairs of two in one township")
    # Orthonormal directions, so the cosine there is the whole vectors' cosine with the rest left
    # out; whitening by the within-matter scatter instead (Fisher's discriminant) measured worse.
    values, directions = np.linalg.eigh(between / between_n - WITHIN_WEIGHT * within / within_n)
    return directions[:, np.argsort(-values)[:dimensions]].astype(np.float32)


def cosine(projection: np.ndarray, vector: np.ndarray, summed: np.ndarray) -> float:
    """The cosine, in the problem space, of a report's vector and a cluster's summed vectors."""
    a, b = vector @ projection, summed @ projection
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0


@lru_cache(maxsize=1)
def shipped() -> np.ndarray | None:
    """The shipped projection; None when the file is missing (the matcher then cannot run and
    the hand-made score decides)."""
    if not SPACE_FILE.exists():
        return None
    with np.load(SPACE_FILE, allow_pickle=False) as data:
        return data["projection"].astype(np.float32)


def save(projection: np.ndarray, path: Path = SPACE_FILE) -> None:
    np.savez_compressed(path, projection=projection.astype(np.float32))
