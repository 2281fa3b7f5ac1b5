"""The problem space (services/routing/problem_space.py): learnt from labelled pairs, it keeps the
directions that tell two problems at one place apart and drops those the place and the wording
share. No servers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.routing import meaning, problem_space


def _reports(rng: np.random.Generator, place_axes: np.ndarray, problem_axes: np.ndarray, each: int):
    """Unit vectors: the place weighs three times what the problem does, and the wording twice."""
    vectors, matters, townships, where = [], [], [], []
    for p, place in enumerate(place_axes):
        for q, problem in enumerate(problem_axes):
            for _ in range(each):
                v = 3 * place + problem + 2.0 * rng.normal(size=len(place))
                vectors.append(v / np.linalg.norm(v))
                matters.append(f"{p}/{q}")
                townships.append(f"t{p % 2}")
                where.append(f"place-{p}")
    return np.array(vectors), matters, townships, where


def _same_place_auc(vectors: np.ndarray, matters: list[str], where: list[str]) -> float:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    labels, cosines = [], []
    for i in range(len(unit)):
        for j in range(i + 1, len(unit)):
            if where[i] == where[j]:
                labels.append(matters[i] == matters[j])
                cosines.append(float(unit[i] @ unit[j]))
    return float(roc_auc_score(labels, cosines))


def test_the_learnt_space_tells_two_problems_at_one_place_apart() -> None:
    rng = np.random.default_rng(3)
    problems = rng.normal(size=(5, 48))
    space = problem_space.learn(*_reports(rng, rng.normal(size=(6, 48)), problems, each=4), dimensions=10)
    assert space.shape == (48, 10)
    # Reports never seen in learning: the same kinds of problem, at other places, in new words.
    test_vectors, test_matters, _, test_where = _reports(rng, rng.normal(size=(4, 48)), problems, each=3)
    raw = _same_place_auc(test_vectors, test_matters, test_where)
    projected = _same_place_auc(test_vectors @ space, test_matters, test_where)
    print(f"same-place AUC: whole vectors {raw:.3f}, problem space {projected:.3f}")
    assert projected > raw + 0.05


def test_a_clusters_sum_reads_as_its_mean() -> None:
    rng = np.random.default_rng(5)
    space = np.linalg.qr(rng.normal(size=(16, 4)))[0].astype(np.float32)
    report, members = rng.normal(size=16), rng.normal(size=(3, 16))
    assert problem_space.cosine(space, report, members.sum(axis=0)) == \
        pytest.approx(problem_space.cosine(space, report, members.mean(axis=0)), abs=1e-6)
    assert problem_space.cosine(space, report, np.zeros(16)) == 0.0


def test_learning_needs_pairs_of_both_kinds() -> None:
    vectors = np.eye(4)
    with pytest.raises(ValueError, match="pairs of one matter"):
        problem_space.learn(vectors, [None, None, None, None], ["t"] * 4, [None] * 4, dimensions=2)
    with pytest.raises(ValueError, match="pairs of one matter"):
        problem_space.learn(vectors, ["a", "a", "b", "b"], ["t1", "t2", "t3", "t4"], [None] * 4, dimensions=2)


def test_the_shipped_space_is_orthonormal_directions_of_the_models_vectors() -> None:
    space = problem_space.shipped()
    assert space is not None and space.shape == (meaning.DIM, problem_space.DIMENSIONS)
    assert np.allclose(space.T @ space, np.eye(problem_space.DIMENSIONS), atol=1e-4)
