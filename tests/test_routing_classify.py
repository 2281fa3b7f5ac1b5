"""Classification on the labelled reports of tests/data/routing (see the README there).

The dictionary was built on these files and the category model (category_model.py) is learnt from
them, so each file is measured here with a model trained on the other files only ("out of fold");
the held-out measurement is tests/test_routing_hotspots.py on hotspots_v2/heldout.jsonl, which
neither ever saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from services.routing import category_model
from services.routing import classify as classify_module
from services.routing.classify import classify, scores
from services.routing.taxonomy import category_of_hint

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import train_categories

TARGET = 0.90


def dictionary_alone(text: str) -> str:
    found = scores(text)
    return max(found, key=lambda c: (found[c], c)) if found else "other"


@pytest.mark.parametrize("held", train_categories.FILES)
def test_the_model_helps_on_every_file_it_did_not_learn_from(held: str) -> None:
    model = category_model.count(row for name in train_categories.FILES if name != held
                                 for row in train_categories.rows(name))
    rows = train_categories.rows(held)
    alone = sum(dictionary_alone(text) == cat for text, cat in rows) / len(rows)
    combined = sum(train_categories.decide(model, text, classify_module.MODEL_SCALE) == cat
                   for text, cat in rows) / len(rows)
    print(f"\n{held} ({len(rows)} reports), out of fold: dictionary {alone:.1%}, dictionary + model "
          f"{combined:.1%} (target {TARGET:.0%})")
    assert combined >= alone, f"the model makes {held} worse: {combined:.1%} < {alone:.1%}"


def test_the_shipped_counts_are_what_the_training_script_writes() -> None:
    counts = category_model.count(train_categories.training_rows())
    shipped = json.loads(category_model.COUNTS_FILE.read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(counts.to_json())), \
        "run .venv/bin/python bench/train_categories.py --write"
    held_out = (train_categories.DATA / "hotspots_v2" / "heldout.jsonl").read_text(encoding="utf-8")
    assert "hotspots_v2/heldout.jsonl" not in train_categories.FILES and held_out


def test_a_valid_hint_decides_unless_the_text_clearly_says_otherwise() -> None:
    assert classify("这里有个问题想反映一下", "教育").category == "education"
    assert classify("这里有个问题想反映一下", "education").source == "hint"
    assert classify("小区门口的路灯坏了，井盖也没了", "投诉").source == "text"
    strong = classify("菜市场门口垃圾桶满了没人清运，臭气熏天，苍蝇乱飞", "education")
    assert (strong.category, strong.source) == ("sanitation_environment", "text")
    # The hinted category is in the text too: the citizen's choice stands.
    mixed = classify("医院门口停车太难了，乱停车堵住了救护车", "health")
    assert (mixed.category, mixed.source) == ("health", "hint")
    assert classify("今天天气不错").category == "other"
    assert category_of_hint("其他") is None and category_of_hint("园林绿化") == "greenery"
