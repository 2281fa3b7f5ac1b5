"""Public disclosure (公开): replies their units marked public, without personal data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, or_, select

from services.suggestions import domain
from services.suggestions.api import MAX_OFFSET, RuntimeDep
from services.suggestions.models import SuggestionRow, Unit
from services.suggestions.queries import published
from shared.errors import invalid
from shared.inputs import MESSAGE, storable
from shared.problems import problems

router = APIRouter(prefix="/v1", tags=["public"], responses=problems(422))


class PublicUnit(BaseModel):
    id: str
    name: str
    region_code: str


@router.get("/public/replies", summary="Public replies to suggestions: no deputy, no phone, no ID number")
async def public_replies(runtime: RuntimeDep, year: Annotated[int, Query(ge=2000, le=2100)],
                         region_code: Annotated[str, Query(pattern=r"^\d{2,12}$")] = "",
                         q: Annotated[str | None, Query(max_length=50, description=(
                             "words in the title or the reply, any case; matched against the text as published, "
                             "with phone and ID numbers masked"))] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict[str, Any]]:
    query = (select(SuggestionRow, Unit.name).outerjoin(Unit, Unit.id == SuggestionRow.lead_unit_id)
             .where(SuggestionRow.reply_public.is_(True), SuggestionRow.year == year,
                    SuggestionRow.region_code.startswith(region_code))
             .order_by(SuggestionRow.replied_at.desc(), SuggestionRow.id).limit(limit).offset(offset))
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
    out = []
    for row, unit_name in rows:
        reply = row.state.get("reply") or {}
        out.append({"id": row.id, "title": domain.redact(row.title), "year": row.year,
                    "region_code": row.region_code, "unit": unit_name, "outcome": row.outcome,
                    "outcome_label": row.state.get("outcome_label"), "status": row.status,
                    "reply": domain.redact(str(reply.get("content", ""))), "replied_at": reply.get("at")})
    return out


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
