"""Elections, their districts (选区), voter registration and reconciliation (HTTP)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import reconciliation_job
from services.identity.api import Strict
from services.identity.models import DistrictRegion, Election, ReconciliationJob, Region, Voter
from services.identity.reconciliation import KINDS
from services.identity.registry import ID_CONTEXT, NAME_CONTEXT
from services.identity.registry_api import Rejection
from shared import cursors, idnumber
from shared.auth import Principal, require_region, require_roles
from shared.errors import conflict, invalid, not_found
from shared.ids import new_id
from shared.pii import blind_index, decrypt, encrypt
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

MAX_VOTERS_PER_BATCH: Final = 10_000
PAGE_SIZE: Final = 50
VOTER_ID_CONTEXT: Final = "identity.voter.id_number"
VOTER_NAME_CONTEXT: Final = "identity.voter.name"

# Who may call: congress staff only; voter rolls carry personal data an operator account has no need for.
NpcStaff = Annotated[Principal, Depends(require_roles("npc_staff"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ElectionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="opaque id chosen by the caller")]
KindQuery = Literal["wrong_district", "duplicate", "missing", "deceased", "underage", "deprived"]


class DistrictIn(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    region_codes: list[str] = Field(min_length=1, max_length=500)


class ElectionIn(Strict):
    region_code: str = Field(min_length=6, max_length=40)
    election_date: date
    districts: list[DistrictIn] = Field(min_length=1, max_length=5000)


class ElectionOut(BaseModel):
    id: str
    region_code: str
    election_date: date
    districts: list[DistrictIn]
    voters: int


class VoterIn(BaseModel):
    id_number: str
    name: str
    district_id: str


class VoterBatchResult(BaseModel):
    accepted: int
    unchanged: int
    rejected: list[Rejection]


class JobStarted(BaseModel):
    job_id: str
    status: str


class Item(BaseModel):
    kind: str
    id_number_masked: str
    name: str
    district_id: str | None
    expected_district_id: str | None


class ReconciliationOut(BaseModel):
    job_id: str
    status: Literal["running", "done", "failed"]
    progress: float
    step: str | None
    error: str | None
    counts: dict[str, int]
    page: int
    page_size: int
    total_items: int
    items: list[Item]


class ReconciliationSummary(BaseModel):
    job_id: str
    status: Literal["running", "done", "failed"]
    progress: float
    started_at: datetime
    finished_at: datetime | None


class ElectionListed(BaseModel):
    id: str
    region_code: str
    election_date: date
    reconciliation: ReconciliationSummary | None = Field(description="the latest reconciliation, null if none")


class ElectionList(BaseModel):
    items: list[ElectionListed]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


def _check_districts(region_code: str, districts: list[DistrictIn]) -> None:
    seen_ids: set[str] = set()
    holder: dict[str, str] = {}
    for i, district in enumerate(districts):
        if district.id in seen_ids:
            raise invalid(f"districts[{i}].id", "选区编号重复")
        seen_ids.add(district.id)
        for j, code in enumerate(district.region_codes):
            field = f"districts[{i}].region_codes[{j}]"
            if not code.startswith(region_code):
                raise invalid(field, "选区的地区必须在本次选举的地区之内")
            if code in holder and holder[code] != district.id:
                raise invalid(field, f"该地区已划入选区 {holder[code]}")
            holder[code] = district.id


async def _election(session: AsyncSession, election_id: str, who: Principal) -> Election:
    election = await session.get(Election, election_id)
    if election is None or not who.can_see(election.region_code):
        raise not_found("选举不存在。")
    return election


async def _districts(session: AsyncSession, election_id: str) -> list[DistrictIn]:
    rows = (await session.execute(
        select(DistrictRegion.district_id, DistrictRegion.region_prefix)
        .where(DistrictRegion.election_id == election_id)
        .order_by(DistrictRegion.district_id, DistrictRegion.region_prefix))).all()
    grouped: dict[str, list[str]] = {}
    for district_id, prefix in rows:
        grouped.setdefault(district_id, []).append(prefix)
    return [DistrictIn(id=d, region_codes=codes) for d, codes in grouped.items()]


@router.put("/elections/{election_id}", response_model=ElectionOut,
            summary="Create or change an election and its districts (选区)",
            responses={201: {"model": ElectionOut, "description": "created"},
                       **problems((409, "voters are registered in a district the change would remove"))})
async def put_election(election_id: ElectionId, body: ElectionIn, who: NpcStaff, runtime: RuntimeDep,
                       response: Response) -> ElectionOut:
    require_region(who, body.region_code)
    _check_districts(body.region_code, body.districts)
    async with runtime.transaction() as session:
        if await session.get(Region, body.region_code) is None:
            raise invalid("region_code", "地区不存在，请先登记该地区")
        election = await session.get(Election, election_id, with_for_update=True)
        if election is None:
            election = Election(id=election_id, region_code=body.region_code, election_date=body.election_date)
            session.add(election)
            await session.flush()
            response.status_code = 201
        else:
            require_region(who, election.region_code)
            kept = {d.id for d in body.districts}
            orphaned = await session.scalar(
                select(func.count()).select_from(Voter)
                .where(Voter.election_id == election_id, Voter.district_id.not_in(kept)))
            if orphaned:
                raise conflict(f"有 {orphaned} 名选民登记在将被删除的选区，请先处理这些登记。")
            election.region_code, election.election_date = body.region_code, body.election_date
            await session.execute(delete(DistrictRegion).where(DistrictRegion.election_id == election_id))
        session.add_all(DistrictRegion(election_id=election_id, district_id=d.id, region_prefix=code)
                        for d in body.districts for code in sorted(set(d.region_codes)))
        voters = await session.scalar(select(func.count()).select_from(Voter).where(Voter.election_id == election_id))
        await runtime.record_audit(session, who, "election.changed", subject_type="election", subject_id=election_id,
                                   region_code=body.region_code,
                                   detail={"election_date": body.election_date.isoformat(),
                                           "districts": sorted(d.id for d in body.districts)})
        districts = [DistrictIn(id=d.id, region_codes=sorted(set(d.region_codes))) for d in body.districts]
    return ElectionOut(id=election_id, region_code=body.region_code, election_date=body.election_date,
                       districts=districts, voters=voters or 0)


@router.get("/elections/{election_id}", response_model=ElectionOut, summary="An election",
            responses=problems(404))
async def get_election(election_id: ElectionId, who: NpcStaff, runtime: RuntimeDep) -> ElectionOut:
    async with runtime.database.sessions() as session:
        election = await _election(session, election_id, who)
        districts = await _districts(session, election_id)
        voters = await session.scalar(select(func.count()).select_from(Voter).where(Voter.election_id == election_id))
    return ElectionOut(id=election.id, region_code=election.region_code, election_date=election.election_date,
                       districts=districts, voters=voters or 0)


MAX_LIST: Final = 100
RegionQuery = Annotated[str | None, Query(pattern=r"^[0-9A-Za-z-]{2,40}$", description=(
    "elections whose region code starts with it; inside the caller's region; without it, the caller's region"))]


@router.get("/elections", response_model=ElectionList, summary="The elections of a region, latest first",
            description="Keyset paged by election day (latest first) and id; each with its latest reconciliation.",
            responses=problems((403, "the region is outside the caller's")))
async def list_elections(who: NpcStaff, runtime: RuntimeDep, region_code: RegionQuery = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
                         after: Annotated[str | None, Query(max_length=cursors.MAX_CURSOR_CHARS)] = None,
                         ) -> ElectionList:
    # Staff pick the election to reconcile from this list: without it they would have to know its id.
    region = region_code if region_code is not None else who.region
    require_region(who, region)
    query = select(Election).where(Election.region_code.startswith(region, autoescape=True))
    if after is not None:
        try:
            day_text, last_id = cursors.decode(after, 2)
            day = date.fromisoformat(day_text)
        except (cursors.BadCursor, ValueError):
            raise invalid("after", "翻页参数无效，请从第一页重新开始。") from None
        query = query.where((Election.election_date < day)
                            | ((Election.election_date == day) & (Election.id > last_id)))
    query = query.order_by(Election.election_date.desc(), Election.id).limit(limit + 1)
    async with runtime.database.sessions() as session:
        found = list((await session.scalars(query)).all())
        page = found[:limit]
        jobs = {job.election_id: job for job in (await session.scalars(
            select(ReconciliationJob).where(ReconciliationJob.election_id.in_([e.id for e in page]))
            .ext(distinct_on(ReconciliationJob.election_id))
            .order_by(ReconciliationJob.election_id, ReconciliationJob.created_at.desc()))).all()} if page else {}
    items = [ElectionListed(id=e.id, region_code=e.region_code, election_date=e.election_date,
                            reconciliation=_summary(jobs[e.id]) if e.id in jobs else None) for e in page]
    last = page[-1] if len(found) > limit else None
    return ElectionList(items=items, next=cursors.encode(last.election_date.isoformat(), last.id) if last else None)


def _summary(job: ReconciliationJob) -> ReconciliationSummary:
    status: Literal["running", "done", "failed"] = "running" if job.status == "pending" else job.status  # type: ignore[assignment]
    return ReconciliationSummary(job_id=job.id, status=status, progress=round(job.progress, 3),
                                 started_at=job.created_at, finished_at=job.finished_at)


def _voter_error(obj: Any, districts: set[str]) -> tuple[str, str, str] | str:
    """(ID number, name, district) of a valid registration, else the reason it is refused."""
    if not isinstance(obj, dict):
        return "应为对象"
    raw_id, name, district_id = obj.get("id_number"), obj.get("name"), obj.get("district_id")
    if not isinstance(raw_id, str):
        return "id_number: 缺少或不是文本"
    try:
        id_number = idnumber.normalize(raw_id)
    except idnumber.InvalidIdNumber as exc:
        return f"id_number: {exc.message}"
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        return "name: 缺少或超过100个字符"
    if not isinstance(district_id, str) or district_id not in districts:
        return "district_id: 不是本次选举的选区"
    return id_number, name.strip(), district_id


_INSERT_VOTERS = """
INSERT INTO identity.voters (election_id, district_id, person_index, id_number_encrypted, name_encrypted, birth_date)
SELECT $1, * FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::date[])
ON CONFLICT (election_id, person_index, district_id) DO NOTHING
RETURNING person_index, district_id
"""


@router.post("/elections/{election_id}/voters", response_model=VoterBatchResult, responses=problems(404),
             summary="Register voters in a batch; a bad item is rejected alone")
async def post_voters(election_id: ElectionId, who: NpcStaff, runtime: RuntimeDep,
                      body: Annotated[list[Any], Body(max_length=MAX_VOTERS_PER_BATCH,
                                                      description="[{id_number, name, district_id}]")],
                      ) -> VoterBatchResult:
    keyring = runtime.keyring
    rejected: list[Rejection] = []
    async with runtime.transaction() as session:
        election = await _election(session, election_id, who)
        districts = {d.id for d in await _districts(session, election_id)}
        batch: dict[tuple[bytes, str], int] = {}
        columns: tuple[list[Any], ...] = ([], [], [], [], [])
        for index, obj in enumerate(body):
            checked = _voter_error(obj, districts)
            if isinstance(checked, str):
                rejected.append(Rejection(index=index, error=checked))
                continue
            id_number, name, district_id = checked
            person = blind_index(keyring, id_number, kind="id_number")
            if (person, district_id) in batch:
                rejected.append(Rejection(index=index, error="该选民已在本选区登记（本批重复）"))
                continue
            batch[(person, district_id)] = index
            for column, value in zip(columns, (
                    district_id, person, encrypt(keyring, id_number, context=VOTER_ID_CONTEXT),
                    encrypt(keyring, name, context=VOTER_NAME_CONTEXT), idnumber.birth_date(id_number)),
                    strict=True):
                column.append(value)
        conn = await session.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        inserted = await driver.fetch(_INSERT_VOTERS, election_id, *columns) if batch else []
        fresh = {(bytes(r["person_index"]), r["district_id"]) for r in inserted}
        for key, index in batch.items():
            if key not in fresh:
                rejected.append(Rejection(index=index, error="该选民已在本选区登记"))
        await runtime.record_audit(session, who, "voters.registered", subject_type="election",
                                   subject_id=election_id, region_code=election.region_code,
                                   detail={"accepted": len(fresh), "rejected": len(rejected)})
    rejected.sort(key=lambda r: r.index)
    return VoterBatchResult(accepted=len(fresh), unchanged=0, rejected=rejected)


@router.post("/elections/{election_id}/reconciliation", status_code=202, response_model=JobStarted,
             responses=problems(404),
             summary="Start reconciling the roll against the registries")
async def start_reconciliation(election_id: ElectionId, who: NpcStaff, runtime: RuntimeDep) -> JobStarted:
    async with runtime.transaction() as session:
        await session.get(Election, election_id, with_for_update=True)
        election = await _election(session, election_id, who)
        active = await session.scalar(
            select(ReconciliationJob).where(ReconciliationJob.election_id == election_id,
                                            ReconciliationJob.status.in_(("pending", "running"))))
        if active is not None:
            return JobStarted(job_id=active.id, status="running")
        job = ReconciliationJob(id=new_id(), election_id=election_id, status="pending", progress=0.0,
                                counts={}, attempts=0)
        session.add(job)
        await runtime.record_audit(session, who, "reconciliation.started", subject_type="election",
                                   subject_id=election_id, region_code=election.region_code,
                                   detail={"job_id": job.id})
    reconciliation_job.wake(runtime)
    return JobStarted(job_id=job.id, status="running")


# The page of findings is chosen first, then each of its people looked up: looking up every finding
# of a county's run (a hundred thousand) before sorting took a second per page shown.
_PERSONAL = text("""
SELECT i.kind, i.district_id, i.expected_district_id, p.id_number_encrypted, p.name_encrypted, p.context
FROM (
    SELECT * FROM identity.reconciliation_items
    WHERE job_id = :job_id AND (CAST(:kind AS text) IS NULL OR kind = :kind)
    ORDER BY array_position(CAST(:order AS text[]), kind), district_id NULLS LAST, expected_district_id,
             person_index
    LIMIT :limit OFFSET :offset
) i
CROSS JOIN LATERAL (
    SELECT v.id_number_encrypted, v.name_encrypted, 'voter' AS context FROM identity.voters v
    WHERE v.election_id = :election_id AND v.person_index = i.person_index
      AND (i.district_id IS NULL OR v.district_id = i.district_id)
    UNION ALL
    SELECT r.id_number_encrypted, r.name_encrypted, 'registry' FROM identity.registry_records r
    WHERE r.person_index = i.person_index AND i.district_id IS NULL
    ORDER BY 3 DESC LIMIT 1
) p
ORDER BY array_position(CAST(:order AS text[]), i.kind), i.district_id NULLS LAST, i.expected_district_id,
         i.person_index
