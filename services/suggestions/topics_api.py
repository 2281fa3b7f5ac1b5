"""Supervision topics (人大监督) from routing's hotspots: staff convert one into a key suggestion or close it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from pydantic import Field
from sqlalchemy import select

from services.suggestions.access import require_region, staff_prefix
from services.suggestions.api import (
    ID_NAMESPACE,
    UNAVAILABLE,
    EntityId,
    RuntimeDep,
    Staff,
    Strict,
    SuggestionIn,
    create,
)
from services.suggestions.api_schemas import Conversion, TopicOut
from services.suggestions.models import SupervisionTopic
from shared.errors import conflict, forbidden, not_found
from shared.problems import COMMON, problems

router = APIRouter(prefix="/v1", tags=["supervision topics"], responses=COMMON)


def _out(t: SupervisionTopic) -> dict[str, Any]:
    return {"id": t.id, "region_code": t.region_code, "category": t.category, "count": t.count,
            "keywords": list(t.keywords), "report_ids": list(t.report_ids), "first_at": t.first_at.isoformat(),
            "last_at": t.last_at.isoformat(), "status": t.status, "note": t.note, "suggestion_id": t.suggestion_id}


@router.get("/supervision-topics", response_model=list[TopicOut],
            summary="Hotspots waiting for congress supervision, and what became of them")
async def list_topics(who: Staff, runtime: RuntimeDep,
                      status: Annotated[Literal["open", "converted", "closed"] | None, Query()] = None
                      ) -> list[dict[str, Any]]:
    prefix = staff_prefix(who)
    if prefix is None:
        raise forbidden("登录凭证未注明管辖地区，无法列出监督议题。")
    query = (select(SupervisionTopic).where(SupervisionTopic.region_code.startswith(prefix, autoescape=True))
             .order_by(SupervisionTopic.created_at.desc()))
    if status is not None:
        query = query.where(SupervisionTopic.status == status)
    async with runtime.sessions()() as session:
        return [_out(t) for t in (await session.scalars(query.limit(1000))).all()]


class ConversionIn(Strict):
    lead_deputy_id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=2, max_length=200)
    content: str = Field(min_length=10, max_length=20000)
    year: int = Field(ge=2000, le=2100)
    co_signer_ids: list[str] = Field(default_factory=list, max_length=100)


class ClosureIn(Strict):
    note: str = Field(min_length=2, max_length=4000)


async def _open_topic(session: Any, topic_id: str, who: Any) -> SupervisionTopic:
    topic = await session.get(SupervisionTopic, topic_id, with_for_update=True)
    if topic is None:
        raise not_found("监督议题不存在。")
    require_region(who, topic.region_code)
    if topic.status != "open":
        raise conflict("该监督议题已经处理。")
    return topic


@router.post("/supervision-topics/{topic_id}/conversion", status_code=201, response_model=Conversion,
             summary="Make the topic a suggestion to be assigned as a key one (重点督办)",
             responses=problems((404, "unknown topic"), (409, "converted or closed already"), UNAVAILABLE))
async def convert(topic_id: EntityId, body: ConversionIn, who: Staff, runtime: RuntimeDep,
                  idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None
                  ) -> dict[str, Any]:
    async with runtime.transaction() as session:
        topic = await _open_topic(session, topic_id, who)
        suggestion = SuggestionIn(title=body.title, content=body.content, lead_deputy_id=body.lead_deputy_id,
                                  co_signer_ids=body.co_signer_ids, year=body.year, kind="interim")
        # The topic's id names the suggestion: converting twice cannot start two.
        created = await create(runtime, session, who, suggestion, str(uuid.uuid5(ID_NAMESPACE, f"topic\n{topic.id}")),
                               topic_id=topic.id)
        topic.status, topic.suggestion_id, topic.decided_by = "converted", created["id"], who.sub
        await runtime.record_audit(session, who, "topic.converted", subject_type="supervision_topic",
                                   subject_id=topic.id, region_code=topic.region_code,
                                   detail={"suggestion_id": created["id"], "lead_deputy_id": body.lead_deputy_id})
        return {"topic": _out(topic), "suggestion": created}


@router.post("/supervision-topics/{topic_id}/closure", response_model=TopicOut,
             summary="Close the topic with a note; the note reaches the citizens whose reports made it",
             responses=problems((404, "unknown topic"), (409, "converted or closed already")))
async def close(topic_id: EntityId, body: ClosureIn, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.transaction() as session:
        topic = await _open_topic(session, topic_id, who)
        topic.status, topic.note, topic.decided_by = "closed", body.note, who.sub
        await runtime.record_audit(session, who, "topic.closed", subject_type="supervision_topic",
                                   subject_id=topic.id, region_code=topic.region_code, detail={"note": body.note})
        # Routing closes the hotspot on it and tells the member reports' citizens why.
        await runtime.emit(session, "suggestions.topic.closed", {
            "id": topic.id, "note": body.note, "region_code": topic.region_code,
            "at": datetime.now(UTC).isoformat()}, subject=topic.id)
        return _out(topic)
