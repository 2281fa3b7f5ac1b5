"""The colour rule as SQL: each colour selects exactly the rows worked out by hand, on every status,
and the same rows `domain.color` colours so over a grid of due and look-back times around now."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from conftest import Servers
from sqlalchemy import Boolean, DateTime, Integer, String, column, select, values

from services.suggestions.domain import YELLOW_DAYS, Color, Status, color, redact
from services.suggestions.queries import color_is, published
from shared.db import Database

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
D, S = timedelta(days=1), timedelta(seconds=1)
# (status, due_at, next_review_at, reference) and the colour each must have.
HAND = [
    ((Status.SUBMITTED, None, None, False), Color.GREEN),
    ((Status.ASSIGNED, NOW + 16 * D, None, False), Color.GREEN),
    ((Status.ASSIGNED, NOW + 15 * D, None, False), Color.YELLOW),
    ((Status.ASSIGNED, NOW, None, False), Color.YELLOW),
    ((Status.ASSIGNED, NOW - S, None, False), Color.RED),
    ((Status.ASSIGNED, NOW + 60 * D, NOW - D, False), Color.GREEN),
    ((Status.REPLIED, None, None, False), Color.GREEN),
    ((Status.REASSIGNED, NOW - D, None, False), Color.RED),
    ((Status.REASSIGNED, NOW + 3 * D, None, False), Color.YELLOW),
    ((Status.REFERRED, None, None, False), Color.GREEN),
    ((Status.FOLLOWING_UP, None, NOW - S, False), Color.RED),
    ((Status.FOLLOWING_UP, None, NOW + 10 * D, False), Color.YELLOW),
    ((Status.FOLLOWING_UP, None, NOW + 100 * D, False), Color.GREEN),
    ((Status.FOLLOWING_UP, NOW - 30 * D, NOW + 100 * D, False), Color.GREEN),
    ((Status.FOLLOWING_UP, None, None, False), Color.GREEN),
    ((Status.FOLLOWING_UP, None, NOW - D, True), Color.GREY),
    ((Status.CLOSED, None, None, False), Color.BLUE),
    ((Status.CLOSED, NOW - D, None, True), Color.BLUE),
]
OFFSETS = [None, timedelta(days=-40), timedelta(seconds=-1), timedelta(0), timedelta(seconds=1), timedelta(days=3),
           timedelta(days=YELLOW_DAYS) - timedelta(seconds=1), timedelta(days=YELLOW_DAYS),
           timedelta(days=YELLOW_DAYS, seconds=1), timedelta(days=90)]


Case = tuple[int, str, datetime | None, datetime | None, bool]


async def _chosen(servers: Servers, cases: list[Case]) -> dict[Color, set[int]]:
    """The rows each colour's SQL condition selects from `cases` (n, status, due_at, next_review_at, reference)."""
    table = values(column("n", Integer), column("status", String), column("due_at", DateTime(timezone=True)),
                   column("next_review_at", DateTime(timezone=True)), column("reference", Boolean),
                   name="cases").data(cases)
    db = Database.connect(servers.database_url, application_name="test-colours", pool_size=1)
    try:
        chosen: dict[Color, set[int]] = {}
        async with db.transaction() as session:
            for wanted in Color:
                condition = color_is(wanted, NOW, status=table.c.status, due_at=table.c.due_at,
                                     next_review_at=table.c.next_review_at, reference=table.c.reference)
                chosen[wanted] = set((await session.scalars(select(table.c.n).where(condition))).all())
        return chosen
    finally:
        await db.dispose()


async def test_each_colour_selects_the_rows_worked_out_by_hand(servers: Servers) -> None:
    assert {case[0][0] for case in HAND} == set(Status)
    chosen = await _chosen(servers, [(n, str(st), due, review, ref) for n, ((st, due, review, ref), _c)
                                     in enumerate(HAND)])
    for wanted in Color:
        assert chosen[wanted] == {n for n, (_case, c) in enumerate(HAND) if c == wanted}, wanted


async def test_each_colour_selects_exactly_the_rows_the_rule_colours_so(servers: Servers) -> None:
    """Over every status, due time and look-back time around now, with and without reference."""
    times = [NOW + offset if offset is not None else None for offset in OFFSETS]
    cases = [(n, str(status), due, review, reference) for n, (status, due, review, reference)
             in enumerate(itertools.product(Status, times, times[:4] + times[-3:], (False, True)))]
    chosen = await _chosen(servers, cases)
    for wanted in Color:
        expected = {n for n, status, due, review, reference in cases
                    if color(status, NOW, due_at=due, next_review_at=review, reference=reference) == wanted}
        assert expected, f"no case is {wanted}"
        assert chosen[wanted] == expected, (wanted, sorted(chosen[wanted] ^ expected))


REDACTED_TEXTS = [
    "联系电话13812345678，身份证号340821199001011234。",
    "电话13812345678和15999998888，证件34082119900101123X、34082119900101123x",
    "213812345678 is twelve digits; 1381234567 ten; 12345678901 starts with 12",
    "a340821199001011234 follows a letter; 3408211990010112345 has nineteen digits",
    # Full-width and other Unicode digits count as digits for Python's `\d`, so for the SQL too.
    "１３８１２３４５６７８ is all full-width; 13８１２３４５６７８ starts in ASCII",
    "３４０８２１１９９００１０１１２３４ and ١٣٨١٢٣٤٥٦٧٨ and 1٣٨١٢٣٤٥٦٧٨ and 𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖",
    "no numbers at all, 路灯坏了",
    "",
]


async def test_published_text_in_sql_is_what_redact_gives(servers: Servers) -> None:
    table = values(column("n", Integer), column("text", String), name="texts").data(list(enumerate(REDACTED_TEXTS)))
    db = Database.connect(servers.database_url, application_name="test-published", pool_size=1)
    try:
        async with db.transaction() as session:
            rows = (await session.execute(select(table.c.n, published(table.c.text)))).all()
    finally:
        await db.dispose()
    assert {n: text for n, text in rows} == {n: redact(text) for n, text in enumerate(REDACTED_TEXTS)}
    by_hand = {0: "联系电话138****5678，身份证号3408**********1234。",
               1: "电话138****5678和159****8888，证件3408**********123X、3408**********123x",
               2: REDACTED_TEXTS[2], 6: REDACTED_TEXTS[6], 7: ""}
    assert {n: text for n, text in rows if n in by_hand} == by_hand
