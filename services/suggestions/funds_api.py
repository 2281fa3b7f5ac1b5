"""The yearly micro-suggestion fund (急难小) of a region: its amount, what was spent on which
suggestion, and the balance, which never goes below zero. Every change of a fund and every
spending is in the audit log with what the fund held before and after."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from services.suggestions import micro_funds
from services.suggestions.access import own_unit, require_region
from services.suggestions.api import (
    UNAVAILABLE,
    EntityId,
    IdempotencyKey,
    RegionCode,
    RuntimeDep,
    Staff,
    Strict,
    suggestion_row,
)
from services.suggestions.api_schemas import FundReport
from services.suggestions.models import IDEMPOTENCY, MicroFund, MicroSpending
from shared import idempotency
from shared.auth import Principal, require_roles
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


def _fund_id(region_code: str, year: int) -> str:
    return f"{region_code}:{year}"


async def _spent(session: Any, region_code: str, year: int) -> int:
    return int(await session.scalar(select(func.coalesce(func.sum(MicroSpending.amount_fen), 0)).where(
        MicroSpending.region_code == region_code, MicroSpending.year == year)) or 0)


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


@router.put("/micro-funds/{region_code}/{year}", response_model=FundReport,
            summary="Set a region's micro-suggestion fund for a year",
            responses=problems((409, "less than what is spent already")))
async def put_fund(region_code: RegionCode, year: Year, body: FundIn, who: Staff, runtime: RuntimeDep
                   ) -> dict[str, Any]:
    require_region(who, region_code)
    fen = int(body.amount * 100)
    async with runtime.transaction() as session:
        current = await session.get(MicroFund, (region_code, year), with_for_update=True)
        spent = await _spent(session, region_code, year)
        if fen < spent:
            raise conflict(f"资金总额不能低于已使用的 {_yuan(spent)} 元。")
        before = None if current is None else current.amount_fen
        if current is None:
            session.add(MicroFund(region_code=region_code, year=year, amount_fen=fen, updated_by=who.sub))
        else:
            current.amount_fen, current.updated_by = fen, who.sub
        await session.flush()
        if before != fen:
            await runtime.record_audit(
                session, who, "micro_fund.changed", subject_type="micro_fund", subject_id=_fund_id(region_code, year),
                region_code=region_code, detail={"year": year, "spent": _yuan(spent),
                                                 "before": None if before is None else {"amount": _yuan(before)},
                                                 "after": {"amount": _yuan(fen)}})
        return await _report(session, region_code, year)


@router.get("/micro-funds/{region_code}/{year}", response_model=FundReport,
            summary="Balance and use of a region's micro-suggestion fund")
async def get_fund(region_code: RegionCode, year: Year, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    require_region(who, region_code)
    async with runtime.sessions()() as session:
        return await _report(session, region_code, year)


@router.post("/suggestions/{suggestion_id}/spending", status_code=201, response_model=FundReport,
             summary="Money spent from the fund on a micro-suggestion",
             responses=problems((404, "unknown suggestion"),
                                (409, "not a micro-suggestion, no fund for its year and region, not enough left, or "
                                      "the Idempotency-Key was used for another body"),
                                UNAVAILABLE))
async def spend(suggestion_id: EntityId, body: SpendingIn, who: Spenders, runtime: RuntimeDep,
                idempotency_key: IdempotencyKey = None) -> JSONResponse:
    row = await suggestion_row(runtime, suggestion_id)
    # Who may act comes first: a stranger learns nothing of the suggestion, not even that it is no micro one.
    # An unassigned suggestion has no lead unit, and a unit token without its unit matches none.
    unit = own_unit(who)
    if unit is None or unit != row.lead_unit_id:
        if "npc_staff" not in who.roles:
            raise forbidden("只有主办单位或人大工作人员可以登记资金使用。")
        require_region(who, row.region_code)
    if not row.micro:
        raise conflict("只有“急难小”建议可以使用微建议资金。")
    fen = int(body.amount * 100)
    retry = idempotency.for_body(IDEMPOTENCY, f"spending:{suggestion_id}:{who.sub}", idempotency_key,
                                 body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        # Claimed in the spending's own transaction: a refusal below rolls the claim back with it.
        if (replay := await retry.replayed(session)) is not None:
            return replay
        drawn = await micro_funds.drawn_on(session, row.region_code, row.year)
        if drawn is None:
            raise conflict(f"{row.year} 年度本地区尚未设立微建议资金。")
        # The fund row is the lock: two spendings at once cannot both pass the balance check.
        fund = await session.get(MicroFund, (drawn.region_code, row.year), with_for_update=True,
                                 populate_existing=True)
        assert fund is not None
        spent = await _spent(session, fund.region_code, fund.year)
        if spent + fen > fund.amount_fen:
            raise conflict(f"微建议资金余额不足：余额 {_yuan(fund.amount_fen - spent)} 元，本次 {_yuan(fen)} 元。")
        spending_id = new_id()
        await session.execute(insert(MicroSpending).values(
            id=spending_id, region_code=fund.region_code, year=fund.year, suggestion_id=suggestion_id,
            amount_fen=fen, note=body.note, recorded_by=who.sub))
        await runtime.record_audit(
            session, who, "micro_fund.spent", subject_type="micro_fund",
            subject_id=_fund_id(fund.region_code, fund.year), region_code=fund.region_code,
            detail={"year": fund.year, "suggestion_id": suggestion_id, "spending_id": spending_id, "amount": _yuan(fen),
                    "before": {"spent": _yuan(spent), "balance": _yuan(fund.amount_fen - spent)},
                    "after": {"spent": _yuan(spent + fen), "balance": _yuan(fund.amount_fen - spent - fen)}})
        return await retry.answer(session, await _report(session, fund.region_code, fund.year), 201)
