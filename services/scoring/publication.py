"""A published ranking as events: pages each well under NATS's largest message, and a digest of the whole.

NATS refuses a message over its `max_payload` (1 MB by default), and an outbox row the relay
cannot publish holds up every event staged after it. A province's ranking is thousands of rows,
so a publication goes out as several `scoring.ranking.published` events, each with at most
PAGE_BYTES of rows. Every page carries the publication's id, its counts and the digest of all
its rows, so a consumer knows when it holds the whole ranking and that it holds it right.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

# Rows per event, in bytes of JSON with every non-ASCII character escaped (the longest form any
# encoder gives them): a quarter of NATS's default limit, leaving room for the envelope.
PAGE_BYTES = 256 * 1024


def row_bytes(row: Mapping[str, Any]) -> int:
    return len(json.dumps(row, ensure_ascii=True, separators=(",", ":")))


def pages(rows: Sequence[Mapping[str, Any]], budget: int = PAGE_BYTES) -> list[list[Mapping[str, Any]]]:
    """The rows in order, cut into pages of at most `budget` bytes as a JSON array (a row larger
    than that alone makes a page of its own). No rows is one empty page: the publication still
    happened."""
    out: list[list[Mapping[str, Any]]] = [[]]
    size = 2  # the brackets
    for row in rows:
        grows = row_bytes(row) + (1 if out[-1] else 0)  # a comma before all but the first
        if out[-1] and size + grows > budget:
            out.append([])
            size, grows = 2, grows - 1
        out[-1].append(row)
        size += grows
    return out


def digest(rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 (hex) of one line `rank|deputy_id|total` per row, in order, the total with two
    decimals, each line ending in a newline: easy to compute again in any language."""
    text = "".join(f"{r['rank']}|{r['deputy_id']}|{Decimal(str(r['total'])):.2f}\n" for r in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def page_events(header: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                budget: int = PAGE_BYTES) -> list[dict[str, Any]]:
    """The data of each page's event: the publication's `header` (id, year, region, level, who,
    when), `deputies` and `digest` of the whole, and this page's `page` (from 1), `pages`,
    `offset` (the position of its first row, from 0) and `rows`."""
    cut = pages(rows, budget)
    whole = {"deputies": len(rows), "digest": digest(rows), "pages": len(cut)}
    out: list[dict[str, Any]] = []
    offset = 0
    for number, page in enumerate(cut, start=1):
        out.append({**header, **whole, "page": number, "offset": offset, "rows": list(page)})
        offset += len(page)
    return out
