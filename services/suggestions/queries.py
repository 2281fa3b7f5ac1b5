"""Rules of `domain` as SQL conditions, so lists are filtered and paged in the database."""

from __future__ import annotations

import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, not_, or_, select

from services.suggestions import access
from services.suggestions.domain import LOOK_BACK_STATUSES, YELLOW_DAYS, Color, Status
from services.suggestions.models import SuggestionRow
from shared.auth import Principal
from shared.service import Runtime


def watched_deadline(status: Any, due_at: Any, next_review_at: Any) -> ColumnElement[Any]:
    """`domain.watched_deadline` over the given columns, built from the same set of statuses."""
    return case((status.in_([str(st) for st in sorted(LOOK_BACK_STATUSES)]), next_review_at), else_=due_at)


def color_is(color: Color, now: datetime, *, status: Any, due_at: Any, next_review_at: Any,
             reference: Any) -> ColumnElement[bool]:
    """`domain.color(...) == color` over the given columns (tested against it on PostgreSQL)."""
    closed = status == Status.CLOSED.value
    grey = and_(reference, status == Status.FOLLOWING_UP.value)
    if color == Color.BLUE:
        return closed
    if color == Color.GREY:
        return and_(not_(closed), grey)
    running = and_(not_(closed), not_(grey))
    deadline = watched_deadline(status, due_at, next_review_at)
    soon = now + timedelta(days=YELLOW_DAYS)
    if color == Color.RED:
        return and_(running, deadline.is_not(None), deadline < now)
    if color == Color.YELLOW:
        return and_(running, deadline.is_not(None), deadline >= now, deadline <= soon)
    return and_(running, or_(deadline.is_(None), deadline > soon))


def row_color_is(color: Color, now: datetime) -> ColumnElement[bool]:
    return color_is(color, now, status=SuggestionRow.status, due_at=SuggestionRow.due_at,
                    next_review_at=SuggestionRow.next_review_at, reference=SuggestionRow.reference)


KEY_FILTER = ("true: key suggestions (重点督办), and those made from a supervision topic still waiting to be "
              "assigned as one; false: the others")
CARRIED_FILTER = ("true: carried over (滚动办理) onto the `year`'s list from an earlier year, or a term before; "
                  "without `year`, on more than one yearly list; false: on its own year's list only")


def is_key() -> ColumnElement[bool]:
    """Key, or made from a supervision topic and not yet assigned: the topic asked for a key one, and
    staff decide it when they assign (the workflow's `key_requested`)."""
    return or_(SuggestionRow.key, and_(SuggestionRow.topic_id.is_not(None),
                                       SuggestionRow.status == Status.SUBMITTED.value))


def is_carried(year: int | None) -> ColumnElement[bool]:
    """On the list of `year` from an earlier one; without a year, on more than one list."""
    if year is not None:
        return SuggestionRow.year < year
    return func.cardinality(SuggestionRow.years) > 1


def readable_by(who: Principal) -> ColumnElement[bool]:
    """`access.may_read` in SQL: the rows of the caller's region, its own as deputy or as unit;
    nothing for a role whose claim is missing."""
    allowed: list[ColumnElement[bool]] = []
    if (prefix := access.staff_prefix(who)) is not None:
        allowed.append(SuggestionRow.region_code.startswith(prefix, autoescape=True))
    if (deputy := access.own_deputy(who)) is not None:
        allowed += [SuggestionRow.lead_deputy_id == deputy, SuggestionRow.co_signer_ids.contains([deputy])]
    if (unit := access.own_unit(who)) is not None:
        allowed += [SuggestionRow.lead_unit_id == unit, SuggestionRow.assisting_unit_ids.contains([unit])]
    return or_(*allowed) if allowed else false()


@cache
def _digits() -> str:
    """Python's `\\d` (every Unicode decimal digit) as the inside of a PostgreSQL bracket expression,
    whose own `[[:digit:]]` depends on the database's locale."""
    ranges: list[list[int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point)) == "Nd":
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def published(text: Any) -> ColumnElement[str]:
    """`domain.redact(text)` in SQL (tested against it on PostgreSQL): what a search of published text
    may match, so that it never answers whether a masked phone or ID number holds some digits."""
    d = _digits()
    id_masked = func.regexp_replace(
        text, f"(?<![0-9A-Za-z])([{d}]{{4}})[{d}]{{10}}([{d}]{{3}}[{d}Xx])(?![0-9A-Za-z])", r"\1**********\2", "g")
    return func.regexp_replace(id_masked, f"(?<![{d}])(1[3-9][{d}])[{d}]{{4}}([{d}]{{4}})(?![{d}])", r"\1****\2",
                               "g")


async def overdue(runtime: Runtime) -> dict[str, int]:
    """Red suggestions for `minyi_overdue{kind}`: past the reply due time, or past the yearly look-back."""
    red = row_color_is(Color.RED, datetime.now(UTC))
    looking_back = SuggestionRow.status.in_([str(st) for st in sorted(LOOK_BACK_STATUSES)])
    async with runtime.sessions()() as session:
        row = (await session.execute(select(
            func.count().filter(and_(red, not_(looking_back))), func.count().filter(and_(red, looking_back)))
            .select_from(SuggestionRow))).one()
    return {"suggestion_reply": int(row[0] or 0), "suggestion_review": int(row[1] or 0)}
