"""Which yearly micro-suggestion fund (急难小) a suggestion draws on, and what it has left.

A suggestion draws on the fund of its own year set for the longest region prefix of its region:
a district's own fund before its city's. Spending locks that fund's row; reading it does not.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from services.suggestions.models import MicroFund, MicroSpending


def yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


async def spent(session: Any, region_code: str, year: int) -> int:
    """Fen spent from the fund of `region_code` and `year`."""
    return int(await session.scalar(select(func.coalesce(func.sum(MicroSpending.amount_fen), 0)).where(
        MicroSpending.region_code == region_code, MicroSpending.year == year)) or 0)


async def drawn_on(session: Any, region_code: str, year: int) -> MicroFund | None:
    """The fund a suggestion of `region_code` and `year` draws on; None when none is set."""
    funds = (await session.scalars(select(MicroFund).where(MicroFund.year == year))).all()
    matching = [f for f in funds if region_code.startswith(f.region_code)]
    return max(matching, key=lambda f: len(f.region_code)) if matching else None


async def balance(session: Any, region_code: str, year: int) -> dict[str, Any] | None:
    """What the fund a suggestion draws on holds, has spent and has left, in yuan; None without a fund."""
    fund = await drawn_on(session, region_code, year)
    if fund is None:
        return None
    used = await spent(session, fund.region_code, fund.year)
    return {"region_code": fund.region_code, "year": fund.year, "amount": yuan(fund.amount_fen),
            "spent": yuan(used), "balance": yuan(fund.amount_fen - used)}
