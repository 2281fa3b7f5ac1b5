"""Placing each report in a cluster as it arrives, and publishing a cluster that becomes a hotspot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import clustering, hotspot_life, match_model
from services.routing.classify import fingerprint
from services.routing.models import Hotspot, HotspotReport
from services.routing.profile_cache import ProfileCache
from shared.ids import new_id
from shared.service import Runtime

# States whose clusters still gather new reports.
JOINABLE = ("open", "converted")
# At most this many open clusters sharing a search key with a new report, the most recent, are
# scored against it, and the UNKEYED_CANDIDATES most recent of the county whatever they share.
CANDIDATES = 300
UNKEYED_CANDIDATES = 100
# "Already reported?" answers while a citizen types: the most recent matters are the likely ones.
SIMILAR_CANDIDATES = 100
# Parsed profiles "already reported?" keeps between requests (profile_cache.py).
_PROFILES = ProfileCache()


async def open_clusters(session: AsyncSession, county: str, since: datetime,
                        sig: clustering.Signature, limit: int = CANDIDATES) -> list[Hotspot]:
    """Clusters of the county a new report may join: last report inside the window, not closed or
    merged away (a converted one still gathers reports, which then join its supervision topic).
    Those sharing a kind of problem with the report, and a place character when it names one
    (`clustering.lookup_keys`, a GIN lookup, so a county with a hundred thousand open reports is
    not read whole); with them, of the county's most recent ones, those whose meaning is near the
    report's (their stored sums are read first, the profiles of the near ones only after): the
    same problem told in words the dictionary does not list is found by its meaning
    (`meaning.py`), not by a key. A report with neither a key nor a vector is compared with the
    most recent ones."""
    joinable = _joinable(county, since)
    keys = clustering.lookup_keys(sig)
    recent_limit = min(limit, UNKEYED_CANDIDATES)
    if not keys and sig.meaning is None:
        recent = select(Hotspot).where(*joinable).order_by(Hotspot.last_at.desc()).limit(recent_limit)
        return list((await session.scalars(recent)).all())
    near: list[str] = []
    if sig.meaning is not None:
        sums = (await session.execute(select(Hotspot.id, Hotspot.meaning_sum, Hotspot.meaning_n).where(*joinable)
                                      .order_by(Hotspot.last_at.desc()).limit(recent_limit))).all()
        near = [row.id for row in sums
                if (clustering.meaning_agreement_with(sig, row.meaning_sum, row.meaning_n) or 0.0) > 0.0]
    found = list((await session.scalars(select(Hotspot).where(Hotspot.id.in_(near))
                                        .order_by(Hotspot.last_at.desc()))).all()) if near else []
    if keys:
        keyed = (select(Hotspot).where(*joinable, Hotspot.search_keys.overlap(keys), Hotspot.id.not_in(near))
                 .order_by(Hotspot.last_at.desc()).limit(limit))
        found.extend((await session.scalars(keyed)).all())
    return found


# A profile without its members' meaning sum: "already reported?" compares words and kinds only, and
# the sum (base64 of 384 floats) was four fifths of a profile's bytes read.
_PROFILE_WORDS_ONLY = type_coerce(Hotspot.profile.op("-")("meaning_sum"), JSONB).label("profile")


def _joinable(county: str, since: datetime) -> tuple[Any, ...]:
    """The conditions of a cluster a report may still join: its county, a report inside the
    window, not closed or merged away."""
    return Hotspot.county_code == county, Hotspot.last_at >= since, Hotspot.state.in_(JOINABLE)


def _views(clusters: list[Hotspot]) -> list[clustering.ClusterView]:
    return [clustering.ClusterView(h.id, clustering.Profile.from_json(h.profile), h.last_at) for h in clusters]


async def place(runtime: Runtime, session: AsyncSession, *, report_id: str, region_code: str, category: str,
                content: str, received_at: datetime, now: datetime,
                location: dict[str, Any] | None = None, county_locked: bool = False,
                meaning: bytes | None = None) -> Hotspot | None:
    """Join the report to the cluster it belongs to, or start one. Returns the cluster.
    `county_locked`: the caller holds the county's lock (`lock_county`) in this transaction;
    `meaning`: the text's vector (meaning.encode), encoded by the caller before any lock."""
    words = fingerprint(content)
    if not words or await session.get(HotspotReport, report_id) is not None:
        return None
    sig = clustering.signature(content, words, region_code, category, clustering.point_of(location), meaning)
    county = clustering.county_of(region_code)
    window = timedelta(days=runtime.settings.hotspot_window_days)
    # One placement at a time per county, or two replicas could each start a cluster for the same
    # problem.
    if not county_locked:
        await lock_county(session, county)
    candidates = await open_clusters(session, county, received_at - window, sig)
    match = match_model.best_match(sig, _views(candidates), received_at, window)
    if match is None:
        profile = clustering.fold([sig])
        hotspot = Hotspot(id=new_id(), county_code=county, region_code=region_code, category=category,
                          category_counts=dict(profile.categories), profile=profile.to_json(),
                          keywords=clustering.keywords(profile.words, 1), places=clustering.top_places(profile),
                          search_keys=clustering.search_keys([sig]), meaning_sum=clustering.summed_meaning(profile),
                          meaning_n=profile.meaning_n, count=1, first_at=received_at, last_at=received_at, version=1,
                          state="open", supporters=0)
        session.add(hotspot)
        session.add(HotspotReport(report_id=report_id, hotspot_id=hotspot.id, region_code=region_code,
                                  category=category, received_at=received_at, similarity=1.0,
                                  signature=sig.to_json(), placed_by="auto"))
        return hotspot
    hotspot = next(h for h in candidates if h.id == match[0])
    profile = clustering.Profile.from_json(hotspot.profile)
    profile.add(sig)
    refresh(hotspot, profile)
    hotspot.region_code = clustering.common_region([hotspot.region_code, region_code])
    hotspot.first_at = min(hotspot.first_at, received_at)
    hotspot.last_at = max(hotspot.last_at, received_at)
    session.add(HotspotReport(report_id=report_id, hotspot_id=hotspot.id, region_code=region_code,
                              category=category, received_at=received_at, similarity=round(match[1], 4),
                              signature=sig.to_json(), placed_by="auto"))
    await session.flush()
    recent = await session.scalar(select(func.count()).select_from(HotspotReport).where(
        HotspotReport.hotspot_id == hotspot.id, HotspotReport.received_at >= hotspot.last_at - window))
    if hotspot.detected_at is None and int(recent or 0) >= runtime.settings.hotspot_threshold:
        hotspot.detected_at = now
        await runtime.emit(session, "routing.hotspot.detected", await describe(session, hotspot, window),
                           subject=hotspot.id)
    await announce_join(runtime, session, hotspot, report_id, now)
    return hotspot


