"""Train the hotspot matcher (services/routing/match_model.json and the problem space it reads,
problem_space.npz) on the development files.

    .venv/bin/python bench/train_hotspot_matches.py          # train on every development file, write the model
    .venv/bin/python bench/train_hotspot_matches.py --folds  # each file matched by trees trained on the others

Examples: each development file (tests/data/routing/hotspots_v2, never heldout.jsonl) is replayed in
arrival order with its clusters as labelled, its reports' categories given by a classifier trained
without the file; every report is compared with every open cluster of
its county inside the window (`match_features.features`), labelled 1 when it is the report's own
cluster; the problem space (`problem_space.learn`) that a file's features are computed in is
learnt from the other files, as its categories are. Gradient-boosted trees (scikit-learn's
HistGradientBoostingClassifier, fixed settings, no random draws) learn P(joins) from them, and
their nodes are written out as numbers for `match_model` to evaluate with numpy; the shipped
problem space is learnt from every file. scikit-learn is needed here only, not by the service.

`--folds` prints, for each development file, the pairwise precision and recall of
`bench/hotspot_eval.py`'s replay when the trees and the problem space were learnt from the other
files only (and each other file's features in a space learnt without it and the measured one),
beside the
hand-made score (`clustering.best_match`) on the same file: how the matcher does on reports it
never saw. The settings and the joining threshold were chosen by the mean F1 of these folds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import hotspot_eval  # noqa: E402
import train_categories  # noqa: E402

from services.routing import category_model, clustering, match_features, match_model, problem_space  # noqa: E402
from services.routing.classify import EXAMPLES_WEIGHT  # noqa: E402

FILES = ("dev.jsonl", *hotspot_eval.DEVELOPMENT)
# Rounds and leaves chosen by the folds' mean F1 among 100–400 rounds and 5–15 leaves (on four
# development files), the joining probability among 0.85–0.95 (on five).
SETTINGS: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 7, "min_samples_leaf": 20,
                            "l2_regularization": 1.0, "class_weight": "balanced", "early_stopping": False,
                            "random_state": 0}
JOIN = 0.95

Row = hotspot_eval.Row


def prepared(name: str) -> tuple[list[Row], Callable[[Row], str]]:
    """A development file's rows and their categories as a classifier that never saw the file
    gives them (out of fold, `train_categories`): the shipped classifier learnt from every
    development file and would name these nearly all right, so trees trained on its categories
    would trust a category more than it deserves on a citizen's new report."""
    rows = _labelled(name)
    hotspot_eval.encode_all(rows)
    others = [f for f in train_categories.FILES if f != f"hotspots_v2/{name}"]
    counts = category_model.count(row for other in others for row in train_categories.rows(other))
    examples = train_categories.examples_of(others)
    predicted = {str(r["id"]): train_categories.decide_with_examples(
        counts, examples, str(r["content"]), hotspot_eval.meaning_of(r), EXAMPLES_WEIGHT) or "other" for r in rows}
    right = sum(predicted[str(r["id"])] == r["category"] for r in rows)
    print(f"{name}: categories out of fold {right / len(rows):.1%} right", flush=True)
    return rows, lambda r: predicted[str(r["id"])]


def space_without(*left_out: str) -> np.ndarray:
    """The problem space learnt from the development files but `left_out`."""
    return _space(frozenset(left_out))


@cache
def _space(left_out: frozenset[str]) -> np.ndarray:
    names = [n for n in FILES if n not in left_out]
    rows = [(name, row) for name in names for row in _labelled(name)]
    for name in names:
        hotspot_eval.encode_all(_labelled(name))
    vectors = np.vstack([clustering.vector_of(hotspot_eval.meaning_of(row) or b"") for _, row in rows])
    # Labels are a file's own: cluster "c1" of one file is not cluster "c1" of another.
    return problem_space.learn(vectors, [f"{n}/{r['cluster']}" if r["cluster"] else None for n, r in rows],
                               [str(r["region_code"]) for _, r in rows],
                               [f"{n}/{r['place']}" if r.get("place") else None for n, r in rows])


@cache
def _labelled(name: str) -> list[Row]:
    return hotspot_eval.load(hotspot_eval.ROOT / "tests/data/routing/hotspots_v2" / name)


def examples(rows: list[Row], category_of: Callable[[Row], str],
             space: np.ndarray) -> tuple[list[list[float]], list[int]]:
    """Every report against every open cluster of its county, clusters as labelled, the features
    computed in `space`."""
    at = hotspot_eval.received(rows)
    features: list[list[float]] = []
    labels: list[int] = []
    open_in: dict[str, list[str]] = defaultdict(list)
    state: dict[str, tuple[clustering.Profile, Any]] = {}
    for row in rows:
        row_id, t = str(row["id"]), at[str(row["id"])]
        sig = hotspot_eval.signature_of(row, category_of)
        if sig is None:
            continue
        county = clustering.county_of(str(row["region_code"]))
        label = str(row["cluster"]) if row["cluster"] else f"alone-{row_id}"
        for cid in open_in[county]:
            profile, last = state[cid]
            if last < t - hotspot_eval.WINDOW:
                continue
            compared = match_features.features(sig, profile, space)
            if compared is not None:
                features.append(compared)
                labels.append(int(cid == label))
        if label in state:
            profile, last = state[label]
            profile.add(sig)
            state[label] = (profile, max(last, t))
        else:
            open_in[county].append(label)
            state[label] = (clustering.fold([sig]), t)
    return features, labels


