"""The categories of reports (反映类别), for forms that let a citizen pick one (no token)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.routing.taxonomy import CATEGORIES

router = APIRouter(prefix="/v1", tags=["routing"])


class CategoryOut(BaseModel):
    code: str = Field(description="what a report's `category` hint may hold")
    label: str = Field(description="the Chinese label, which a hint may hold as well")
    grid: bool = Field(description="a grid platform (基层治理四平台, 12345) handles it; else the deputy and staff")


@router.get("/categories", response_model=list[CategoryOut], summary="The categories of reports, in order (no token)")
async def list_categories() -> list[CategoryOut]:
    return [CategoryOut(code=c.code, label=c.label, grid=c.grid) for c in CATEGORIES]
