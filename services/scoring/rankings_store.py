"""Rankings in the database: the live one from the running totals, and published ones row by row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain
from services.scoring.models import DeputyRow, Publication, PublicationRow, Total

# What a ranking's row says, in this order, live or published.
FIELDS = ("deputy_id", "name", "total", "rank", "stars")
# Rows per INSERT statement when a publication is stored: PostgreSQL takes at most 32,767 binds.
_ROWS_PER_INSERT = 4000


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def live_query(year: int, region_code: str, level: str | None) -> Any:
    """Everyone of the region (and level) with their total, zero for a deputy with no entry."""
    total = func.coalesce(Total.total, 0)
    query = (select(DeputyRow.id, DeputyRow.name, DeputyRow.region_code, total.label("total"),
                    func.rank().over(order_by=total.desc()).label("rank"))
             .select_from(DeputyRow)
             .outerjoin(Total, and_(Total.deputy_id == DeputyRow.id, Total.year == year))
             .where(DeputyRow.region_code.startswith(region_code)))
    if level is not None:
        query = query.where(DeputyRow.level == level)
    return query.order_by(total.desc(), DeputyRow.id)


async def live(session: AsyncSession, year: int, region_code: str, level: str | None, grading: domain.Grading,
               *, with_region: bool = False) -> list[dict[str, Any]]:
    """The ranking as it stands, highest first; `with_region` adds each deputy's region_code."""
    rows = (await session.execute(live_query(year, region_code, level))).all()
    out = []
    for r in rows:
        row = {"deputy_id": r.id, "name": r.name, "total": _num(r.total), "rank": r.rank,
               "stars": domain.stars(float(r.total), grading)}
        if with_region:
            row["region_code"] = r.region_code
        out.append(row)
    return out


async def published(session: AsyncSession, year: int, region_code: str, level: str | None) -> Publication | None:
    return await session.get(Publication, (year, region_code, level or ""))


async def published_page(session: AsyncSession, publication_id: str, offset: int, limit: int
                         ) -> list[dict[str, Any]]:
    rows = (await session.scalars(
        select(PublicationRow)
        .where(PublicationRow.publication_id == publication_id, PublicationRow.position >= offset)
        .order_by(PublicationRow.position).limit(limit))).all()
    return [{"deputy_id": r.deputy_id, "name": r.name, "total": _num(r.total), "rank": r.rank, "stars": r.stars}
            for r in rows]


async def store_rows(session: AsyncSession, publication_id: str, offset: int,
                     rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of a publication from `offset` on; a row already there (a replayed page) is kept."""
    values = [{"publication_id": publication_id, "position": offset + i, "deputy_id": r["deputy_id"],
               "name": r.get("name") or "", "total": Decimal(str(r["total"])), "rank": r["rank"],
               "stars": r["stars"]} for i, r in enumerate(rows)]
    for start in range(0, len(values), _ROWS_PER_INSERT):
        await session.execute(insert(PublicationRow).values(values[start:start + _ROWS_PER_INSERT])
                              .on_conflict_do_nothing())


async def store_page(session: AsyncSession, data: Mapping[str, Any]) -> None:
    """A `scoring.ranking.published` event's data, as the stream holds it: a page (`rows` from
    `offset`), or the whole ranking (`ranking`) as it was published before pages."""
    paged = "rows" in data
    rows = data["rows"] if paged else data["ranking"]
    await session.execute(insert(Publication).values(
        year=data["year"], region_code=data["region_code"], level=data.get("level") or "", id=data["id"],
        deputies=data["deputies"] if paged else len(rows), digest=data.get("digest") if paged else None,
        published_by=data["published_by"], published_at=datetime.fromisoformat(data["published_at"]),
    ).on_conflict_do_nothing())
    await store_rows(session, data["id"], int(data["offset"]) if paged else 0, rows)
