"""The yearly micro-suggestion fund (急难小) of a region: its amount, what was spent on which
suggestion, and the balance, which never goes below zero."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from services.suggestions.api import UNAVAILABLE, EntityId, RegionCode, RuntimeDep, Staff, Strict, suggestion_row
from services.suggestions.models import MicroFund, MicroSpending
from shared.auth import Principal, require_region, require_roles
from shared.errors import conflict, forbidden
from shared.ids import new_id
from shared.problems import COMMON, problems

router = APIRouter(prefix="/v1", tags=["micro-suggestion funds"], responses=COMMON)
Year = Annotated[int, Path(ge=2000, le=2100)]
Spenders = Annotated[Principal, Depends(require_roles("npc_staff", "unit"))]
Yuan = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2, description="yuan, up to fen")]


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


class FundIn(Strict):
    amount: Yuan


class SpendingIn(Strict):
    amount: Yuan
    note: str = Field(min_length=2, max_length=2000)


async def _report(session: Any, region_code: str, year: int) -> dict[str, Any]:
    fund = await session.get(MicroFund, (region_code, year))
    items = (await session.scalars(select(MicroSpending).where(
        MicroSpending.region_code == region_code, MicroSpending.year == year)
        .order_by(MicroSpending.recorded_at, MicroSpending.id))).all()
    spent = sum(i.amount_fen for i in items)
    amount = fund.amount_fen if fund is not None else 0
    return {"region_code": region_code, "year": year, "amount": _yuan(amount), "spent": _yuan(spent),
            "balance": _yuan(amount - spent),
            "items": [{"id": i.id, "suggestion_id": i.suggestion_id, "amount": _yuan(i.amount_fen), "note": i.note,
                       "recorded_by": i.recorded_by, "recorded_at": i.recorded_at.isoformat()} for i in items]}


@router.put("/micro-funds/{region_code}/{year}", summary="Set a region's micro-suggestion fund for a year",
            responses=problems((409, "less than what is spent already")))
async def put_fund(region_code: RegionCode, year: Year, body: FundIn, who: Staff, runtime: RuntimeDep
                   ) -> dict[str, Any]:
    require_region(who, region_code)
    fen = int(body.amount * 100)
    async with runtime.transaction() as session:
        current = await session.get(MicroFund, (region_code, year), with_for_update=True)
        spent = int(await session.scalar(select(func.coalesce(func.sum(MicroSpending.amount_fen), 0)).where(
            MicroSpending.region_code == region_code, MicroSpending.year == year)) or 0)
        if fen < spent:
            raise conflict(f"资金总额不能低于已使用的 {_yuan(spent)} 元。")
        if current is None:
            session.add(MicroFund(region_code=region_code, year=year, amount_fen=fen, updated_by=who.sub))
        else:
            current.amount_fen, current.updated_by = fen, who.sub
        await session.flush()
        return await _report(session, region_code, year)


@router.get("/micro-funds/{region_code}/{year}", summary="Balance and use of a region's micro-suggestion fund")
async def get_fund(region_code: RegionCode, year: Year, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    require_region(who, region_code)
    async with runtime.sessions()() as session:
        return await _report(session, region_code, year)


@router.post("/suggestions/{suggestion_id}/spending", status_code=201,
             summary="Money spent from the fund on a micro-suggestion",
             responses=problems((404, "unknown suggestion"),
                                (409, "not a micro-suggestion, no fund for its year and region, or not enough left"),
                                UNAVAILABLE))
async def spend(suggestion_id: EntityId, body: SpendingIn, who: Spenders, runtime: RuntimeDep) -> dict[str, Any]:
    row = await suggestion_row(runtime, suggestion_id)
    # Who may act comes first: a stranger learns nothing of the suggestion, not even that it is no micro one.
    if "npc_staff" in who.roles:
        require_region(who, row.region_code)
    elif who.unit_id != row.lead_unit_id:
        raise forbidden("只有主办单位或人大工作人员可以登记资金使用。")
    if not row.micro:
        raise conflict("只有“急难小”建议可以使用微建议资金。")
    fen = int(body.amount * 100)
    async with runtime.transaction() as session:
        funds = (await session.scalars(select(MicroFund).where(MicroFund.year == row.year))).all()
        matching = [f for f in funds if row.region_code.startswith(f.region_code)]
        if not matching:
            raise conflict(f"{row.year} 年度本地区尚未设立微建议资金。")
        # The fund row is the lock: two spendings at once cannot both pass the balance check.
        fund = await session.get(MicroFund, (max(matching, key=lambda f: len(f.region_code)).region_code, row.year),
                                 with_for_update=True, populate_existing=True)
        assert fund is not None
        spent = int(await session.scalar(select(func.coalesce(func.sum(MicroSpending.amount_fen), 0)).where(
            MicroSpending.region_code == fund.region_code, MicroSpending.year == fund.year)) or 0)
        if spent + fen > fund.amount_fen:
            raise conflict(f"微建议资金余额不足：余额 {_yuan(fund.amount_fen - spent)} 元，本次 {_yuan(fen)} 元。")
        await session.execute(insert(MicroSpending).values(
            id=new_id(), region_code=fund.region_code, year=fund.year, suggestion_id=suggestion_id, amount_fen=fen,
            note=body.note, recorded_by=who.sub))
        return await _report(session, fund.region_code, fund.year)
