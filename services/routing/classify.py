"""Which category a report's text is about: segmentation with the domain dictionary, then scores.

Each dictionary word found counts its weight for its category; a word early in the text counts a
little more, because people name their main complaint first and add the rest after. The citizen's
own hint is taken unless the text clearly says something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import rjieba

from services.routing import category_examples, category_model, places
from services.routing.lexicon import LEXICON, STOPWORDS
from services.routing.taxonomy import UNKNOWN, category_of_hint

# A hint yields to the text only when the text is this sure of another category and finds
# the hinted one less than half as strongly.
OVERRULE_SCORE = 4.0
OVERRULE_SHARE = 0.5
# The learnt model's log-likelihoods are divided by this before they are added to the dictionary's
# scores; chosen by bench/train_categories.py, each labelled file measured with a model trained on
# the others.
MODEL_SCALE = 6.0
# What the nearest labelled reports' vote (shares summing to 1) weighs against the above: chosen
# out of fold on the training files by bench/train_categories.py.
EXAMPLES_WEIGHT = 6.0


@lru_cache(maxsize=1)
def segmenter() -> rjieba.Jieba:
    jieba = rjieba.Jieba()
    for words in LEXICON.values():
        for word in words:
            jieba.add_word(word, None, None)
    return jieba


def tokens(text: str) -> list[str]:
    return [t for t in segmenter().cut(text) if t.strip()]


@dataclass(frozen=True)
class Classification:
    category: str
    source: str  # "hint", "text" or "none"
    scores: dict[str, float]

    @property
    def confidence(self) -> float:
        total = sum(self.scores.values())
        return round(self.scores.get(self.category, 0.0) / total, 3) if total else 0.0


def scores(text: str) -> dict[str, float]:
    """The dictionary's score of each category found in the text. The names in place mentions are
    blanked out first (not the kind of place: 卫生院 still says health): 银杏苑 is a community, not
    a tree."""
    words = tokens(places.names_masked(text))
    found: dict[str, float] = {}
    for i, word in enumerate(words):
        position = 1.0 + 0.5 * (1.0 - i / max(1, len(words)))
        for category, weight in _matches(word):
            found[category] = found.get(category, 0.0) + weight * position
    return found


@lru_cache(maxsize=65536)
def _matches(token: str) -> tuple[tuple[str, float], ...]:
    """Dictionary words in a token: the token itself, or the words inside a longer token (街心公园,
    发臭), found longest first without overlap and counted a little less."""
    # Cached: the same words come back report after report, and a miss scans the whole dictionary.
    whole = _INDEX.get(token)
    if whole is not None:
        return tuple(whole)
    out: list[tuple[str, float]] = []
    taken = [False] * len(token)
    for word in _BY_LENGTH:
        if len(word) >= len(token):
            continue
        start = token.find(word)
        while start >= 0:
            if not any(taken[start:start + len(word)]):
                taken[start:start + len(word)] = [True] * len(word)
                out.extend((category, weight * 0.8) for category, weight in _INDEX[word])
            start = token.find(word, start + 1)
    return tuple(out)


_INDEX: dict[str, list[tuple[str, float]]] = {}
for _category, _words in LEXICON.items():
    for _word, _weight in _words.items():
        _INDEX.setdefault(_word, []).append((_category, float(_weight)))
_BY_LENGTH = sorted(_INDEX, key=lambda w: (-len(w), w))


def combine(found: dict[str, float], learnt: dict[str, float] | None,
            nearest: dict[str, float] | None) -> str | None:
    """The dictionary's scores, plus the learnt model's log-likelihoods (category_model) scaled so
    that a dictionary word weighs more than a few characters, plus the categories of the nearest
    labelled reports (category_examples) weighted by EXAMPLES_WEIGHT."""
    combined = dict(found)
    if learnt:
        combined = {c: found.get(c, 0.0) + learnt.get(c, -1e9) / MODEL_SCALE for c in learnt.keys() | found.keys()}
    if nearest:
        for category, share in nearest.items():
            combined[category] = combined.get(category, 0.0 if not learnt else -1e9) + EXAMPLES_WEIGHT * share
    return max(combined, key=lambda c: (combined[c], c)) if combined else None


def text_category(text: str, found: dict[str, float], meaning: bytes | None = None) -> str | None:
    """The category the text says (`combine`); `meaning` is its vector (meaning.encode), or None
    when the caller has none (then the nearest examples do not vote)."""
    counts = category_model.shipped()
    learnt = (category_model.log_scores(counts, text)
              if counts is not None and category_model.features(text) & counts.features.keys() else None)
    examples = category_examples.shipped() if meaning is not None else None
    nearest = category_examples.shares(examples, meaning) if examples is not None and meaning is not None else None
    return combine(found, learnt, nearest)


def classify(text: str, hint: str | None = None, meaning: bytes | None = None) -> Classification:
    found = scores(text)
    said = text_category(text, found, meaning)
    hinted = category_of_hint(hint)
    if hinted is not None:
        # The citizen knows what they meant unless the words clearly say otherwise.
        overruled = (said not in (None, hinted) and found.get(said, 0.0) >= OVERRULE_SCORE
                     and found.get(hinted, 0.0) < OVERRULE_SHARE * found.get(said, 0.0))
        if not overruled:
            return Classification(hinted, "hint", found)
    if said is None:
        return Classification(UNKNOWN, "none", found)
    return Classification(said, "text", found)


def fingerprint(text: str) -> list[str]:
    """The content words of a report, for telling whether two reports are about the same thing."""
    return [t for t in tokens(text) if t not in STOPWORDS and len(t) > 1 and not t.isdigit()]
