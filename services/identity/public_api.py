"""The region tree for citizens (no token): pick where a matter is, step by step, from the top."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import exists, literal, select
from sqlalchemy.orm import aliased

from services.identity.api import RegionCodePath, RuntimeDep
from services.identity.models import Region
from shared.errors import not_found
from shared.problems import problems

router = APIRouter(prefix="/v1/public", tags=["public"], responses=problems(422))

# Province, city, county, township, village, grid: a path is never longer; the bound only guards a
# cycle that a broken row could make.
_MAX_DEPTH = 12


class RegionNode(BaseModel):
    code: str
    name: str
    has_children: bool = Field(description="whether a next level can be picked under it")


class RegionStep(BaseModel):
    code: str
    name: str


class RegionPlace(BaseModel):
    code: str
    name: str
    parent_code: str | None
    path: list[RegionStep] = Field(description="from the top-level region down to this one, inclusive")


@router.get("/regions", response_model=list[RegionNode],
            summary="The regions directly under a region, or the top-level ones (no token)")
async def public_regions(
    runtime: RuntimeDep,
    parent_code: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z-]{6,40}$",
                                             description="without it: the regions that have no parent")] = None,
) -> list[RegionNode]:
    child = aliased(Region)
    has_children = exists().where(child.parent_code == Region.code)
    query = select(Region.code, Region.name, has_children.label("has_children")).order_by(Region.code)
    query = query.where(Region.parent_code == parent_code if parent_code else Region.parent_code.is_(None))
    async with runtime.database.sessions() as session:
        rows = (await session.execute(query)).all()
    return [RegionNode(code=r.code, name=r.name, has_children=r.has_children) for r in rows]


@router.get("/regions/{code}", response_model=RegionPlace, summary="A region and its path from the top (no token)",
            responses=problems((404, "no such region")))
async def public_region(code: RegionCodePath, runtime: RuntimeDep) -> RegionPlace:
    # Upwards from the region in one recursive query: at most one row per level.
    start = (select(Region.code, Region.name, Region.parent_code, literal(0).label("depth"))
             .where(Region.code == code).cte("up", recursive=True))
    parent = aliased(Region)
    up = start.union_all(
        select(parent.code, parent.name, parent.parent_code, start.c.depth + 1)
        .where(parent.code == start.c.parent_code, start.c.depth < _MAX_DEPTH))
    async with runtime.database.sessions() as session:
        rows = (await session.execute(select(up).order_by(up.c.depth.desc()))).all()
    if not rows:
        raise not_found("地区不存在。")
    here = rows[-1]
    return RegionPlace(code=here.code, name=here.name, parent_code=here.parent_code,
                       path=[RegionStep(code=r.code, name=r.name) for r in rows])
