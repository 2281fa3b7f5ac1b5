"""Bus subscriptions of the suggestions service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

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

    return (
        Subscription("routing.hotspot.detected", STREAMS["routing"].name, "suggestions-hotspots", hotspot_detected,
                     "a hotspot becomes a congress supervision topic (人大监督) for staff"),
        Subscription("identity.deputy.updated", STREAMS["identity"].name, "suggestions-deputies", deputy_updated,
                     "who may lead or co-sign a suggestion, and in which region"),
    )
