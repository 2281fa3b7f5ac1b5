"""The registries merged per person, on real PostgreSQL: the quick way a first load takes for people
seen for the first time must give the rows merging every person's records from scratch gives.

Each batch is stored as the feed and the loads store it (`store_rows`); then every person of the
module is merged again from the records table alone (`MERGE`), and the two must not differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from conftest import Servers
from identityutil import id_number, identity_service
from sqlalchemy import text

from services.identity.registry import RegistryRecord, to_row
from services.identity.registry_store import AFFECTED, CREATE_AFFECTED, MERGE, store_rows
from shared.calendar import SHANGHAI
from shared.pii import blind_index
from shared.service import Runtime

REGION = "320811"  # regions of this module: 3208xx, used by no other test module
OTHER = "320812001"
BORN = date(1970, 6, 1)


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with identity_service(servers, tmp_path_factory.mktemp("merge-home")) as pair:
        yield pair


def row(runtime: Runtime, source: str, record_id: str, seq: int, *, day: int, hukou: str = f"{REGION}001",
        residence: str = f"{REGION}001", status: str = "active", rights: bool = True,
        certificate: bool | None = None, born: date = BORN) -> tuple[Any, ...]:
    return to_row(runtime.keyring, RegistryRecord(
        source=source, record_id=record_id, id_number=id_number(REGION, born, seq), name=f"合并{seq}", birth_date=born,
        hukou_region_code=hukou, residence_region_code=residence, status=status, political_rights=rights,
        residence_certificate=certificate, updated_at=datetime(2026, 3, day, 9, tzinfo=SHANGHAI)))


async def persons(runtime: Runtime) -> dict[bytes, dict[str, Any]]:
    async with runtime.transaction() as session:
        result = await session.execute(text(
            "SELECT * FROM identity.registry_persons WHERE person_index IN "
            "(SELECT person_index FROM identity.registry_records WHERE record_id LIKE 'MG-%')"))
        return {bytes(r["person_index"]): {k: v for k, v in r.items() if k != "person_index"}
                for r in result.mappings()}


async def merged_from_scratch(runtime: Runtime) -> dict[bytes, dict[str, Any]]:
    """The module's persons merged again from their records, in a transaction rolled back after."""
    async with runtime.transaction() as session:
        await session.execute(text(CREATE_AFFECTED))
        await session.execute(text(
            f"INSERT INTO {AFFECTED} (person_index) SELECT DISTINCT person_index FROM identity.registry_records "
            "WHERE record_id LIKE 'MG-%'"))
        await session.execute(text(MERGE))
        result = await session.execute(text(
            "SELECT * FROM identity.registry_persons WHERE person_index IN "
            "(SELECT person_index FROM identity.registry_records WHERE record_id LIKE 'MG-%')"))
        again = {bytes(r["person_index"]): {k: v for k, v in r.items() if k != "person_index"}
                 for r in result.mappings()}
        await session.rollback()
    return again


async def store(runtime: Runtime, rows: list[tuple[Any, ...]]) -> int:
    async with runtime.transaction() as session:
        return await store_rows(session, rows)


def index(runtime: Runtime, seq: int, born: date = BORN) -> bytes:
    return blind_index(runtime.keyring, id_number(REGION, born, seq), kind="id_number")


async def test_people_seen_first_are_merged_as_a_merge_from_scratch_would(
    identity: tuple[httpx.AsyncClient, Runtime],
) -> None:
    _, runtime = identity
    # 1. Everyone new: one record; a population and a migrant record together; two population
    # records of one person, the later one moved and deceased; a migrant alone; social security alone.
    assert await store(runtime, [
        row(runtime, "population", "MG-A", 1, day=1),
        row(runtime, "population", "MG-B", 2, day=1, rights=False),
        row(runtime, "migrant", "MG-B-m", 2, day=2, residence=OTHER, certificate=True),
        row(runtime, "population", "MG-C1", 3, day=1, hukou=f"{REGION}001"),
        row(runtime, "population", "MG-C2", 3, day=4, hukou=f"{REGION}002", status="deceased"),
        row(runtime, "migrant", "MG-D", 4, day=1, residence=OTHER, certificate=False),
        row(runtime, "social_security", "MG-E", 5, day=1),
    ]) == 7
    first = await persons(runtime)
    assert first == await merged_from_scratch(runtime)
    assert first[index(runtime, 2)]["certified_residence"] == OTHER
    assert first[index(runtime, 2)]["political_rights"] is False
    assert (first[index(runtime, 3)]["hukou_region_code"], first[index(runtime, 3)]["status"]) == (
        f"{REGION}002", "deceased")
    assert first[index(runtime, 3)]["deceased"] is True
    assert (first[index(runtime, 4)]["in_population"], first[index(runtime, 4)]["certified_residence"]) == (
        False, None)
    assert first[index(runtime, 5)]["in_population"] is False

    # 2. Known and new people in one batch: A gains a record, B's population record is replaced by
    # a newer one, F is new.
    assert await store(runtime, [
        row(runtime, "social_security", "MG-A-s", 1, day=5),
        row(runtime, "population", "MG-B", 2, day=6, status="emigrated", hukou=f"{REGION}003"),
        row(runtime, "population", "MG-F", 6, day=5),
    ]) == 3
    second = await persons(runtime)
    assert second == await merged_from_scratch(runtime)
    assert second[index(runtime, 2)]["hukou_region_code"] == f"{REGION}003"
    assert len(second) == 6

    # 3. C's later record corrected to another ID number, a person seen for the first time: C is
    # merged from its remaining record, G from the moved one.
    born = date(1971, 7, 2)
    assert await store(runtime, [row(runtime, "population", "MG-C2", 7, day=8, born=born)]) == 1
    third = await persons(runtime)
    assert third == await merged_from_scratch(runtime)
    assert (third[index(runtime, 3)]["hukou_region_code"], third[index(runtime, 3)]["deceased"]) == (
        f"{REGION}001", False)
    assert third[index(runtime, 7, born)]["birth_date"] == born
    assert len(third) == 7

    # 4. The same batch again changes nothing.
    assert await store(runtime, [row(runtime, "population", "MG-C2", 7, day=8, born=born)]) == 0
    assert await persons(runtime) == third


async def test_two_batches_writing_one_known_person_at_once_both_count(
    identity: tuple[httpx.AsyncClient, Runtime],
) -> None:
    # A population feed and a migrant load running side by side, each with a record of one person.
    _, runtime = identity
    assert await store(runtime, [row(runtime, "population", "MG-H", 8, day=1)]) == 1
    async with runtime.transaction() as first:
        assert await store_rows(first, [row(runtime, "migrant", "MG-H-m", 8, day=2, residence=OTHER,
                                            certificate=True)]) == 1
        second = asyncio.create_task(store(runtime, [row(runtime, "population", "MG-H", 8, day=3,
                                                         hukou=f"{REGION}004")]))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second batch should wait for the first, which holds the person"
    assert await second == 1
    merged = await persons(runtime)
    assert merged == await merged_from_scratch(runtime)
    assert (merged[index(runtime, 8)]["certified_residence"], merged[index(runtime, 8)]["hukou_region_code"]) == (
        OTHER, f"{REGION}004")
