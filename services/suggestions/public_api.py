"""Public disclosure (公开): replies their units marked public, without personal data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from services.suggestions import domain
from services.suggestions.api import MAX_OFFSET, RuntimeDep
from services.suggestions.models import SuggestionRow, Unit
from shared.problems import problems

router = APIRouter(prefix="/v1", tags=["public"], responses=problems(422))


@router.get("/public/replies", summary="Public replies to suggestions: no deputy, no phone, no ID number")
async def public_replies(runtime: RuntimeDep, year: Annotated[int, Query(ge=2000, le=2100)],
                         region_code: Annotated[str, Query(pattern=r"^\d{2,12}$")] = "",
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict[str, Any]]:
    query = (select(SuggestionRow, Unit.name).outerjoin(Unit, Unit.id == SuggestionRow.lead_unit_id)
             .where(SuggestionRow.reply_public.is_(True), SuggestionRow.year == year,
                    SuggestionRow.region_code.startswith(region_code))
             .order_by(SuggestionRow.replied_at.desc(), SuggestionRow.id).limit(limit).offset(offset))
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
