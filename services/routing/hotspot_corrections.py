"""Congress staff correct the clustering: split reports off a hotspot, merge two, close one.

Each correction is kept (`HotspotCorrection`, exported by `minyi hotspots corrections` as ground
truth for measuring the clustering) and audited. A split or merge rebuilds the profile of every
hotspot whose members changed from the members' own signatures, and counts its supporters again.
Reports moved into a hotspot that is already announced are news for their citizens ("joined");
a hotspot that a correction makes big enough, or that takes in an announced one, is announced
(`routing.hotspot.detected`) and all its reports told.

Every correction takes the county's placement lock (`hotspots.lock_county`) before it reads, like
`hotspots.place`, so a report arriving meanwhile is placed before or after it, never half-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import clustering, hotspot_life, hotspots
from services.routing.models import Hotspot, HotspotCorrection, HotspotReport, HotspotSupport
from shared.auth import Principal
from shared.errors import Problem, conflict, forbidden, invalid, not_found
from shared.ids import new_id
from shared.service import Runtime

UNKNOWN = "共性事项不存在。"


def visible(who: Principal, region_code: str) -> bool:
    """Who sees a hotspot: staff and deputies of a region holding it, or of a part of its region
    (a county's hotspot shows to a township's staff), as `GET /v1/hotspots` lists them."""
    scope = who.region
    return not scope or region_code.startswith(scope) or scope.startswith(region_code)


def refused(refusal: hotspot_life.Refusal) -> Problem:
    if refusal.status == 422:
        return invalid(refusal.field or "body", refusal.message, detail=f"{refusal.message}。")
    return conflict(refusal.message)


async def for_staff(session: AsyncSession, who: Principal, hotspot_id: str) -> Hotspot:
    """The hotspot a correction changes, locked. Staff correct only hotspots wholly inside their
    region: one reaching into a neighbouring township is its county's staff's to change."""
    hotspot = await session.get(Hotspot, hotspot_id)
    if hotspot is None or not visible(who, hotspot.region_code):
        raise not_found(UNKNOWN)
    if not who.can_see(hotspot.region_code):
        raise forbidden("该共性事项超出您的管辖范围，请由上级人大常委会工作人员处理。")
    await hotspots.lock_county(session, hotspot.county_code)
    locked = await session.get(Hotspot, hotspot_id, with_for_update=True, populate_existing=True)
    assert locked is not None  # hotspots are never deleted
    return locked


async def _members(session: AsyncSession, hotspot_id: str) -> list[HotspotReport]:
    return list((await session.scalars(
        select(HotspotReport).where(HotspotReport.hotspot_id == hotspot_id)
        .order_by(HotspotReport.received_at, HotspotReport.report_id).with_for_update())).all())


def _signature(member: HotspotReport) -> clustering.Signature:
    # Reports clustered before signatures were kept have none: their region and category still count.
    return clustering.Signature.from_json({"region_code": member.region_code, "category": member.category,
                                           **(member.signature or {})})


async def count_supporters(session: AsyncSession, hotspot_id: str) -> int:
    """Supports of the reports a hotspot holds now."""
    found = await session.scalar(
        select(func.count()).select_from(HotspotSupport)
        .join(HotspotReport, HotspotReport.report_id == HotspotSupport.report_id)
        .where(HotspotReport.hotspot_id == hotspot_id))
    return int(found or 0)


async def _rebuild(session: AsyncSession, hotspot: Hotspot, members: Sequence[HotspotReport]) -> None:
    hotspots.refresh(hotspot, clustering.fold(_signature(m) for m in members))
    hotspot.region_code = clustering.common_region([m.region_code for m in members])
    hotspot.first_at = min(m.received_at for m in members)
    hotspot.last_at = max(m.received_at for m in members)
    hotspot.supporters = await count_supporters(session, hotspot.id)


def _move(members: Sequence[HotspotReport], hotspot_id: str) -> None:
    for member in members:
        # A person put it there: the clustering's score against the old cluster says nothing now.
        member.hotspot_id, member.placed_by, member.similarity = hotspot_id, "staff", 1.0


async def _announce_moved(runtime: Runtime, session: AsyncSession, hotspot: Hotspot, moved: Sequence[str],
                          already_announced: bool, now: datetime) -> None:
    """Tell the moved reports they joined an announced hotspot; announce one that becomes a hotspot
    now and tell all its reports."""
    window = timedelta(days=runtime.settings.hotspot_window_days)
    if hotspot.detected_at is not None:
        await hotspots.announce(runtime, session, hotspot, "joined", moved, now)
        return
    members = await _members(session, hotspot.id)
    big_enough = hotspot_life.detected([m.received_at for m in members], window, runtime.settings.hotspot_threshold)
    if not (already_announced or big_enough):
        return
    hotspot.detected_at = now
    await runtime.emit(session, "routing.hotspot.detected", await hotspots.describe(session, hotspot, window),
                       subject=hotspot.id)
    await hotspots.announce(runtime, session, hotspot, "joined", [m.report_id for m in members], now)


async def split(runtime: Runtime, session: AsyncSession, who: Principal, source: Hotspot, report_ids: Sequence[str],
                note: str | None, now: datetime) -> Hotspot:
    """Move `report_ids` out of `source` into a new hotspot; returns the new one."""
    wanted = list(dict.fromkeys(report_ids))
    members = await _members(session, source.id)
    refusal = hotspot_life.split_refusal(source.state, [m.report_id for m in members], wanted)
    if refusal is not None:
        raise refused(refusal)
    chosen = set(wanted)
    moving = [m for m in members if m.report_id in chosen]
    staying = [m for m in members if m.report_id not in chosen]
    first = moving[0]
    new = Hotspot(id=new_id(), county_code=source.county_code, region_code=first.region_code,
                  category=first.category, category_counts={}, profile={}, keywords=[], places=[], search_keys=[],
                  count=0, supporters=0, first_at=first.received_at, last_at=first.received_at, detected_at=None,
                  state=hotspot_life.OPEN, topic_title=None, converted_at=None, suggestion_id=None, closed_at=None,
                  close_note=None, merged_into=None, suggestion_seq=0, outcome=None, version=0)
    session.add(new)
    await session.flush()
    _move(moving, new.id)
    await session.flush()
    await _rebuild(session, new, moving)
    await _rebuild(session, source, staying)
    session.add(HotspotCorrection(kind="split", hotspot_id=source.id, other_hotspot_id=new.id, report_ids=wanted,
                                  actor=who.sub[:200], note=note, at=now))
    await runtime.record_audit(session, who, "hotspot.split", subject_type="hotspot", subject_id=source.id,
                               region_code=source.region_code,
                               detail={"new_hotspot_id": new.id, "report_ids": wanted, "note": note})
    await _announce_moved(runtime, session, new, wanted, False, now)
    return new


async def merge(runtime: Runtime, session: AsyncSession, who: Principal, hotspot_id: str, other_id: str,
                note: str | None, now: datetime) -> Hotspot:
    """Move every report of `other_id` into `hotspot_id`; the other is then `merged` into it."""
    this = await for_staff(session, who, hotspot_id)
    if hotspot_id == other_id:
        raise conflict("不能把共性事项并入它自己。")
    other = await session.get(Hotspot, other_id)
    if other is None or not visible(who, other.region_code):
        raise invalid("hotspot_id", "没有这个共性事项", detail="要并入的共性事项不存在。")
    if not who.can_see(other.region_code):
        raise forbidden("要并入的共性事项超出您的管辖范围。")
    if other.county_code != this.county_code:
        raise invalid("hotspot_id", "只能合并同一县（区）的共性事项", detail="只能合并同一县（区）的共性事项。")
    other = await session.get(Hotspot, other_id, with_for_update=True, populate_existing=True)
    assert other is not None
    before, taken = hotspots.life_of(this), hotspots.life_of(other)
    refusal = hotspot_life.merge_refusal(this.id, before, this.county_code, other.id, taken, other.county_code)
    if refusal is not None:
        raise refused(refusal)
    moving = await _members(session, other.id)
    _move(moving, this.id)
    await session.flush()
    after = hotspot_life.merged_life(before, taken)
    if after != before:
        hotspots.set_life(this, after)
    await _rebuild(session, this, await _members(session, this.id))
    other.state, other.merged_into = hotspot_life.MERGED, this.id
    other.version += 1
    # Hotspots merged into the other before now point where their reports are.
    await session.execute(update(Hotspot).where(Hotspot.merged_into == other.id).values(merged_into=this.id))
    moved = [m.report_id for m in moving]
    session.add(HotspotCorrection(kind="merge", hotspot_id=this.id, other_hotspot_id=other.id, report_ids=moved,
                                  actor=who.sub[:200], note=note, at=now))
    await runtime.record_audit(session, who, "hotspot.merged", subject_type="hotspot", subject_id=this.id,
                               region_code=this.region_code,
                               detail={"merged_hotspot_id": other.id, "report_ids": moved, "note": note})
    await _announce_moved(runtime, session, this, moved, other.detected_at is not None, now)
    return this


async def close(runtime: Runtime, session: AsyncSession, who: Principal, hotspot: Hotspot, note: str,
                now: datetime) -> Hotspot:
    """Close a cluster that is wrong or not worth a supervision topic."""
    life = hotspots.life_of(hotspot)
    refusal = hotspot_life.closure_refusal(life)
    if refusal is not None:
        raise refused(refusal)
    change = hotspot_life.staff_closure(life, note, now)
    hotspots.set_life(hotspot, change.life)
    members = [m.report_id for m in await _members(session, hotspot.id)]
    session.add(HotspotCorrection(kind="close", hotspot_id=hotspot.id, report_ids=members, actor=who.sub[:200],
                                  note=note, at=now))
    await runtime.record_audit(session, who, "hotspot.closed", subject_type="hotspot", subject_id=hotspot.id,
                               region_code=hotspot.region_code, detail={"note": note, "count": len(members)})
    if hotspot.detected_at is not None and change.step is not None:
        await hotspots.announce(runtime, session, hotspot, change.step, members, now, change.note)
    return hotspot