def refresh(hotspot: Hotspot, profile: clustering.Profile) -> None:
    """Write a changed profile back with what derives from it."""
    first = hotspot.category
    hotspot.profile = profile.to_json()
    hotspot.count = profile.count
    hotspot.category_counts = dict(profile.categories)
    hotspot.category = clustering.majority(profile.categories, first)
    hotspot.keywords = clustering.keywords(profile.words, profile.count)
    hotspot.places = clustering.top_places(profile)
    hotspot.search_keys = clustering.search_keys(profile.members)
    hotspot.meaning_sum = clustering.summed_meaning(profile)
    hotspot.meaning_n = profile.meaning_n
    hotspot.version += 1


async def similar(runtime: Runtime, session: AsyncSession, *, region_code: str, content: str,
                  location: dict[str, Any] | None, now: datetime, limit: int = 5) -> list[tuple[Hotspot, float]]:
    """Open clusters an unsent report probably repeats (重复反映), best first, by words and kinds of
    problem (no meaning vector: see hotspots_api). Reads only."""
    words = fingerprint(content)
    if not words:
        return []
    sig = clustering.signature(content, words, region_code, "other", clustering.point_of(location))
    window = timedelta(days=runtime.settings.hotspot_window_days)
    joinable = _joinable(clustering.county_of(region_code), now - window)
    keys = clustering.lookup_keys(sig)
    # Only what ranking needs: ids, versions and dates first, profiles for those not kept, whole
    # rows for the few answered.
    light = select(Hotspot.id, Hotspot.version, Hotspot.last_at).where(*joinable)
    light = (light.where(Hotspot.search_keys.overlap(keys)).limit(SIMILAR_CANDIDATES) if keys
             else light.limit(min(SIMILAR_CANDIDATES, UNKEYED_CANDIDATES)))
    rows = (await session.execute(light.order_by(Hotspot.last_at.desc()))).all()

    async def load(ids: list[str]) -> list[tuple[str, int, dict[str, Any]]]:
        read = await session.execute(select(Hotspot.id, Hotspot.version, _PROFILE_WORDS_ONLY)
                                     .where(Hotspot.id.in_(ids)))
        return [(r.id, r.version, r.profile) for r in read]

    profiles = await _PROFILES.profiles(((r.id, r.version) for r in rows), load)
    views = [clustering.ClusterView(r.id, profiles[r.id], r.last_at) for r in rows if r.id in profiles]
    found = clustering.ranked(sig, views, now, window, clustering.SIMILAR)[:limit]
    if not found:
        return []
    answered = await session.scalars(select(Hotspot).where(Hotspot.id.in_([i for i, _ in found])))
    by_id = {h.id: h for h in answered.all()}
    return [(by_id[i], score) for i, score in found if i in by_id]


