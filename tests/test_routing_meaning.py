"""Reports compared by meaning (services/routing/meaning.py) as well as by words: pure functions and
the real model the service ships, no servers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.routing import clustering, meaning
from services.routing.classify import fingerprint

TOWNSHIP = "410102001"
UNDERPASS = ["人民路地下通道淹了，车都过不去", "人民路下穿通道的水没到膝盖了", "人民路桥洞又积水了 电动车熄火好几辆"]


def sig(text: str, vector: bytes | None) -> clustering.Signature:
    return clustering.signature(text, fingerprint(text), TOWNSHIP, "municipal_facilities", None, vector)


def test_a_signature_keeps_its_vector_and_a_cluster_keeps_only_the_sum() -> None:
    vectors = meaning.encode(UNDERPASS)
    sigs = [sig(t, v) for t, v in zip(UNDERPASS, vectors, strict=True)]
    assert clustering.Signature.from_json(json.loads(json.dumps(sigs[0].to_json()))) == sigs[0]
    profile = clustering.fold(sigs)
    stored = json.loads(json.dumps(profile.to_json()))
    assert all("meaning" not in m for m in stored["members"])  # a kilobyte each, read for every candidate
    again = clustering.Profile.from_json(stored)
    assert again.meaning_n == 3 and again.meaning_sum is not None
    expected = sum(np.frombuffer(v, dtype=np.float16).astype(np.float32) for v in vectors if v)
    assert np.allclose(again.meaning_sum, expected, atol=1e-5)
    # Adding to a loaded cluster goes on from the sum.
    again.add(sigs[0])
    assert again.meaning_n == 4


def test_the_same_problem_in_other_words_joins_by_meaning_and_not_without_it() -> None:
    # 塌 / 倒 / 坍塌: the dictionary reads them as different kinds of problem (or none).
    wall = ["金桂小区东边围墙塌了一大段", "金桂小区东墙倒了", "金桂小区东侧围墙坍塌，砖头散了一地"]
    first, second, third = (sig(t, v) for t, v in zip(wall, meaning.encode(wall), strict=True))
    cluster = clustering.fold([first, second])
    agreed = clustering.meaning_agreement(third, cluster)
    assert agreed is not None and agreed > 0.5
    assert clustering.similarity(third, cluster) >= clustering.JOIN_SIMILARITY
    # The same texts without vectors (the model not installed): the words alone keep them apart.
    bare = clustering.fold([sig(wall[0], None), sig(wall[1], None)])
    assert clustering.meaning_agreement(sig(wall[2], None), bare) is None
    assert clustering.similarity(sig(wall[2], None), bare) < clustering.JOIN_SIMILARITY


def test_without_the_model_every_vector_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meaning, "_model", lambda: None)
    assert meaning.encode(["路灯不亮", "垃圾没人收"]) == [None, None]
    assert not meaning.available()


def test_vectors_are_unit_length_float16_and_ignore_the_place_names() -> None:
    here, there = meaning.encode(["幸福小区门口路灯不亮", "光明小区门口路灯不亮"])
    assert here is not None and there is not None and len(here) == meaning.DIM * 2
    a, b = (np.frombuffer(v, dtype=np.float16).astype(np.float32) for v in (here, there))
    assert abs(float(np.linalg.norm(a)) - 1.0) < 0.01
    # The place is judged apart: masked out, the two texts read the same.
    assert float(a @ b) > 0.99
