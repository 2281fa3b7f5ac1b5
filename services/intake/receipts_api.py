"""The citizen's side of a report: follow it by its receipt code and rate the answer, no account needed.

Nothing here shows personal data or internal notes: whoever holds the slip sees what the
citizen may see, and a wrong code is refused before any lookup when its check character fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.intake import clock, domain, hotspot_news, lifecycle
from services.intake.api import IdempotencyKey, RuntimeDep, Strict, flood_guard, limit_flood, local
from services.intake.models import IDEMPOTENCY, Report, TimelineEntry
from shared import idempotency
from shared.auth import OptionalPrincipal
from shared.client_source import source_of
from shared.errors import Problem, invalid, not_found
from shared.problems import problems
from shared.service import Runtime

router = APIRouter(prefix="/v1", tags=["intake"], responses=problems(400, 422))

ReceiptCode = Annotated[str, Path(max_length=32, description="as printed: case, spaces and dashes do not matter")]


class Step(BaseModel):
    at: datetime
    status: str
    note: str
    kind: Literal["report", "lineage"] = Field(
        default="report", description="report: the report's own handling; lineage: what became of the hotspot "
                                      "(共性事项) it belongs to")


class ReplyView(BaseModel):
    content: str
    at: datetime
    by: str = Field(description="deputy, station_staff or grid")


class RatingView(BaseModel):
    stars: int
    comment: str | None
    at: datetime


class Receipt(BaseModel):
    status: domain.Status
    category: str | None
    received_at: datetime
    ack_due: datetime
    reply_due: datetime
    timeline: list[Step]
    reply: ReplyView | None = None
    rating: RatingView | None = None
    can_rate: bool
    supporters: int = Field(description="citizens who said \"me too\" (我也遇到) on this report; never who")
    hotspot_id: str | None = Field(description="the hotspot (共性事项) the report belongs to, for its public page")


class RatingIn(Strict):
    stars: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500, description="1–2 stars with a comment reopens the report")


class RatingOut(BaseModel):
    status: domain.Status
    stars: int
    reopened: bool


def _code(text: str) -> str:
    code = domain.normalize_receipt_code(text)
    if code is None:
        raise invalid("receipt_code", "回执码有误，请核对后重新输入", detail="回执码有误。")
    return code


async def _receipt(runtime: Runtime, report: Report) -> Receipt:
    async with runtime.database.sessions() as session:
        steps = (await session.scalars(
            select(TimelineEntry).where(TimelineEntry.report_id == report.id, TimelineEntry.public)
            .order_by(TimelineEntry.seq)
        )).all()
    reply = None
    if report.answered_at is not None and report.reply_content is not None:
        reply = ReplyView(content=report.reply_content, at=local(report.answered_at),  # type: ignore[arg-type]
                          by=report.answered_by or "deputy")
    rating = None
    if report.rated_at is not None and report.rating_stars is not None:
        rating = RatingView(stars=report.rating_stars, comment=report.rating_comment,
                            at=local(report.rated_at))  # type: ignore[arg-type]
    return Receipt(
        status=report.status,  # type: ignore[arg-type]
        category=report.category,
        received_at=local(report.received_at),  # type: ignore[arg-type]
        ack_due=local(report.ack_due),  # type: ignore[arg-type]
        reply_due=local(report.reply_due),  # type: ignore[arg-type]
        timeline=[Step(at=local(s.at), status=s.status, note=s.note,  # type: ignore[arg-type]
                       kind="lineage" if s.actor == hotspot_news.ACTOR else "report") for s in steps],
        reply=reply, rating=rating,
        can_rate=report.status == "answered" and report.rated_at is None,
        supporters=report.supporters, hotspot_id=report.hotspot_id,
    )


@router.get("/receipts/{receipt_code}", response_model=Receipt, summary="Follow a report by its receipt code",
            responses=problems((404, "no report has this code"),
                               (422, "the code's check character is wrong (a typo)"),
                               (429, "too many lookups from one source")))
async def get_receipt(receipt_code: ReceiptCode, request: Request, runtime: RuntimeDep) -> Receipt:
    await flood_guard(runtime, "lookup").check("receipts", source_of(request))
    code = _code(receipt_code)
    async with runtime.database.sessions() as session:
        report = await session.scalar(select(Report).where(Report.receipt_code == code))
    if report is None:
        raise not_found("没有找到该回执码对应的反映。")
    return await _receipt(runtime, report)


@router.post("/receipts/{receipt_code}/rating", status_code=201, response_model=RatingOut,
             summary="Rate the answer (1–5 stars), once per answer",
             responses=problems(401, (404, "no report has this code"),
                                (409, "not answered yet, or rated already, or the Idempotency-Key was used for "
                                      "another body"),
                                (429, "too many ratings from one source")))
async def rate_answer(receipt_code: ReceiptCode, body: RatingIn, request: Request, who: OptionalPrincipal,
                      runtime: RuntimeDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    await limit_flood(request, runtime, who, "ratings")
    code = _code(receipt_code)
    at = clock.now(runtime)
    book = await clock.book(runtime)
    scope = f"rating:{code}"
    retry = idempotency.for_body(IDEMPOTENCY, scope, idempotency_key, body.model_dump(mode="json"))
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        report_id = await session.scalar(select(Report.id).where(Report.receipt_code == code))
        report = await lifecycle.lock(session, report_id) if report_id is not None else None
        if report is None:
            raise not_found("没有找到该回执码对应的反映。")
        try:
            outcome = await lifecycle.rate(runtime, session, report, book, stars=body.stars,
                                           comment=body.comment or None, at=at)
        except domain.Refused as exc:
            raise Problem(409, exc.message) from exc
        out = RatingOut(status=outcome.status, stars=body.stars, reopened=outcome.reopen).model_dump(mode="json")
        return await retry.answer(session, out, 201)