async def lock_county(session: AsyncSession, county: str) -> None:
    """Wait for the county's placements and corrections: the same lock `place` takes, so a report
    placed while staff split or merge cannot write back a profile read before the change."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"hotspot:{county}"})


async def member_ids(session: AsyncSession, hotspot_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each hotspot's reports, first received first."""
    out: dict[str, list[str]] = {i: [] for i in hotspot_ids}
    if not hotspot_ids:
        return out
    rows = await session.execute(
        select(HotspotReport.hotspot_id, HotspotReport.report_id).where(HotspotReport.hotspot_id.in_(hotspot_ids))
        .order_by(HotspotReport.received_at, HotspotReport.report_id))
    for hotspot_id, report_id in rows.all():
        out[hotspot_id].append(report_id)
    return out


def summary(hotspot: Hotspot, report_ids: Sequence[str], window: timedelta | None = None) -> dict[str, Any]:
    """A hotspot as the API lists it and `routing.hotspot.detected` announces it."""
    return {
        "id": hotspot.id, "region_code": hotspot.region_code, "category": hotspot.category, "count": hotspot.count,
        "keywords": list(hotspot.keywords), "report_ids": list(report_ids),
        "first_at": hotspot.first_at.isoformat(), "last_at": hotspot.last_at.isoformat(),
        "state": hotspot.state, "supporters": hotspot.supporters, "places": list(hotspot.places),
        "category_counts": dict(hotspot.category_counts), "topic_title": hotspot.topic_title,
        "suggestion_id": hotspot.suggestion_id,
        "detected_at": hotspot.detected_at.isoformat() if hotspot.detected_at else None,
        **({"window_days": window.days} if window is not None else {}),
    }


async def describe(session: AsyncSession, hotspot: Hotspot, window: timedelta | None = None) -> dict[str, Any]:
    return summary(hotspot, (await member_ids(session, [hotspot.id]))[hotspot.id], window)


def life_of(hotspot: Hotspot) -> hotspot_life.Life:
    return hotspot_life.Life(
        state=hotspot.state, suggestion_id=hotspot.suggestion_id, suggestion_seq=hotspot.suggestion_seq,
        topic_title=hotspot.topic_title, converted_at=hotspot.converted_at, closed_at=hotspot.closed_at,
        close_note=hotspot.close_note, outcome=hotspot.outcome)


def set_life(hotspot: Hotspot, life: hotspot_life.Life) -> None:
    hotspot.state, hotspot.suggestion_id, hotspot.suggestion_seq = life.state, life.suggestion_id, life.suggestion_seq
    hotspot.topic_title, hotspot.converted_at, hotspot.closed_at = life.topic_title, life.converted_at, life.closed_at
    hotspot.close_note, hotspot.outcome = life.close_note, life.outcome
    hotspot.version += 1


def public_terms(hotspot: Hotspot) -> tuple[list[str], list[str]]:
    """The hotspot's places and keywords that at least two of its reports name (see
    `hotspot_life.shared_terms`)."""
    profile = clustering.Profile.from_json(hotspot.profile)
    return (hotspot_life.shared_terms(hotspot.places, profile.mentions),
            hotspot_life.shared_terms(hotspot.keywords, profile.words))


async def announce(runtime: Runtime, session: AsyncSession, hotspot: Hotspot, step: hotspot_life.Step,
                   report_ids: Sequence[str], at: datetime, note: str | None = None) -> None:
    """One step of the hotspot's life, for the citizens of `report_ids` (`routing.hotspot.progressed`)."""
    if not report_ids:
        return
    places, keywords = public_terms(hotspot)
    matter = hotspot_life.Matter(hotspot.id, hotspot.count, hotspot.supporters, places, keywords, hotspot.category)
    await runtime.emit(session, "routing.hotspot.progressed",
                       hotspot_life.progressed(matter, life_of(hotspot), step, report_ids, at, note),
                       subject=hotspot.id)


async def announce_join(runtime: Runtime, session: AsyncSession, hotspot: Hotspot, report_id: str,
                        now: datetime) -> None:
    """After `place`: a hotspot found just now (its `detected_at` is this placement's `now`) is news
    for every member; a report joining one found before is news for that report alone. A cluster
    that is no hotspot yet tells nothing."""
    if hotspot.detected_at is None:
        return
    if hotspot.detected_at == now:
        report_ids = (await member_ids(session, [hotspot.id]))[hotspot.id]
    else:
        report_ids = [report_id]
    await announce(runtime, session, hotspot, "joined", report_ids, now)
