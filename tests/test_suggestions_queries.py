"""The colour rule as SQL gives what `domain.color` gives, row by row, on PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from conftest import Servers
from sqlalchemy import Boolean, DateTime, Integer, String, column, select, values

from services.suggestions.domain import YELLOW_DAYS, Color, Status, color, redact
from services.suggestions.queries import color_is, published
from shared.db import Database

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
OFFSETS = [None, timedelta(days=-40), timedelta(seconds=-1), timedelta(0), timedelta(seconds=1), timedelta(days=3),
           timedelta(days=YELLOW_DAYS) - timedelta(seconds=1), timedelta(days=YELLOW_DAYS),
           timedelta(days=YELLOW_DAYS, seconds=1), timedelta(days=90)]


async def test_each_colour_selects_exactly_the_rows_the_rule_colours_so(servers: Servers) -> None:
    cases = [(n, str(status), NOW + offset if offset is not None else None, reference)
             for n, (status, offset, reference) in enumerate(itertools.product(Status, OFFSETS, (False, True)))]
    table = values(column("n", Integer), column("status", String), column("due_at", DateTime(timezone=True)),
                   column("reference", Boolean), name="cases").data(cases)
    db = Database.connect(servers.database_url, application_name="test-colours", pool_size=1)
    try:
        async with db.transaction() as session:
            for wanted in Color:
                chosen = set((await session.scalars(select(table.c.n).where(
                    color_is(wanted, NOW, table.c.status, table.c.due_at, table.c.reference)))).all())
                expected = {n for n, status, due_at, reference in cases
                            if color(status, due_at, NOW, reference=reference) == wanted}
                assert expected, f"no case is {wanted}"
                assert chosen == expected, (wanted, sorted(chosen ^ expected))
    finally:
        await db.dispose()


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
    assert "138****5678" in redact(REDACTED_TEXTS[0]) and "3408**********1234" in redact(REDACTED_TEXTS[0])
