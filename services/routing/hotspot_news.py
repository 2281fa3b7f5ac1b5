"""What other services tell routing about its hotspots (共性事项): the life of the suggestion born of
a hotspot's topic, a topic closed without one, and citizens who said "me too" on a report.

Each handler runs in the transaction of its event, which the inbox records once per event id. The
rules are `hotspot_life`'s; a change is announced as `routing.hotspot.progressed` to every report
of the hotspot.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import clustering, hotspot_life, hotspots
from services.routing.models import Hotspot, HotspotCorrection, HotspotReport, HotspotSupport, RoutingDecision
from shared import events
from shared.bus.consumer import BadEvent
from shared.bus.envelope import CloudEvent
from shared.service import Runtime

log = logging.getLogger("minyi.routing.hotspots")


class NotRoutedYet(RuntimeError):
    """A support for a report routing has not placed yet: its `intake.report.submitted` comes
    through another consumer and may still be on its way. Retried, not dead-lettered at once."""


async def _locked(session: AsyncSession, hotspot_id: str) -> Hotspot | None:
    """The hotspot, read again under its county's lock and a row lock."""
    hotspot = await session.get(Hotspot, hotspot_id)
    if hotspot is None:
        return None
    await hotspots.lock_county(session, hotspot.county_code)
    return await session.get(Hotspot, hotspot_id, with_for_update=True, populate_existing=True)


async def _holding(session: AsyncSession, hotspot: Hotspot) -> Hotspot:
    """The hotspot that now holds a merged one's reports (the end of its `merged_into` chain)."""
    for _ in range(hotspot_life.MERGE_HOPS):
        if hotspot.state != hotspot_life.MERGED or hotspot.merged_into is None:
            return hotspot
        target = await session.get(Hotspot, hotspot.merged_into, with_for_update=True, populate_existing=True)
        if target is None:
            return hotspot
        hotspot = target
    return hotspot


async def suggestion_event(runtime: Runtime, session: AsyncSession, event: CloudEvent) -> None:
    """`suggestions.suggestion.*`: only a suggestion born of a topic (`topic_id`) that is one of
    routing's hotspots concerns it; every other is passed over."""
    kind = event.type.rsplit(".", 1)[-1]
    try:
        news = hotspot_life.suggestion_news(kind, event.data)
    except hotspot_life.Malformed as exc:
        raise BadEvent(f"{event.type} {event.id}: {exc}") from exc
    if news is None:
        return
    topic = await _locked(session, news.topic_id)
    if topic is None:
        return  # a topic that is no hotspot of this installation
    hotspot = await _holding(session, topic)
    change = hotspot_life.on_suggestion(hotspots.life_of(hotspot), news)
    if change is None:
        return
    converted = hotspot.suggestion_id is None
    hotspots.set_life(hotspot, change.life)
    members = (await hotspots.member_ids(session, [hotspot.id]))[hotspot.id]
    if converted:
        # Staff chose this cluster for a suggestion: its members as they are now are a person's
        # judgement too, ground truth for `minyi hotspots corrections`.
        session.add(HotspotCorrection(kind="convert", hotspot_id=hotspot.id, report_ids=members,
                                      actor=(news.actor or "suggestions")[:200], note=news.title))
    if change.step is not None:
        await hotspots.announce(runtime, session, hotspot, change.step, members, news.at, change.note)


async def topic_closed(runtime: Runtime, session: AsyncSession, event: CloudEvent) -> None:
    """`suggestions.topic.closed`: staff decided the hotspot's topic is not taken up."""
    closed = event.payload(events.TopicClosed)
    at = closed.at
    hotspot = await _locked(session, closed.id)
    if hotspot is None:
        return
    change = hotspot_life.on_topic_closed(hotspots.life_of(hotspot), closed.note, at)
    if change is None:
        return
    hotspots.set_life(hotspot, change.life)
    if change.step is not None:
        members = (await hotspots.member_ids(session, [hotspot.id]))[hotspot.id]
        await hotspots.announce(runtime, session, hotspot, change.step, members, at, change.note)


async def report_supported(session: AsyncSession, event: CloudEvent) -> None:
    """`intake.report.supported`: one more supporter for the hotspot holding the report, once per
    support (its id), whatever id the event came under."""
    support = event.payload(events.ReportSupported)
    report_id, support_id = support.report_id, support.support_id
    member = await session.get(HotspotReport, report_id)
    if member is None:
        if await session.get(RoutingDecision, report_id) is None:
            raise NotRoutedYet(f"report {report_id[:40]} is not routed yet")
        return  # a report without words to cluster by belongs to no hotspot
    await hotspots.lock_county(session, clustering.county_of(member.region_code))
    added = await session.scalar(insert(HotspotSupport).values(support_id=support_id[:64], report_id=report_id)
                                 .on_conflict_do_nothing(index_elements=["support_id"])
                                 .returning(HotspotSupport.support_id))
    if added is None:
        return
    # Read again under the lock: a split or merge may have moved the report meanwhile.
    member = await session.get(HotspotReport, report_id, populate_existing=True)
    if member is not None:
        await session.execute(update(Hotspot).where(Hotspot.id == member.hotspot_id)
                              .values(supporters=Hotspot.supporters + 1))

