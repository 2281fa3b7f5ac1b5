"""The learned hotspot matcher (services/routing/match_model.py): the shipped trees, their
evaluation with numpy against the library that trained them, and the decisions they make on
reports written here (not taken from any evaluation file). No servers."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from services.routing import clustering, match_features, match_model, meaning, problem_space
from services.routing.classify import fingerprint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import train_hotspot_matches  # noqa: E402

TOWNSHIP = "330106001"
AT = datetime(2026, 9, 1, 9, tzinfo=UTC)
WINDOW = timedelta(days=30)


def sig(text: str, vector: bytes | None, category: str = "municipal_facilities") -> clustering.Signature:
    return clustering.signature(text, fingerprint(text), TOWNSHIP, category, None, vector)


def signatures(texts: list[str]) -> list[clustering.Signature]:
    return [sig(t, v) for t, v in zip(texts, meaning.encode(texts), strict=True)]


def view(cid: str, members: list[clustering.Signature]) -> clustering.ClusterView:
    return clustering.ClusterView(cid, clustering.fold(members), AT)


def test_the_shipped_trees_read_todays_features_and_never_saw_the_held_out_file() -> None:
    document = json.loads(match_model.MODEL_FILE.read_text(encoding="utf-8"))
    assert tuple(document["features"]) == match_features.FEATURES
    assert document["trained_on"] == list(train_hotspot_matches.FILES)
    assert not any("heldout" in name for name in document["trained_on"])
    assert document["join"] == train_hotspot_matches.JOIN and 0.5 < document["join"] < 1.0
    trees = match_model.shipped()
    assert len(trees.roots) == train_hotspot_matches.SETTINGS["max_iter"]
    # Every child index stays inside the node arrays: a broken file fails here, not in a placement.
    inner = ~trees.leaf
    assert (trees.left[inner] < len(trees.leaf)).all() and (trees.right[inner] < len(trees.leaf)).all()


def test_trees_with_other_features_are_refused() -> None:
    document = json.loads(match_model.MODEL_FILE.read_text(encoding="utf-8"))
    document["features"] = document["features"][:-1]
    with pytest.raises(ValueError, match="train it again"):
        match_model.trees_from(document, match_model.shipped().space)


def test_numpy_evaluates_the_exported_trees_as_the_library_that_trained_them() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(7)
    width = len(match_features.FEATURES)
    x = rng.normal(size=(2000, width))
    y = (x[:, 0] + 0.5 * x[:, 5] * x[:, 7] - x[:, 10] > 0.3).astype(int)
    model = HistGradientBoostingClassifier(**{**train_hotspot_matches.SETTINGS, "max_iter": 40}).fit(x, y)
    trees = match_model.trees_from(train_hotspot_matches.exported(model, ["synthetic"], len(y)),
                                   np.eye(meaning.DIM, problem_space.DIMENSIONS, dtype=np.float32))
    fresh = rng.normal(size=(500, width))
    fresh[::50, 3] = np.nan  # a missing value goes where the library sends it
    assert np.allclose(trees.probabilities(fresh), model.predict_proba(fresh)[:, 1], atol=1e-9)
    with pytest.raises(ValueError, match="features"):
        trees.probabilities(fresh[:, :-1])


def test_the_same_problem_in_other_words_joins_and_another_problem_at_the_same_place_does_not() -> None:
    sewer = signatures(["凤起路和中河路交叉口下水道堵了，污水都漫到路上了",
                        "凤起路中河路口的下水道又冒水了，臭得很",
                        "中河路凤起路路口窨井返水，路面全是脏水"])
    cluster = view("sewer", sewer[:2])
    joined = match_model.best_match(sewer[2], [cluster], AT, WINDOW)
    assert joined is not None and joined[0] == "sewer" and joined[1] >= match_model.shipped().join

    [lights] = signatures(["凤起路和中河路交叉口的红绿灯坏了好几天，车都乱开"])
    assert match_model.best_match(lights, [cluster], AT, WINDOW) is None
    [elsewhere] = signatures(["文一路学院路口下水道堵了，污水漫到路上"])
    assert match_model.best_match(elsewhere, [cluster], AT, WINDOW) is None


def test_a_cluster_outside_the_window_is_not_joined() -> None:
    sewer = signatures(["凤起路和中河路交叉口下水道堵了，污水都漫到路上了",
                        "凤起路中河路口的下水道又冒水了，臭得很"])
    stale = clustering.ClusterView("old", clustering.fold(sewer[:1]), AT - WINDOW - timedelta(days=1))
    assert match_model.best_match(sewer[1], [stale], AT, WINDOW) is None


def test_without_vectors_the_hand_made_score_decides() -> None:
    texts = ["凤起路和中河路交叉口下水道堵了，污水都漫到路上了", "凤起路中河路口下水道堵了，污水漫到路上"]
    bare = [sig(t, None) for t in texts]
    cluster = view("bare", bare[:1])
    assert match_features.features(bare[1], cluster.profile, match_model.shipped().space) is None
    expected = clustering.similarity(bare[1], cluster.profile)
    [(cid, score, margin)] = match_model.scores(bare[1], [cluster])
    assert cid == "bare" and score == expected and margin == pytest.approx(expected / clustering.JOIN_SIMILARITY)
    found = match_model.best_match(bare[1], [cluster], AT, WINDOW)
    assert (found is not None) == (expected >= clustering.JOIN_SIMILARITY)


def test_the_join_threshold_decides_and_the_best_margin_wins() -> None:
    sewer = signatures(["凤起路和中河路交叉口下水道堵了，污水都漫到路上了",
                        "凤起路中河路口的下水道又冒水了，臭得很"])
    first, other = view("b-sewer", sewer[:1]), view("a-other", signatures(["凤起路中河路口共享单车乱停"]))
    trees = match_model.shipped()
    [(_, probability, _)] = match_model.scores(sewer[1], [first], trees)
    assert match_model.best_match(sewer[1], [other, first], AT, WINDOW,
                                  replace(trees, join=probability)) == ("b-sewer", probability)
    assert match_model.best_match(sewer[1], [other, first], AT, WINDOW,
                                  replace(trees, join=min(1.0, probability + 1e-6))) is None


def _cosines(vectors: np.ndarray, space: np.ndarray) -> np.ndarray:
    """Each vector's cosine in `space` with the first 200."""
    projected = vectors @ space
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    return projected @ projected[:200].T


