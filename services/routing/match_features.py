"""What the learned matcher (`match_model`) reads of a report and an open cluster: numbers only.

Each is a summary of the report's comparisons with the members the cluster keeps
(`clustering.compare`), of the meaning's cosine with the cluster's mean, in the whole vectors and in
the problem space (`problem_space`), and of the report alone
(how much it says). The hand-made score (`clustering.similarity_of`) is one of them: the model
learns where to trust it and where not, from pairs labelled by people
(bench/train_hotspot_matches.py). The order is the model's: a new feature means a new model.

The township is not one of them: every labelled cluster lies in one township, so trees shown it
would learn never to join across a boundary, which the service allows (a deputy's code names the
deputy's township; the problem may lie across the road) at the cost the place agreement carries.
"""

from __future__ import annotations

import math

import numpy as np

from services.routing import clustering, problem_space

FEATURES: tuple[str, ...] = (
    "kinds_agreeing_share", "kinds_named", "text_length", "names_place", "has_point",
    "problem_mean", "problem_max", "place_mean", "place_min", "apart_share", "meaning",
    "kinds_mean", "kinds_max", "text_mean", "text_max", "kinds_disjoint_share", "named_share", "named_mean",
    "category_share", "log_count", "similarity",
    "meaning_x_place", "kinds_x_place", "no_kind", "no_kind_x_meaning", "similarity_positive",
    "problem_space", "problem_space_x_place",
)
# Character pairs beyond this many say nothing more about how much a report says.
_LONG_TEXT = 60


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def features(sig: clustering.Signature, profile: clustering.Profile, space: np.ndarray) -> list[float] | None:
    """The report against the cluster, in `FEATURES` order, `space` the problem space's projection;
    None when either has no meaning vector (the model was trained with both) or the cluster keeps
    no member."""
    cosine = clustering.meaning_cosine(sig, profile.meaning_sum, profile.meaning_n)
    if cosine is None or sig.meaning is None or profile.meaning_sum is None or not profile.members:
        return None
    # Centred, like `meaning` below, where two reports' cosines in the problem space part between
    # one problem and two (about 0.6, out of fold on the development files), so that its product
    # with the place's agreement changes sign there.
    problem = (problem_space.cosine(space, clustering.vector_of(sig.meaning), profile.meaning_sum) - 0.6) * 5
    compared = [clustering.compare(sig, member) for member in profile.members]
    agreeing = [c.problem for c in compared]
    place = [c.place for c in compared]
    kinds = [c.kinds for c in compared]
    text = [c.text for c in compared]
    named = [c.named for c in compared if c.named is not None]
    disjoint = [1.0 if sig.kinds and member.kinds and c.kinds == 0.0 else 0.0
                for c, member in zip(compared, profile.members, strict=True)]
    # Centred where the model's cosines of one problem and of two part (about 0.9), so that the
    # products below change sign there.
    meaning = (cosine - 0.9) * 10
    similarity = clustering.similarity_of(list(zip(agreeing, place, strict=True)),
                                          clustering.meaning_agreement_of(cosine))
    no_kind = 0.0 if sig.kinds else 1.0
    place_mean, kinds_mean = _mean(place), _mean(kinds)
    return [
        _mean([1.0 if k >= 0.5 else 0.0 for k in kinds]), float(len(sig.kinds)),
        min(len(sig.grams), _LONG_TEXT) / _LONG_TEXT, 1.0 if sig.places else 0.0, 1.0 if sig.point else 0.0,
        _mean(agreeing), max(agreeing), place_mean, min(place), _mean([1.0 if q == 0.0 else 0.0 for q in place]),
        meaning, kinds_mean, max(kinds), _mean(text), max(text), _mean(disjoint),
        len(named) / len(compared), _mean(named) if named else 0.0,
        profile.categories.get(sig.category, 0) / max(1, sum(profile.categories.values())),
        math.log(max(1, profile.count)), similarity,
        meaning * place_mean, kinds_mean * place_mean, no_kind, no_kind * meaning, 1.0 if similarity > 0 else 0.0,
        problem, problem * place_mean,
    ]
