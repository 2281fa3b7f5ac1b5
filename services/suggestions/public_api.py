"""Public disclosure (公开): replies their units marked public, without personal data.

The replies are paged by cursor (`next` of one page is `after` of the next), newest first; a small
`offset` still works for callers that count pages, but no deeper than `MAX_OFFSET`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, tuple_

from services.suggestions import domain, paging
from services.suggestions.api import RuntimeDep
from services.suggestions.models import SuggestionRow, Unit
from services.suggestions.queries import published
from shared.errors import invalid
from shared.inputs import MESSAGE, storable
from shared.problems import problems

router = APIRouter(prefix="/v1", tags=["public"], responses=problems(422))
# An OFFSET reads and drops every row before it: a small one for page counting, the cursor beyond.
MAX_OFFSET = 1000
MAX_LIMIT = 100


class PublicReply(BaseModel):
    id: str
    title: str
    year: int
    region_code: str
    unit: str | None
    outcome: str | None
    outcome_label: str | None
    status: str
    reply: str
    replied_at: str | None


class PublicReplies(BaseModel):
    items: list[PublicReply]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


class PublicUnit(BaseModel):
    id: str
    name: str
    region_code: str


@router.get("/public/replies", response_model=PublicReplies,
            summary="Public replies to suggestions: no deputy, no phone, no ID number")
async def public_replies(runtime: RuntimeDep, year: Annotated[int, Query(ge=2000, le=2100)],
                         region_code: Annotated[str | None, Query(pattern=r"^\d{2,12}$", description=(
                             "replies of regions whose code starts with it; all when absent"))] = None,
                         q: Annotated[str | None, Query(max_length=50, description=(
                             "words in the title or the reply, any case; matched against the text as published, "
                             "with phone and ID numbers masked"))] = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
                         after: Annotated[str | None, Query(max_length=paging.MAX_CURSOR_CHARS, description=(
                             "the `next` of the page before, with the same filters"))] = None,
                         offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=(
                             "replies to skip, for small page counts; use `after` beyond"))] = 0) -> PublicReplies:
    # Newest first; the id breaks ties so that the order, and so the cursor, is total.
    order = (SuggestionRow.replied_at.desc(), SuggestionRow.id.desc())
    query = (select(SuggestionRow, Unit.name).outerjoin(Unit, Unit.id == SuggestionRow.lead_unit_id)
             .where(SuggestionRow.reply_public.is_(True), SuggestionRow.year == year,
                    SuggestionRow.replied_at.is_not(None),
                    SuggestionRow.region_code.startswith(region_code or ""))
             .order_by(*order).limit(limit + 1))
    if after is not None:
        if offset:
            raise invalid("offset", "使用 after 翻页时不能同时指定 offset。")
        try:
            at, last_id = paging.decode(after)
        except paging.BadCursor:
            raise invalid("after", "翻页参数无效，请从第一页重新开始。") from None
        query = query.where(tuple_(SuggestionRow.replied_at, SuggestionRow.id) < tuple_(at, last_id))
    elif offset:
        query = query.offset(offset)
    words = (q or "").strip()
    if words:
        if not storable(words):
            raise invalid("q", MESSAGE)
        reply = func.coalesce(SuggestionRow.state["reply"]["content"].astext, "")
        # Matched as published: a search for a masked number's hidden digits finds nothing.
        query = query.where(or_(published(SuggestionRow.title).icontains(words, autoescape=True),
                                published(reply).icontains(words, autoescape=True)))
    async with runtime.sessions()() as session:
        rows = (await session.execute(query)).all()
    items = []
    for row, unit_name in rows[:limit]:
        reply = row.state.get("reply") or {}
        items.append(PublicReply(
            id=row.id, title=domain.redact(row.title), year=row.year, region_code=row.region_code, unit=unit_name,
            outcome=row.outcome, outcome_label=row.state.get("outcome_label"), status=row.status,
            reply=domain.redact(str(reply.get("content", ""))), replied_at=reply.get("at")))
    last = rows[limit - 1][0] if len(rows) > limit else None
    return PublicReplies(items=items, next=paging.encode(last.replied_at, last.id) if last is not None else None)


@router.get("/public/units", response_model=list[PublicUnit],
            summary="Handling units (承办单位) by region prefix, for naming them on public boards (no token)")
async def public_units(runtime: RuntimeDep,
                       region_code: Annotated[str, Query(pattern=r"^(\d{2,12})?$", description=(
                           "units whose region code starts with it; all when empty or absent"))] = ""
                       ) -> list[PublicUnit]:
    query = select(Unit.id, Unit.name, Unit.region_code).order_by(Unit.id)
    if region_code:
        query = query.where(Unit.region_code.startswith(region_code, autoescape=True))
    async with runtime.sessions()() as session:
        rows = (await session.execute(query)).all()
    return [PublicUnit(id=r.id, name=r.name, region_code=r.region_code) for r in rows]
