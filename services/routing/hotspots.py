"""Placing each report in a cluster as it arrives, and publishing a cluster that becomes a hotspot."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import clustering
from services.routing.classify import fingerprint
from services.routing.models import Hotspot, HotspotReport
from shared.ids import new_id
from shared.service import Runtime


async def place(runtime: Runtime, session: AsyncSession, *, report_id: str, region_code: str, category: str,
                content: str, received_at: datetime, now: datetime) -> Hotspot | None:
    """Join the report to the cluster it belongs to, or start one. Returns the cluster."""
    words = fingerprint(content)
    if not words or await session.get(HotspotReport, report_id) is not None:
        return None
    county = clustering.county_of(region_code)
    window = timedelta(days=runtime.settings.hotspot_window_days)
    # One placement at a time per county and category, or two replicas could each start a cluster
    # for the same problem.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"hotspot:{county}:{category}"})
    open_clusters = (await session.scalars(
        select(Hotspot).where(Hotspot.county_code == county, Hotspot.category == category,
                              Hotspot.last_at >= received_at - window)
    )).all()
    views = [clustering.ClusterView(h.id, h.document_frequency, h.count, h.last_at) for h in open_clusters]
    match = clustering.best_match(words, views, received_at, window)
    if match is None:
        frequency = clustering.joined({}, words)
        hotspot = Hotspot(id=new_id(), county_code=county, region_code=region_code, category=category,
                          document_frequency=frequency, keywords=clustering.keywords(frequency, 1), count=1,
                          first_at=received_at, last_at=received_at, version=1)
        session.add(hotspot)
        session.add(HotspotReport(report_id=report_id, hotspot_id=hotspot.id, region_code=region_code,
                                  received_at=received_at, similarity=1.0))
        return hotspot
    hotspot = next(h for h in open_clusters if h.id == match[0])
    hotspot.document_frequency = clustering.joined(hotspot.document_frequency, words)
    hotspot.count += 1
    hotspot.keywords = clustering.keywords(hotspot.document_frequency, hotspot.count)
    hotspot.region_code = clustering.common_region([hotspot.region_code, region_code])
    hotspot.first_at = min(hotspot.first_at, received_at)
    hotspot.last_at = max(hotspot.last_at, received_at)
    hotspot.version += 1
    session.add(HotspotReport(report_id=report_id, hotspot_id=hotspot.id, region_code=region_code,
                              received_at=received_at, similarity=round(match[1], 4)))
    await session.flush()
    recent = await session.scalar(select(func.count()).select_from(HotspotReport).where(
        HotspotReport.hotspot_id == hotspot.id, HotspotReport.received_at >= hotspot.last_at - window))
    if hotspot.detected_at is None and int(recent or 0) >= runtime.settings.hotspot_threshold:
        hotspot.detected_at = now
        await runtime.emit(session, "routing.hotspot.detected", await describe(session, hotspot, window),
                           subject=hotspot.id)
    return hotspot


async def describe(session: AsyncSession, hotspot: Hotspot, window: timedelta | None = None) -> dict[str, object]:
    """A hotspot as the API lists it and the event announces it."""
    query = select(HotspotReport.report_id).where(HotspotReport.hotspot_id == hotspot.id)
    report_ids = list((await session.scalars(query.order_by(HotspotReport.received_at))).all())
    return {
        "id": hotspot.id, "region_code": hotspot.region_code, "category": hotspot.category, "count": hotspot.count,
        "keywords": list(hotspot.keywords), "report_ids": report_ids,
        "first_at": hotspot.first_at.isoformat(), "last_at": hotspot.last_at.isoformat(),
        **({"window_days": window.days} if window is not None else {}),
    }
