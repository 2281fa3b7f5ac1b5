"""Categories and hotspots (共性事项) of the routing service, measured on tests/data/routing/hotspots_v2.

    .venv/bin/python bench/hotspot_eval.py [--data tests/data/routing/hotspots_v2]

No servers: the service's own pure functions run over dev.jsonl and heldout.jsonl, each file on
its own, reports in `day` order (then id), as `handlers` and `hotspots.place` chain them:

* category: `classify.classify(content, None, vector)` with the text's meaning vector, as routing
  classifies (no hint: these rows carry none);
* clustering: `classify.fingerprint(content)`; an empty fingerprint is not placed (a singleton);
  otherwise the report's `clustering.signature` (text, place names, point, township, category) is
  offered the open clusters of its county (`clustering.county_of`), whatever their category, whose
  last report is inside the window (`match_model.best_match`); the report joins the match
  (`Profile.add`) or starts a cluster.
  This replays `hotspots.place` without the database: the same query conditions, the same pure
  functions, the window and hotspot threshold of `shared.settings.Settings` defaults (30 days, 5
  reports). A report received on day d is at start + d days + i minutes (i its rank in the file),
  as in tests/test_routing_hotspots.py.

Printed per file: category accuracy (and per category), pairwise precision and recall of the found
clusters against the `cluster` labels (a pair counts as together when both have the same label;
singletons pair with nothing), true clusters found whole (all members in one found cluster) and
exactly (that found cluster holds nothing else), hotspots announced (found clusters reaching the
threshold within the window) and how many of them are pure, and whether the six `six-` reports
formed one hotspot. The same clustering is also run with the true category instead of the
classified one ("oracle category"), to separate the classifier's errors from the matching's.

Baselines, same run: category: always the most frequent category of dev; clustering: a report
joins the open group of the same township (region_code) and same classified category whose last
report is within the window (no text at all).

Tune on dev only; held-out is for reporting (see tests/data/routing/hotspots_v2/README.md).

`--corrections FILE` measures instead on what congress staff corrected (`minyi hotspots
corrections`): every line there belongs to a checked hotspot, so precision and recall say how far
today's clustering agrees with those people's judgement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.routing import clustering, match_model, meaning  # noqa: E402
from services.routing.classify import classify, fingerprint  # noqa: E402
from services.routing.hotspots import UNKEYED_CANDIDATES  # noqa: E402
from shared.settings import Settings  # noqa: E402

WINDOW = timedelta(days=Settings.model_fields["hotspot_window_days"].default)
THRESHOLD = Settings.model_fields["hotspot_threshold"].default
START = datetime(2026, 9, 1, 9, tzinfo=UTC)
SIX = "c001-huaihai-changshan-sewer"
# Development files written after the first split; measured with dev.jsonl, tuned on like it.
DEVELOPMENT = ("dev2.jsonl", "dev3.jsonl", "dev4.jsonl", "dev5.jsonl")

Row = dict[str, object]


def load(path: Path) -> list[Row]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["day"], str(r["id"])))


def received(rows: list[Row]) -> dict[str, datetime]:
    return {str(r["id"]): START + timedelta(days=int(r["day"]), minutes=i) for i, r in enumerate(rows)}


class Found:
    """Found clusters: members, and for the service's replay the cluster state `hotspots.place` keeps."""

    def __init__(self) -> None:
        self.of: dict[str, str] = {}
        self.members: dict[str, list[str]] = defaultdict(list)
        self.times: dict[str, list[datetime]] = defaultdict(list)
        self.detected: set[str] = set()

    def put(self, row_id: str, cluster_id: str, at: datetime) -> None:
        self.of[row_id] = cluster_id
        self.members[cluster_id].append(row_id)
        self.times[cluster_id].append(at)
        last = max(self.times[cluster_id])
        if clustering.within_window(self.times[cluster_id], last, WINDOW) >= THRESHOLD:
            self.detected.add(cluster_id)


_MEANINGS: dict[str, bytes | None] = {}


def encode_all(rows: list[Row]) -> None:
    """The rows' meaning vectors in one batch, as routing encodes a fetched batch."""
    todo = [r for r in rows if r.get("content") is not None and str(r["content"]) not in _MEANINGS]
    for row, vector in zip(todo, meaning.encode([str(r["content"]) for r in todo]), strict=True):
        _MEANINGS[str(row["content"])] = vector


def meaning_of(row: Row) -> bytes | None:
    content = str(row["content"])
    if content not in _MEANINGS:
        encode_all([row])
    return _MEANINGS[content]


