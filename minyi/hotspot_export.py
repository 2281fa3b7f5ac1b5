"""`minyi hotspots corrections`: the hotspots people checked, as a labelled set for the clustering.

A hotspot counts as checked when congress staff split reports off it or into it, merged another
into it, or turned its topic into a suggestion (`routing.hotspot_corrections`, kinds split, merge,
convert). Its members as they are now are then a person's judgement: one line per member report,
in the format of `tests/data/routing/hotspots_v2` (see its README), with `cluster` the hotspot's
id. Left out: hotspots merged away (their reports are in the one they went into) and those staff
closed in routing (a closure says the cluster was wrong, not which reports belong together).

Routing keeps no report's text, so `content` is null; it keeps what clustering read from it
(`signature`: kinds of problem, place names, character pairs, point), which is what
`bench/hotspot_eval.py --corrections FILE` replays the clustering on. To change how signatures are
made, join the lines with intake's reports by `id` (the report id) for their texts. `place` and
`note` are null; `lat` and `lon` are the phone's point when the report had one. `day` counts from the first exported
report's day (China time); `received_at` is exact. Every line has a cluster: reports nobody
checked are not in the file, so it measures how reports are grouped, not what is left alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from minyi.dead_letters import Refused, database_url
from services.routing.models import Hotspot, HotspotCorrection, HotspotReport
from shared.db import Database
from shared.settings import Settings

Say = Callable[[str], None]
CHECKED = ("split", "merge", "convert")
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Member:
    report_id: str
    hotspot_id: str
    region_code: str
    category: str
    received_at: datetime
    signature: Mapping[str, Any]


def checked_hotspots(corrections: Iterable[tuple[str, str, str | None]], states: Mapping[str, str]) -> set[str]:
    """Of (kind, hotspot_id, other_hotspot_id) corrections, the hotspots whose members a person
    judged: named by a split, merge or conversion, not merged away, not closed by staff."""
    named: set[str] = set()
    closed_by_staff: set[str] = set()
    for kind, hotspot_id, other in corrections:
        if kind in CHECKED:
            named.update(h for h in (hotspot_id, other) if h)
        elif kind == "close":
            closed_by_staff.add(hotspot_id)
    return {h for h in named - closed_by_staff if states.get(h) not in (None, "merged")}


def rows(members: Sequence[Member]) -> list[dict[str, Any]]:
    """The lines of the file, in `day` order as in hotspots_v2 (then by time and id)."""
    if not members:
        return []
    ordered = sorted(members, key=lambda m: (m.received_at, m.report_id))
    start = datetime.combine(ordered[0].received_at.astimezone(CHINA).date(), time(), CHINA)
    out = []
    for m in ordered:
        point = m.signature.get("point")
        lat, lon = (float(point[0]), float(point[1])) if isinstance(point, list) and len(point) == 2 else (None, None)
        out.append({"id": m.report_id, "region_code": m.region_code, "lat": lat, "lon": lon, "category": m.category,
                    "content": None, "day": (m.received_at.astimezone(CHINA) - start).days,
                    "received_at": m.received_at.isoformat(), "cluster": m.hotspot_id, "place": None, "note": None,
                    "signature": dict(m.signature)})
    return out


async def load(db: Database, since: date | None) -> list[Member]:
    async with db.sessions() as session:
        query = select(HotspotCorrection.kind, HotspotCorrection.hotspot_id, HotspotCorrection.other_hotspot_id)
        if since is not None:
            query = query.where(HotspotCorrection.at >= datetime.combine(since, time(), CHINA))
        corrections = [(k, h, o) for k, h, o in (await session.execute(query)).all()]
        named = {h for _, h, o in corrections for h in (h, o) if h}
        # A closure before --since still leaves the cluster out.
        closures = (await session.execute(select(HotspotCorrection.kind, HotspotCorrection.hotspot_id,
                                                 HotspotCorrection.other_hotspot_id)
                                          .where(HotspotCorrection.kind == "close",
                                                 HotspotCorrection.hotspot_id.in_(named)))).all()
        states = dict((await session.execute(select(Hotspot.id, Hotspot.state).where(Hotspot.id.in_(named)))).all())
        chosen = checked_hotspots([*corrections, *((k, h, o) for k, h, o in closures)], states)
        found = (await session.scalars(select(HotspotReport).where(HotspotReport.hotspot_id.in_(chosen)))).all()
        return [Member(r.report_id, r.hotspot_id, r.region_code, r.category, r.received_at, dict(r.signature or {}))
                for r in found]


async def run(settings: Settings, *, since: date | None, out: Path | None, say: Say, tell: Say) -> int:
    """Write the lines to `out` (a new file) or through `say`; the count goes to `tell`."""
    if out is not None and await asyncio.to_thread(out.exists):
        raise Refused(f"{out} exists; name a new file", exit_code=2)
    db = Database.connect(database_url(settings), application_name="minyi-hotspots", pool_size=2)
    try:
        members = await load(db, since)
    finally:
        await db.dispose()
    lines = [json.dumps(row, ensure_ascii=False) for row in rows(members)]
    if out is None:
        for line in lines:
            say(line)
    else:
        await asyncio.to_thread(out.write_text, "".join(line + "\n" for line in lines), encoding="utf-8")
    clusters = len({m.hotspot_id for m in members})
    tell(f"{len(lines)} reports in {clusters} checked hotspot{'' if clusters == 1 else 's'}"
         + (f" written to {out}" if out is not None else ""))
    return 0
