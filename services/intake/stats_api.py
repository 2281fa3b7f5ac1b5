"""Public monthly figures of citizens' reports by region (no token): what a board shows the public."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, func, not_, or_, select

from services.intake import clock, stats
from services.intake.api import RuntimeDep, flood_guard, local
from services.intake.models import Report
from shared.calendar import SHANGHAI
from shared.client_source import source_of
from shared.problems import problems

router = APIRouter(prefix="/v1/public", tags=["public"], responses=problems(422))


class MonthStats(BaseModel):
    month: str = Field(description="YYYY-MM, a calendar month in Asia/Shanghai")
    received: int = Field(description=stats.DEFINITIONS["received"])
    ack_decided: int = Field(description=stats.DEFINITIONS["ack_decided"])
    ack_on_time: int = Field(description=stats.DEFINITIONS["ack_on_time"])
    reply_decided: int = Field(description=stats.DEFINITIONS["reply_decided"])
    reply_on_time: int = Field(description=stats.DEFINITIONS["reply_on_time"])
    rated: int = Field(description=stats.DEFINITIONS["rated"])
    satisfied: int = Field(description=stats.DEFINITIONS["satisfied"])
    closed: int = Field(description=stats.DEFINITIONS["closed"])
    open_overdue: int = Field(description=stats.DEFINITIONS["open_overdue"])


class RegionStats(BaseModel):
    region_code: str
    generated_at: datetime
    months: list[MonthStats] = Field(description="oldest first, the current month last; months without reports "
                                                 "have zeros")


_DESCRIPTION = (
    "Reports received in each of the last `months` calendar months (Asia/Shanghai, by the day of receipt), the "
    "current one included, in the regions whose code starts with `region_code`. The counts:\n\n"
    + "\n".join(f"- `{name}`: {definition}" for name, definition in stats.DEFINITIONS.items())
    + "\n\nSo `ack_on_time / ack_decided` is the share acknowledged in time among the reports whose outcome is "
      "known, and likewise for answers. Nothing about any one report is shown."
)


def conditions(now: datetime) -> dict[str, ColumnElement[bool]]:
    """Each count of `stats.DEFINITIONS` but `received` as a condition on a report, at `now`. Staff's
    figures by deputy and station (target_stats_api.py) count with the same ones."""
    acknowledged = Report.acknowledged_at.is_not(None)
    answered = Report.answered_at.is_not(None)
    ack_late_open = and_(not_(acknowledged), Report.ack_due < now)
    reply_late_open = and_(not_(answered), Report.reply_due < now)
    return {
        "ack_decided": or_(acknowledged, ack_late_open),
        "ack_on_time": and_(acknowledged, Report.acknowledged_at <= Report.ack_due),
        "reply_decided": or_(answered, reply_late_open),
        "reply_on_time": and_(answered, Report.answered_at <= Report.reply_due),
        "rated": Report.rating_stars.is_not(None),
        "satisfied": Report.rating_stars >= 4,
        "closed": Report.status == "closed",
        "open_overdue": and_(Report.status != "closed", or_(ack_late_open, reply_late_open)),
    }


def _counts(now: datetime) -> list[Any]:
    return [func.count().label("received"),
            *(func.count().filter(condition).label(name) for name, condition in conditions(now).items())]


@router.get("/stats", response_model=RegionStats, summary="Monthly figures of citizens' reports in a region (no token)",
            description=_DESCRIPTION, responses=problems((429, "too many requests from one source")))
async def public_stats(request: Request, runtime: RuntimeDep,
                       region_code: Annotated[str, Query(pattern=r"^\d{2,12}$",
                                                         description="the region, as a prefix of report regions")],
                       months: Annotated[int, Query(ge=1, le=stats.MAX_MONTHS)] = 12) -> RegionStats:
    # A public read of the whole table's worth of counting: limited like receipt lookups.
    await flood_guard(runtime, "lookup").check("stats", source_of(request))
    now = clock.now(runtime)
    window = stats.month_window(now, months)
    month = func.to_char(func.date_trunc("month", func.timezone(SHANGHAI.key, Report.received_at)), "YYYY-MM")
    query = (select(month.label("month"), *_counts(now))
             .where(Report.region_code.startswith(region_code, autoescape=True),
                    Report.received_at >= window.start, Report.received_at < window.end)
             .group_by(month))
    async with runtime.database.sessions() as session:
        rows = (await session.execute(query)).mappings().all()
    counted = {row["month"]: row for row in rows}
    return RegionStats(region_code=region_code, generated_at=local(now),  # type: ignore[arg-type]
                       months=[MonthStats(**entry) for entry in stats.fill(window, counted)])
