"""HTTP API of rankings: the year's ranking (paged, the live one cached), its publication, the talk list."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy import func, select

from services.scoring import domain, ledger, public_limits, rankings_store
from services.scoring.api import Level, RuntimeDep, Staff, Strict, Year
from services.scoring.api_schemas import PublicationOut, RankedDeputy, TalkListed
from services.scoring.models import Publication
from services.scoring.publication import page_events
from services.scoring.ranking_cache import LIVE_SECONDS, Ranked, RankingCache
from shared.auth import require_region
from shared.bus.outbox import Outgoing
from shared.errors import conflict
from shared.ids import new_id
from shared.problems import COMMON, problems
from shared.service import Runtime

router = APIRouter(prefix="/v1", tags=["scoring"], responses=COMMON)

RegionQuery = Annotated[str, Query(pattern=r"^\d{2,12}$")]
DEFAULT_PAGE, MAX_PAGE = 500, 1000
# More than the deputies of any province at every level together.
MAX_OFFSET = 1_000_000
_CACHE_KEY = "scoring.rankings"

_TIME = {"type": "string", "format": "date-time"}
RANKING_HEADERS = {
    "Minyi-Total-Count": {"description": "rows in the whole ranking", "required": True,
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Minyi-Ranked-At": {"description": "when a ranking not yet published was made", "schema": _TIME},
    "Minyi-Published-At": {"description": "when the ranking was published", "schema": _TIME},
}
PAGING = (f"Paged: `limit` rows (default {DEFAULT_PAGE}, at most {MAX_PAGE}) from `offset`; the header "
          "`Minyi-Total-Count` says how many there are in all. ")


def cache(runtime: Runtime) -> RankingCache:
    return runtime.kept(_CACHE_KEY, RankingCache)


def _json(row: dict[str, Any]) -> bytes:
    # As JSONResponse writes it, so a cached page reads the same as any other answer.
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


@router.get("/rankings", response_model=list[RankedDeputy],
            summary="Deputies ranked by the year's total; ties share a rank; frozen once published",
            description=PAGING + "Until published, the ranking is made again at most every "
            f"{LIVE_SECONDS:g} seconds (header `Minyi-Ranked-At`: when this one was made); once published, "
            "it is the published one (header `Minyi-Published-At`).",
            responses={200: {"description": "a page of the ranking, highest first", "headers": RANKING_HEADERS},
                       **problems(429)})
async def get_ranking(request: Request, year: Year, runtime: RuntimeDep, who: public_limits.Caller,
                      region_code: RegionQuery, level: Level | None = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                      offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Response:
    await public_limits.check(request, runtime, who, "rankings")
    async with runtime.sessions()() as session:
        published = await rankings_store.published(session, year, region_code, level)
        if published is not None:
            rows = await rankings_store.published_page(session, published.id, offset, limit)
            return JSONResponse(rows, headers={"Minyi-Published-At": published.published_at.isoformat(),
                                               "Minyi-Total-Count": str(published.deputies)})
        # Stars follow the grading in force on the year's last day: a new rules version is a new ranking.
        rules = domain.in_force(await ledger.rule_sets(runtime, session), region_code, date(year, 12, 31))

        async def make() -> Ranked:
            rows = await rankings_store.live(session, year, region_code, level, rules.grading)
            return Ranked(datetime.now(UTC), [_json(r) for r in rows])

        ranked = await cache(runtime).get((year, region_code, level or "", rules.region_code, rules.version), make)
    return Response(ranked.page(offset, limit), media_type="application/json",
                    headers={"Minyi-Ranked-At": ranked.at.isoformat(), "Minyi-Total-Count": str(len(ranked.rows))})


class PublicationIn(Strict):
    year: int = Field(ge=2000, le=2100)
    region_code: str = Field(pattern=r"^\d{2,12}$")
    level: Level | None = None


@router.post("/rankings/publications", status_code=201, response_model=PublicationOut,
             summary="Publish a ranking (scoring.ranking.published); it stays as published from then on",
             description="Published as one `scoring.ranking.published` event per page of rows (each well under "
             "NATS's message limit), every page with the publication's `deputies`, `pages` and `digest`. The "
             "answer says the same; the rows are read with `GET /v1/rankings`.",
             responses=problems((409, "published already")))
async def publish(body: PublicationIn, who: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    require_region(who, body.region_code)
    key = (body.year, body.region_code, body.level or "")
    async with runtime.transaction() as session:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"scoring.publish:{key}"))))
        if await session.get(Publication, key) is not None:
            raise conflict("该排名已经发布，不能再次发布。")
        grading = domain.in_force(await ledger.load_rule_sets(session), body.region_code,
                                  date(body.year, 12, 31)).grading
        ranked = await rankings_store.live(session, body.year, body.region_code, body.level, grading)
        header = {"id": new_id(), "year": body.year, "region_code": body.region_code, "level": body.level,
                  "published_by": who.sub, "published_at": datetime.now(UTC).isoformat()}
        events = page_events(header, ranked)
        session.add(Publication(year=body.year, region_code=body.region_code, level=body.level or "",
                                id=header["id"], deputies=len(ranked), digest=events[0]["digest"],
                                published_by=who.sub, published_at=datetime.fromisoformat(header["published_at"])))
        await session.flush()
        await rankings_store.store_rows(session, header["id"], 0, ranked)
        await runtime.emit_many(session, [Outgoing("scoring.ranking.published", e, header["id"]) for e in events])
        await runtime.record_audit(session, who, "ranking.published", subject_type="publication",
                                   subject_id=header["id"], region_code=body.region_code,
                                   detail={"year": body.year, "level": body.level, "deputies": len(ranked),
                                           "pages": len(events)})
    return {**header, "deputies": len(ranked), "pages": len(events), "digest": events[0]["digest"]}


@router.get("/talks", response_model=list[TalkListed],
            summary="约谈: the bottom of the year's ranking; two years in a row are flagged")
async def talks(year: Year, who: Staff, runtime: RuntimeDep, region_code: RegionQuery,
                level: Level | None = None) -> list[dict[str, Any]]:
    require_region(who, region_code)
    async with runtime.sessions()() as session:
        grading = domain.in_force(await ledger.load_rule_sets(session), region_code, date(year, 12, 31)).grading
        this_year = await rankings_store.live(session, year, region_code, level, grading, with_region=True)
        last_year = await rankings_store.live(session, year - 1, region_code, level, grading)

    def bottom(ranked: list[dict[str, Any]]) -> list[str]:
        return domain.talk_list([(r["deputy_id"], r["total"], r["rank"]) for r in ranked], grading.talk_share)

    before = set(bottom(last_year)) if any(r["total"] for r in last_year) else set()
    # Checked row by row as well: whatever the query matched, no deputy outside the caller's region is named.
    visible: dict[str, dict[str, Any]] = {}
    for row in this_year:
        if who.can_see(row.pop("region_code")):
            visible[row["deputy_id"]] = row
    return [{**visible[d], "consecutive": d in before} for d in bottom(this_year) if d in visible]
