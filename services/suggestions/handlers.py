"""Bus subscriptions of the suggestions service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.suggestions import topics
from services.suggestions.models import DeputyView, SupervisionTopic
from shared.bus.consumer import BadEvent, Subscription
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime


def _text(event: CloudEvent, name: str) -> str:
    value = event.data.get(name)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"{event.type} {event.id} has no {name}")
    return value


def _when(event: CloudEvent) -> datetime:
    raw = event.data.get("at")
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else event.time
    except ValueError as exc:
        raise BadEvent(f"{event.type} {event.id}: 'at' is not a time") from exc
    if at.tzinfo is None:
        raise BadEvent(f"{event.type} {event.id}: 'at' has no offset")
    return at


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    async def deputy_updated(event: CloudEvent, session: AsyncSession) -> None:
        version = event.data.get("version")
        if not isinstance(version, int):
            raise BadEvent(f"identity.deputy.updated {event.id} lacks a version")
        stmt = insert(DeputyView).values(id=_text(event, "id"), name=_text(event, "name"),
                                         region_code=_text(event, "region_code"), version=version)
        # A redelivered older event must not undo a newer one.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"name": stmt.excluded.name, "region_code": stmt.excluded.region_code,
                  "version": stmt.excluded.version},
            where=DeputyView.version < stmt.excluded.version))

    async def hotspot_detected(event: CloudEvent, session: AsyncSession) -> None:
        data = event.data
        try:
            first_at, last_at = (datetime.fromisoformat(_text(event, k)) for k in ("first_at", "last_at"))
        except ValueError as exc:
            raise BadEvent(f"routing.hotspot.detected {event.id}: first_at/last_at are not times") from exc
        keywords, report_ids, count = data.get("keywords"), data.get("report_ids"), data.get("count")
        if not isinstance(keywords, list) or not isinstance(report_ids, list) or not isinstance(count, int):
            raise BadEvent(f"routing.hotspot.detected {event.id} lacks keywords, report_ids or count")
        stmt = insert(SupervisionTopic).values(
            id=_text(event, "id"), region_code=_text(event, "region_code"), category=_text(event, "category"),
            count=count, keywords=[str(k)[:40] for k in keywords], report_ids=[str(r) for r in report_ids],
            first_at=first_at, last_at=last_at, status="open")
        # A hotspot is announced once; a replay of the announcement changes nothing staff decided.
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    async def hotspot_progressed(event: CloudEvent, session: AsyncSession) -> None:
        if event.data.get("step") != "joined":
            return  # the other steps are this service's own doing, told back
        report_ids, count = event.data.get("report_ids"), event.data.get("count")
        # Ids as the topic's column holds them (36 characters); anything else could never be stored.
        if not isinstance(report_ids, list) or not all(isinstance(r, str) and 0 < len(r) <= 36 for r in report_ids):
            raise BadEvent(f"routing.hotspot.progressed {event.id} lacks report_ids")
        topic = await session.get(SupervisionTopic, _text(event, "hotspot_id"), with_for_update=True)
        if topic is None:
            return  # not a topic yet: routing.hotspot.detected brings every member when it is
        update = topics.joined(topic.report_ids, topic.count, report_ids,
                               count if isinstance(count, int) and not isinstance(count, bool) else None)
        if update is not None:
            topic.report_ids, topic.count = update
            topic.last_at = max(topic.last_at, _when(event))

    return (
        Subscription("routing.hotspot.detected", STREAMS["routing"].name, "suggestions-hotspots", hotspot_detected,
                     "a hotspot becomes a congress supervision topic (人大监督) for staff"),
        Subscription("routing.hotspot.progressed", STREAMS["routing"].name, "suggestions-hotspot-progressed",
                     hotspot_progressed, "reports that join a hotspot later join its supervision topic"),
        Subscription("identity.deputy.updated", STREAMS["identity"].name, "suggestions-deputies", deputy_updated,
                     "who may lead or co-sign a suggestion, and in which region"),
    )
