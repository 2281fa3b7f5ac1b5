"""Bus subscriptions of the suggestions service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.suggestions import topics
from services.suggestions.models import DeputyView, SupervisionTopic
from shared import events
from shared.bus.consumer import BadEvent, Subscription
from shared.bus.envelope import CloudEvent
from shared.contracts import STREAMS
from shared.service import Runtime


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    async def deputy_updated(event: CloudEvent, session: AsyncSession) -> None:
        deputy = event.payload(events.DeputyUpdated)
        stmt = insert(DeputyView).values(id=deputy.id, name=deputy.name, region_code=deputy.region_code,
                                         version=deputy.version)
        # A redelivered older event must not undo a newer one.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"name": stmt.excluded.name, "region_code": stmt.excluded.region_code,
                  "version": stmt.excluded.version},
            where=DeputyView.version < stmt.excluded.version))

    async def hotspot_detected(event: CloudEvent, session: AsyncSession) -> None:
        hotspot = event.payload(events.HotspotDetected)
        stmt = insert(SupervisionTopic).values(
            id=hotspot.id, region_code=hotspot.region_code, category=hotspot.category, count=hotspot.count,
            keywords=[k[:40] for k in hotspot.keywords], report_ids=list(hotspot.report_ids),
            first_at=hotspot.first_at, last_at=hotspot.last_at, status="open")
        # A hotspot is announced once; a replay of the announcement changes nothing staff decided.
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    async def hotspot_progressed(event: CloudEvent, session: AsyncSession) -> None:
        progress = event.payload(events.HotspotProgressed)
        if progress.step != "joined":
            return  # the other steps are this service's own doing, told back
        # Ids as the topic's column holds them (36 characters); anything else could never be stored.
        if not all(0 < len(r) <= 36 for r in progress.report_ids):
            raise BadEvent(f"routing.hotspot.progressed {event.id}: a report id is not one of intake's")
        topic = await session.get(SupervisionTopic, progress.hotspot_id, with_for_update=True)
        if topic is None:
            return  # not a topic yet: routing.hotspot.detected brings every member when it is
        update = topics.joined(topic.report_ids, topic.count, list(progress.report_ids), progress.count)
        if update is not None:
            topic.report_ids, topic.count = update
            topic.last_at = max(topic.last_at, progress.at)

    return (
        Subscription("routing.hotspot.detected", STREAMS["routing"].name, "suggestions-hotspots", hotspot_detected,
                     "a hotspot becomes a congress supervision topic (人大监督) for staff"),
        Subscription("routing.hotspot.progressed", STREAMS["routing"].name, "suggestions-hotspot-progressed",
                     hotspot_progressed, "reports that join a hotspot later join its supervision topic"),
        Subscription("identity.deputy.updated", STREAMS["identity"].name, "suggestions-deputies", deputy_updated,
                     "who may lead or co-sign a suggestion, and in which region"),
    )
