"""A published ranking as events: pages cut by their size in bytes, and the digest of the whole (pure)."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from services.scoring.publication import digest, page_events, pages, row_bytes

# '{"a":"x"}' is 9 bytes; as a JSON array of n of them: 2 + 9n + (n - 1).
ROW = {"a": "x"}


def test_a_row_is_measured_with_every_non_ascii_character_escaped() -> None:
    assert row_bytes(ROW) == 9
    # '{"n":"\\u738b"}': the character counts as its six-byte escape, the longest form any encoder writes.
    assert row_bytes({"n": "王"}) == 14


def test_rows_fill_a_page_up_to_the_budget_counting_brackets_and_commas() -> None:
    rows = [ROW, ROW, ROW]
    assert [len(p) for p in pages(rows, budget=31)] == [3]  # [r,r,r] is exactly 31 bytes
    assert [len(p) for p in pages(rows, budget=30)] == [2, 1]  # [r,r] is 21
    assert [len(p) for p in pages(rows, budget=21)] == [2, 1]
    assert [len(p) for p in pages(rows, budget=20)] == [1, 1, 1]  # [r] is 11, [r,r] 21


def test_a_row_larger_than_the_budget_makes_a_page_of_its_own() -> None:
    assert [len(p) for p in pages([ROW, ROW], budget=5)] == [1, 1]


def test_pages_keep_the_rows_in_order() -> None:
    rows = [{"a": str(i)} for i in range(5)]
    assert [r for page in pages(rows, budget=21) for r in page] == rows
    assert pages(rows, budget=21)[1] == [{"a": "2"}, {"a": "3"}]


def test_no_rows_is_one_empty_page() -> None:
    assert pages([], budget=100) == [[]]


def test_the_digest_is_sha256_of_one_line_per_row_with_totals_to_two_decimals() -> None:
    rows = [{"rank": 1, "deputy_id": "a", "total": 6, "name": "甲"},
            {"rank": 1, "deputy_id": "b", "total": 6.0, "name": "乙"},
            {"rank": 3, "deputy_id": "c", "total": 10.35, "name": "丙"},
            {"rank": 4, "deputy_id": "d", "total": Decimal("0.5"), "name": "丁"}]
    expected = hashlib.sha256(b"1|a|6.00\n1|b|6.00\n3|c|10.35\n4|d|0.50\n").hexdigest()
    assert digest(rows) == expected


def test_each_page_event_carries_the_header_the_counts_and_its_place() -> None:
    rows = [{"rank": i + 1, "deputy_id": f"d{i}", "total": 10 - i} for i in range(3)]
    # '{"rank":1,"deputy_id":"d0","total":10}' is 38 bytes, the others 37: two fit in 2 + 38 + 1 + 37 = 78.
    events = page_events({"id": "p1", "year": 2026}, rows, budget=78)
    assert [(e["page"], e["pages"], e["offset"], len(e["rows"])) for e in events] == [(1, 2, 0, 2), (2, 2, 2, 1)]
    whole = hashlib.sha256(b"1|d0|10.00\n2|d1|9.00\n3|d2|8.00\n").hexdigest()
    for e in events:
        assert (e["id"], e["year"], e["deputies"], e["digest"]) == ("p1", 2026, 3, whole)
    assert events[1]["rows"] == [{"rank": 3, "deputy_id": "d2", "total": 8}]


def test_an_empty_ranking_is_published_as_one_page_of_nothing() -> None:
    [event] = page_events({"id": "p0"}, [])
    assert (event["page"], event["pages"], event["offset"], event["rows"], event["deputies"]) == (1, 1, 0, [], 0)
    assert event["digest"] == hashlib.sha256(b"").hexdigest()