""")


@router.get("/elections/{election_id}/reconciliation", response_model=ReconciliationOut,
            responses=problems((404, "unknown election, or never reconciled")),
            summary="Progress and findings of the latest reconciliation, paged, with masked ID numbers")
async def get_reconciliation(election_id: ElectionId, who: NpcStaff, runtime: RuntimeDep,
                             kind: Annotated[KindQuery | None, Query()] = None,
                             page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> ReconciliationOut:
    async with runtime.transaction() as session:
        election = await _election(session, election_id, who)
        job = await session.scalar(
            select(ReconciliationJob).where(ReconciliationJob.election_id == election_id)
            .order_by(ReconciliationJob.created_at.desc()).limit(1))
        if job is None:
            raise not_found("该选举尚未核对，请先发起核对。")
        rows: list[Any] = []
        if job.status == "done":
            rows = list((await session.execute(_PERSONAL, {
                "election_id": election_id, "job_id": job.id, "kind": kind, "order": list(KINDS),
                "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE})).all())
        if rows:
            # Names are shown in clear (ID numbers masked): each page shown is a disclosure on record.
            await runtime.record_audit(session, who, "reconciliation.items_shown", subject_type="election",
                                       subject_id=election_id, region_code=election.region_code,
                                       detail={"job_id": job.id, "kind": kind, "page": page, "items": len(rows)})
    counts = {k: int(job.counts.get(k, 0)) for k in KINDS} if job.status == "done" else dict.fromkeys(KINDS, 0)
    total = counts[kind] if kind else sum(counts.values())
    items = [_item(runtime, row) for row in rows]
    status: Literal["running", "done", "failed"] = "running" if job.status == "pending" else job.status  # type: ignore[assignment]
    return ReconciliationOut(job_id=job.id, status=status, progress=round(job.progress, 3), step=job.step,
                             error="核对失败，请重新发起；如仍失败请联系运维。" if job.status == "failed" else None,
                             counts=counts, page=page, page_size=PAGE_SIZE, total_items=total, items=items)


def _item(runtime: Runtime, row: Any) -> Item:
    id_context, name_context = ((VOTER_ID_CONTEXT, VOTER_NAME_CONTEXT) if row.context == "voter"
                                else (ID_CONTEXT, NAME_CONTEXT))
    id_number = decrypt(runtime.keyring, row.id_number_encrypted, context=id_context)
    return Item(kind=row.kind, id_number_masked=idnumber.mask(id_number),
                name=decrypt(runtime.keyring, row.name_encrypted, context=name_context),
                district_id=row.district_id, expected_district_id=row.expected_district_id)
