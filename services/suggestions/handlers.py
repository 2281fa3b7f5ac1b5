"""Bus subscriptions of the suggestions service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.suggestions.models import DeputyView
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

    return (
        Subscription("identity.deputy.updated", STREAMS["identity"].name, "suggestions-deputies", deputy_updated,
                     "who may lead or co-sign a suggestion, and in which region"),
    )
