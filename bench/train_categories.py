"""Learn the category model (services/routing/category_model.py) and measure it, file by file.

    .venv/bin/python bench/train_categories.py [--write]

Training data: every labelled file of tests/data/routing except the held-out hotspots_v2/heldout.jsonl
(reports_dev, reports_eval, hotspots, hotspots_v2/dev, hotspots_v2/dev2). Each file is then classified by a model
trained on the others ("out of fold"), so no figure below comes from a model that saw the
report it classifies; for each file it prints the accuracy of the dictionary alone (the baseline,
same run) and of the dictionary plus the model at several scales. `--write` writes
services/routing/category_counts.json from all five files; a test checks the committed file is
what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.routing import category_model  # noqa: E402
from services.routing.classify import scores  # noqa: E402

DATA = ROOT / "tests" / "data" / "routing"
FILES = ("reports_dev.jsonl", "reports_eval.jsonl", "hotspots.jsonl", "hotspots_v2/dev.jsonl",
         "hotspots_v2/dev2.jsonl")
SCALES = (4.0, 6.0, 8.0, 12.0)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write services/routing/category_counts.json")
    args = parser.parse_args()
    print(f"{'file':<24} {'reports':>7}  {'dictionary':>10}  " + "  ".join(f"{'scale ' + str(s):>10}" for s in SCALES))
    for held in FILES:
        model = category_model.count(row for name in FILES if name != held for row in rows(name))
        test = rows(held)
        alone = sum(max(f, key=lambda c: (f[c], c)) == cat if (f := scores(text)) else cat == "other"
                    for text, cat in test) / len(test)
        figures = [sum(decide(model, text, s) == cat for text, cat in test) / len(test) for s in SCALES]
        print(f"{held:<24} {len(test):>7}  {alone:>10.1%}  " + "  ".join(f"{f:>10.1%}" for f in figures))
    if args.write:
        counts = category_model.count(training_rows())
        category_model.COUNTS_FILE.write_text(json.dumps(counts.to_json(), ensure_ascii=False, separators=(",", ":"))
                                              + "\n", encoding="utf-8")
        print(f"wrote {category_model.COUNTS_FILE.relative_to(ROOT)}: {sum(counts.reports.values())} reports, "
              f"{len(counts.features)} features")


if __name__ == "__main__":
    main()
