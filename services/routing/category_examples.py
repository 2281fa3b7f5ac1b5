"""Categories by example: the labelled reports nearest in meaning to a new one, and their categories.

The dictionary and the naive Bayes model (category_model.py) read characters and words; two
reports about the same kind of matter in different words (桥洞积水过不去 / 下穿通道淹了) share few.
Their meaning vectors (meaning.py) are close, so the categories of the labelled reports nearest
a new one say what it is about when its words do not. The labelled reports are the training
files of `bench/train_categories.py` (never the held-out file); their vectors and categories
ship beside this module as `category_examples.npz`, written by that script with `--write`.

Each of the K nearest examples votes for its category with weight exp((cosine − 1) / TEMPERATURE),
so a near paraphrase outweighs several loose resemblances; the shares sum to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np

EXAMPLES_FILE: Final = Path(__file__).with_name("category_examples.npz")
K: Final = 10
TEMPERATURE: Final = 0.02


@dataclass(frozen=True)
class Examples:
    vectors: np.ndarray  # (n, 384) float32 in memory (float16 on disk), unit length
    categories: tuple[str, ...]

    def save(self, path: Path) -> None:
        np.savez_compressed(path, vectors=self.vectors.astype(np.float16),
                            categories=np.array(self.categories, dtype=np.str_))


def build(vectors: Sequence[bytes], categories: Sequence[str]) -> Examples:
    """Examples from meaning vectors (`meaning.encode`) and their true categories."""
    stacked = np.vstack([np.frombuffer(v, dtype=np.float16) for v in vectors]).astype(np.float32)
    return Examples(stacked, tuple(categories))


@lru_cache(maxsize=1)
def shipped() -> Examples | None:
    """The examples shipped with the service; None when the file is missing."""
    if not EXAMPLES_FILE.exists():
        return None
    with np.load(EXAMPLES_FILE, allow_pickle=False) as data:
        return Examples(data["vectors"].astype(np.float32), tuple(str(c) for c in data["categories"]))


def shares(examples: Examples, meaning: bytes, k: int = K) -> dict[str, float]:
    """Each category's share of the vote of the `k` examples nearest to `meaning`."""
    query = np.frombuffer(meaning, dtype=np.float16).astype(np.float32)
    cosines = examples.vectors @ query
    nearest = np.argpartition(-cosines, min(k, len(cosines) - 1))[:k]
    votes: dict[str, float] = {}
    for i in nearest:
        category = examples.categories[int(i)]
        votes[category] = votes.get(category, 0.0) + math.exp((float(cosines[i]) - 1.0) / TEMPERATURE)
    total = sum(votes.values())
    return {c: v / total for c, v in votes.items()} if total else {}
