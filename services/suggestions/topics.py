"""Rules of a supervision topic (人大监督) that keeps gathering reports: plain functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence


def joined(report_ids: Sequence[str], count: int, new_ids: Sequence[str],
           announced: int | None) -> tuple[list[str], int] | None:
    """The topic's reports and count once `new_ids` joined its hotspot; None when nothing changes.

    Reports are only ever added (a redelivered announcement adds none twice), and the count never
    falls below what the topic lists or what it said before: routing's count may lag the list when
    announcements cross.
    """
    known = set(report_ids)
    added = [r for r in dict.fromkeys(new_ids) if r not in known]
    ids = [*report_ids, *added]
    total = max(count, len(ids), announced or 0)
    if not added and total == count:
        return None
    return ids, total
