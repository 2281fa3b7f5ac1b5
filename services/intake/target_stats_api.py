"""`GET /v1/stats/targets`: a year's reports in a region counted by the deputy or station they are aimed at.

Congress staff's overview shows each deputy's and station's rates from these; counting them in the
database spares reading every report of the year to count it in the web tier. The on-time rules
are the public board's (`stats_api.conditions`), and `overdue` is what the list's
`open=true&overdue=true` holds (`api.overdue_now`), so a figure and the list behind it agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select

from services.intake import clock, domain, stats
from services.intake.api import REGION_PATTERN, RuntimeDep, local, overdue_now
from services.intake.models import Report
from services.intake.stats_api import conditions
from shared.auth import Principal, require_roles
from shared.errors import forbidden
from shared.problems import COMMON

router = APIRouter(prefix="/v1", tags=["intake"], responses=COMMON)

# Overseeing deputies' and stations' handling is congress staff's work; station staff are among the measured.
Overseer = Annotated[Principal, Depends(require_roles("npc_staff"))]
# The public board's counts that make the rates; `closed` and `open_overdue` are not needed here.
RATE_COUNTS = ("ack_decided", "ack_on_time", "reply_decided", "reply_on_time", "rated", "satisfied")


class TargetCounts(BaseModel):
    kind: Literal["deputy", "station"]
    id: str
    received: int = Field(description="reports aimed at it received in the year")
    ack_decided: int = Field(description=stats.DEFINITIONS["ack_decided"])
    ack_on_time: int = Field(description=stats.DEFINITIONS["ack_on_time"])
    reply_decided: int = Field(description=stats.DEFINITIONS["reply_decided"])
    reply_on_time: int = Field(description=stats.DEFINITIONS["reply_on_time"])
    rated: int = Field(description=stats.DEFINITIONS["rated"])
    satisfied: int = Field(description=stats.DEFINITIONS["satisfied"])
    overdue: int = Field(description="reports still waiting for an answer (submitted, acknowledged, dispatched) "
                                     "that are overdue now: what `GET /v1/reports?open=true&overdue=true` lists")


class TargetStats(BaseModel):
    region_code: str
    year: int
    generated_at: datetime
    targets: list[TargetCounts] = Field(description="each deputy and station with reports received in the year, "
                                                    "by kind and id; reports aimed at a region alone are in none")


@router.get("/stats/targets", response_model=TargetStats,
            summary="A year's reports in a region counted by deputy and station (congress staff's overview)",
            description="Reports received in `year` (Asia/Shanghai, by the moment of receipt) in the regions whose "
                        "code starts with `region_code`, which must lie within the caller's region, counted by "
                        "the deputy or station they are aimed at. The counts behind the rates mean what the public "
                        "board's monthly ones of the same name mean (`GET /v1/public/stats`); `overdue` is what "
                        "the list holds for `open=true&overdue=true`.")
async def target_stats(who: Overseer, runtime: RuntimeDep,
                       region_code: Annotated[str, Query(pattern=REGION_PATTERN,
                                                         description="the region, as a prefix of report regions")],
                       year: Annotated[int, Query(ge=2000, le=2100)]) -> TargetStats:
    # Staff-only and bounded by one region's year, like the list; the public board's counting is limited
    # per source because anyone may ask for it.
    if not who.can_see(region_code):
        raise forbidden("该地区不在您的管辖范围内。")
    now = clock.now(runtime)
    start, end = stats.year_window(year)
    rules = conditions(now)
    ack_late, reply_late = overdue_now(now)
    query = (select(Report.target_kind.label("kind"), Report.target_id.label("id"), func.count().label("received"),
                    *(func.count().filter(rules[name]).label(name) for name in RATE_COUNTS),
                    func.count().filter(Report.status.in_(domain.OPEN_STATUSES), or_(ack_late, reply_late))
                    .label("overdue"))
             .where(Report.region_code.startswith(region_code, autoescape=True),
                    Report.received_at >= start, Report.received_at < end,
                    Report.target_kind.in_(("deputy", "station")), Report.target_id.is_not(None))
             .group_by(Report.target_kind, Report.target_id)
             .order_by(Report.target_kind, Report.target_id))
    async with runtime.database.sessions() as session:
        rows = (await session.execute(query)).mappings().all()
    return TargetStats(region_code=region_code, year=year, generated_at=local(now),  # type: ignore[arg-type]
                       targets=[TargetCounts(**row) for row in rows])