def train(data: list[tuple[list[list[float]], list[int]]]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x = np.array([f for features, _ in data for f in features])
    y = np.array([label for _, labels in data for label in labels])
    # One thread: histograms summed in another order can split elsewhere, and the shipped file
    # should be what this script writes on any machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        return HistGradientBoostingClassifier(**SETTINGS).fit(x, y)


def fingerprints() -> dict[str, str]:
    """SHA-256 of each development file, so that a file changed without training again shows."""
    folder = hotspot_eval.ROOT / "tests/data/routing/hotspots_v2"
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def exported(model: Any, trained_on: list[str], count: int) -> dict[str, Any]:
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append({
            "depth": int(predictor.get_max_depth()),
            "feature": [int(v) for v in nodes["feature_idx"]],
            "threshold": [float(v) for v in nodes["num_threshold"]],
            "left": [int(v) for v in nodes["left"]], "right": [int(v) for v in nodes["right"]],
            "leaf": [bool(v) for v in nodes["is_leaf"]], "value": [float(v) for v in nodes["value"]],
            "missing_left": [bool(v) for v in nodes["missing_go_to_left"]],
        })
    return {"features": list(match_features.FEATURES), "baseline": float(np.ravel(model._baseline_prediction)[0]),
            "join": JOIN, "trained_on": trained_on,
            "sha256": {n: h for n, h in fingerprints().items() if n in trained_on}, "examples": count,
            "settings": dict(SETTINGS), "trees": trees}


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def folds(joins: list[float]) -> None:
    data = {name: prepared(name) for name in FILES}
    hand: dict[str, dict[str, Any]] = {}
    learned: dict[float, dict[str, dict[str, Any]]] = defaultdict(dict)
    for name in FILES:
        others = [n for n in FILES if n != name]
        made = [examples(*data[n], space_without(n, name)) for n in others]
        trees = match_model.trees_from(exported(train(made), others, 0), space_without(name))
        rows, category_of = data[name]
        hand[name] = hotspot_eval.describe(rows, hotspot_eval.replay_service(rows, category_of, clustering.best_match))
        for join in joins:
            learned[join][name] = hotspot_eval.describe(rows, hotspot_eval.replay_service(
                rows, category_of, partial(match_model.best_match, trees=replace(trees, join=join))))

    def figures(d: dict[str, Any]) -> str:
        return f"P {d['precision']:.1%} R {d['recall']:.1%} F1 {f1(d['precision'], d['recall']):.3f}"

    for name in FILES:
        print(f"{name}: hand-made score {figures(hand[name])}; trees trained on the other files, joining at "
              + "; ".join(f"{join}: {figures(learned[join][name])}" for join in joins))
    mean = {join: np.mean([f1(d["precision"], d["recall"]) for d in learned[join].values()]) for join in joins}
    print("mean F1: hand-made " + f"{np.mean([f1(d['precision'], d['recall']) for d in hand.values()]):.3f}, trees "
          + ", ".join(f"{mean[join]:.3f} at {join}" for join in joins)
          + " (the hand-made score was tuned on these files, so its figures are not out of fold)")


def development_examples() -> list[tuple[list[list[float]], list[int]]]:
    """Each development file's pairs (features, joined or not), in a problem space learnt from the
    other files."""
    return [examples(*prepared(name), space_without(name)) for name in FILES]


def trained(made: list[tuple[list[list[float]], list[int]]] | None = None) -> dict[str, Any]:
    """The trees learnt from every development file, as match_model.json holds them."""
    made = made if made is not None else development_examples()
    return exported(train(made), list(FILES), sum(len(labels) for _, labels in made))


def serialised(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", action="store_true", help="measure each file with trees trained on the others")
    parser.add_argument("--joins", type=float, nargs="+", default=[JOIN],
                        help="with --folds: the probabilities at which a report joins, each measured")
    args = parser.parse_args()
    if args.folds:
        folds(args.joins)
        return
    document = trained()
    match_model.MODEL_FILE.write_text(serialised(document), encoding="utf-8")
    problem_space.save(space_without())
    print(f"{len(document['trees'])} trees from {document['examples']} pairs of {len(FILES)} files "
          f"→ {match_model.MODEL_FILE}; the problem space → {problem_space.SPACE_FILE}")


if __name__ == "__main__":
    main()