def signature_of(row: Row, category_of: Callable[[Row], str]) -> clustering.Signature | None:
    """What placement reads of a row: from its text, or (a line of `minyi hotspots corrections`,
    which has none) the signature routing kept; None when the text has no content words."""
    if row.get("content") is None and isinstance(row.get("signature"), dict):
        return clustering.Signature.from_json(row["signature"])  # type: ignore[arg-type]
    content = str(row["content"])
    words = fingerprint(content)
    if not words:
        return None
    point = (float(row["lat"]), float(row["lon"])) if row.get("lat") is not None else None  # type: ignore[arg-type]
    return clustering.signature(content, words, str(row["region_code"]), category_of(row), point,
                                meaning_of(row))


Matcher = Callable[[clustering.Signature, list[clustering.ClusterView], datetime, timedelta], tuple[str, float] | None]


def replay_service(rows: list[Row], category_of: Callable[[Row], str],
                   match_with: Matcher = match_model.best_match) -> Found:
    """`hotspots.place` without the database, report by report; `match_with` decides the joins
    (the service's learned matcher unless told otherwise)."""
    at = received(rows)
    found = Found()
    open_in: dict[str, list[str]] = defaultdict(list)
    state: dict[str, tuple[clustering.Profile, datetime]] = {}
    for n, row in enumerate(rows):
        row_id, t = str(row["id"]), at[str(row["id"])]
        sig = signature_of(row, category_of)
        if sig is None:
            found.put(row_id, f"unplaced-{row_id}", t)
            continue
        county = clustering.county_of(str(row["region_code"]))
        keys = set(clustering.lookup_keys(sig))
        # as `hotspots.open_clusters`: of the most recent clusters those near in meaning (all of them
        # for a report with neither a key nor a vector), and those sharing a search key
        joinable = sorted((cid for cid in open_in[county] if state[cid][1] >= t - WINDOW),
                          key=lambda cid: state[cid][1], reverse=True)
        recent = set(joinable[:UNKEYED_CANDIDATES])
        if sig.meaning is not None:
            recent = {cid for cid in recent if (clustering.meaning_agreement(sig, state[cid][0]) or 0.0) > 0.0}
        elif keys:
            recent = set()
        views = [clustering.ClusterView(cid, state[cid][0], state[cid][1]) for cid in joinable
                 if cid in recent or keys & set(clustering.search_keys(state[cid][0].members))]
        match = match_with(sig, views, t, WINDOW)
        if match is None:
            cid = f"k{n:04d}"
            open_in[county].append(cid)
            state[cid] = (clustering.fold([sig]), t)
        else:
            cid = match[0]
            profile, last = state[cid]
            profile.add(sig)
            state[cid] = (profile, max(last, t))
        found.put(row_id, cid, t)
    return found


def replay_baseline(rows: list[Row], category_of: Callable[[Row], str]) -> Found:
    """Same township and same category within the window, whatever the text says."""
    at = received(rows)
    found = Found()
    current: dict[tuple[str, str], tuple[str, datetime]] = {}
    for n, row in enumerate(rows):
        row_id, t = str(row["id"]), at[str(row["id"])]
        key = (str(row["region_code"]), category_of(row))
        group = current.get(key)
        cid = group[0] if group is not None and group[1] >= t - WINDOW else f"b{n:04d}"
        current[key] = (cid, t)
        found.put(row_id, cid, t)
    return found


def pairwise(truth: dict[str, str | None], found: dict[str, str]) -> tuple[float, float, int, int]:
    together_found = together_true = both = 0
    for a, b in combinations(sorted(truth), 2):
        same_true = truth[a] is not None and truth[a] == truth[b]
        same_found = found[a] == found[b]
        together_true += same_true
        together_found += same_found
        both += same_true and same_found
    precision = both / together_found if together_found else 1.0
    recall = both / together_true if together_true else 1.0
    return precision, recall, together_found, together_true


def describe(rows: list[Row], found: Found) -> dict[str, object]:
    truth = {str(r["id"]): (str(r["cluster"]) if r["cluster"] else None) for r in rows}
    precision, recall, n_found, n_true = pairwise(truth, found.of)
    true_members: dict[str, set[str]] = defaultdict(set)
    for row_id, label in truth.items():
        if label:
            true_members[label].add(row_id)
    whole = exact = 0
    for members in true_members.values():
        ids = {found.of[m] for m in members}
        if len(ids) == 1:
            whole += 1
            exact += set(found.members[ids.pop()]) == members
    pure = sum(1 for cid in found.detected
               if len({truth[m] for m in found.members[cid]}) == 1 and truth[found.members[cid][0]] is not None)
    six = [str(r["id"]) for r in rows if r["cluster"] == SIX]
    six_text = "not in this file"
    if six:
        groups = Counter(found.of[s] for s in six)
        cid = groups.most_common(1)[0][0]
        others = [m for m in found.members[cid] if m not in six]
        formed = len(groups) == 1 and cid in found.detected
        six_text = (f"{'YES' if formed else 'no'}: the six fall into {len(groups)} cluster(s) "
                    f"{sorted(groups.values(), reverse=True)}; the largest "
                    f"{'is' if cid in found.detected else 'is not'} a hotspot"
                    + (f" and also holds {len(others)} other report(s)" if others else ""))
    return {"precision": precision, "recall": recall, "pairs_found": n_found, "pairs_true": n_true,
            "whole": whole, "exact": exact, "true_clusters": len(true_members),
            "found_clusters": len(set(found.of.values())), "hotspots": len(found.detected), "pure": pure,
            "six": six_text}