def test_the_shipped_trees_are_what_the_training_script_learns_today() -> None:
    # A change to the comparisons or to the development files must come with trees trained again.
    # Sums of floating-point numbers come out a little apart on another CPU (the meaning vectors'
    # dot products), and trees trained there split alike with leaves a little apart, so the
    # retrained trees are compared with the shipped ones by the decisions they make.
    document = json.loads(match_model.MODEL_FILE.read_text(encoding="utf-8"))
    assert document["sha256"] == train_hotspot_matches.fingerprints(), "a development file changed: train again"
    made = train_hotspot_matches.development_examples()
    retrained = train_hotspot_matches.trained(made)
    assert {k: retrained[k] for k in ("features", "trained_on", "examples", "settings", "join")} == \
        {k: document[k] for k in ("features", "trained_on", "examples", "settings", "join")}
    # The shipped problem space and today's: the same cosines of the development reports' vectors.
    vectors = np.vstack([clustering.vector_of(v) for name in train_hotspot_matches.FILES
                         for v in meaning.encode([str(r["content"]) for r in train_hotspot_matches._labelled(name)])
                         if v is not None])
    space_drift = float(np.abs(_cosines(vectors, match_model.shipped().space)
                               - _cosines(vectors, train_hotspot_matches.space_without())).max())
    rows = np.array([f for features, _ in made for f in features])
    shipped = match_model.shipped().probabilities(rows)
    today = match_model.trees_from(retrained, train_hotspot_matches.space_without()).probabilities(rows)
    agree = float(np.mean((shipped >= document["join"]) == (today >= document["join"])))
    drift = float(np.mean(np.abs(shipped - today)))
    print(f"retrained here: {agree:.3%} of {len(rows)} joining decisions as shipped, mean |Δp| {drift:.4f}; "
          f"problem-space cosines at most {space_drift:.1e} apart")
    assert agree >= 0.998 and drift < 0.01 and space_drift < 1e-3


def test_the_same_problem_reported_from_the_next_township_still_joins() -> None:
    # A deputy's code names the deputy's township; the market may lie across the boundary. Every
    # labelled cluster lies in one township, so the township is kept out of the trees' features.
    texts = ["新华路农贸市场门口的垃圾桶天天满出来，臭得很", "新华路农贸市场垃圾没人清运，苍蝇乱飞",
             "新华路农贸市场门口垃圾桶又满了，环卫啥时候来"]
    vectors = meaning.encode(texts)
    here = [clustering.signature(t, fingerprint(t), TOWNSHIP, "sanitation_environment", None, v)
            for t, v in zip(texts[:2], vectors[:2], strict=True)]
    across = clustering.signature(texts[2], fingerprint(texts[2]), "330106002", "sanitation_environment", None,
                                  vectors[2])
    assert "same_township_share" not in match_features.FEATURES
    joined = match_model.best_match(across, [view("market", here)], AT, WINDOW)
    assert joined is not None and joined[0] == "market"