def line(name: str, d: dict[str, object]) -> str:
    return (f"  {name:<34} P {d['precision']:6.1%}  R {d['recall']:6.1%}  "
            f"(pairs found {d['pairs_found']}, true {d['pairs_true']}); "
            f"whole {d['whole']}/{d['true_clusters']}, exact {d['exact']}; "
            f"{d['found_clusters']} clusters found; hotspots ≥{THRESHOLD}: {d['hotspots']} ({d['pure']} pure)")


def evaluate(name: str, rows: list[Row], majority: str) -> None:
    encode_all(rows)
    predicted = {str(r["id"]): classify(str(r["content"]), None, meaning_of(r)).category for r in rows}
    right = sum(predicted[str(r["id"])] == r["category"] for r in rows)
    base = sum(r["category"] == majority for r in rows)
    print(f"\n== {name}: {len(rows)} reports, {len({r['cluster'] for r in rows if r['cluster']})} true clusters "
          f"({sum(1 for r in rows if r['cluster'])} reports in them)")
    print(f"  category accuracy {right / len(rows):.1%} ({right}/{len(rows)}); "
          f"baseline always '{majority}' {base / len(rows):.1%}; ratio {right / max(1, base):.2f}")
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        per[str(r["category"])][1] += 1
        per[str(r["category"])][0] += predicted[str(r["id"])] == r["category"]
    print("  per category: " + ", ".join(f"{c} {k}/{n}" for c, (k, n) in sorted(per.items())))
    by_classifier: Callable[[Row], str] = lambda r: predicted[str(r["id"])]  # noqa: E731
    by_truth: Callable[[Row], str] = lambda r: str(r["category"])  # noqa: E731
    ours = describe(rows, replay_service(rows, by_classifier))
    base_d = describe(rows, replay_baseline(rows, by_classifier))
    print(line("service (classified category)", ours))
    print(line("baseline township+category", base_d))
    print(line("service, oracle category", describe(rows, replay_service(rows, by_truth))))
    print(line("baseline, oracle category", describe(rows, replay_baseline(rows, by_truth))))
    f1 = lambda d: 2 * d["precision"] * d["recall"] / ((d["precision"] + d["recall"]) or 1)  # noqa: E731
    ratio = f1(ours) / (f1(base_d) or 1)
    print(f"  pairwise F1 service {f1(ours):.3f} / baseline {f1(base_d):.3f} = ratio {ratio:.2f}")
    print(f"  six paraphrases at one crossroads ({SIX}): {ours['six']}")


def corrected(rows: list[Row]) -> None:
    """The clustering replayed on the reports staff checked, against the hotspots they left."""
    recorded: Callable[[Row], str] = lambda r: str(r["category"])  # noqa: E731
    ours = describe(rows, replay_service(rows, recorded))
    print(f"staff-checked hotspots: {len(rows)} reports in {ours['true_clusters']} hotspots")
    print(line("clustering now", ours))
    print(line("baseline township+category", describe(rows, replay_baseline(rows, recorded))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "routing" / "hotspots_v2")
    parser.add_argument("--dev-only", action="store_true",
                        help="measure the development files only (dev, dev2, dev3, dev4, dev5), not the held-out one")
    parser.add_argument("--corrections", type=Path, help="measure the clustering on a file written by "
                        "`minyi hotspots corrections` instead (staff's corrections as the truth)")
    args = parser.parse_args()
    if args.corrections is not None:
        corrected(load(args.corrections))
        return
    dev = load(args.data / "dev.jsonl")
    majority = Counter(str(r["category"]) for r in dev).most_common(1)[0][0]
    print(f"window {WINDOW.days} days, hotspot threshold {THRESHOLD}, "
          f"join similarity {clustering.JOIN_SIMILARITY} (services/routing/clustering.py)")
    for name in ("dev.jsonl", *DEVELOPMENT):
        if (args.data / name).exists():
            evaluate(name, load(args.data / name), majority)
    if not args.dev_only:
        evaluate("heldout.jsonl", load(args.data / "heldout.jsonl"), majority)


if __name__ == "__main__":
    main()
