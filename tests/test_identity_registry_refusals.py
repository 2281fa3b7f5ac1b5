"""Registry records that must be refused one by one, on real NATS JetStream and PostgreSQL.

A record the database cannot take (a placeholder date, a value a trigger refuses) must not hold up
the records sent with it; a record sent as one registry must not be stored as another; and what a
refused record leaves behind in the dead letters must not name the person.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
import nats
import pytest
from busutil import eventually, stream_messages
from conftest import Servers
from identityutil import bearer, id_number, identity_service, registry_record, with_wrong_check
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from minyi.dead_letters import parse_letter
from services.identity.registry import RegistryRecord, to_row
from services.identity.registry_store import store_rows_apart
from shared.calendar import SHANGHAI
from shared.contracts import REGISTRY_STREAM
from shared.pii import blind_index
from shared.service import Runtime

REGION = "320311"  # regions of this module: 3203xx, used by no other test module
INTEGRATION = bearer("integration")
TOO_EARLY = "updated_at: 不能早于1900年（空日期请不要填写占位值）"
REFUSED_BY_TRIGGER = "数据库无法保存该记录（P0001）"


def record(record_id: str, seq: int, **over: Any) -> dict[str, Any]:
    return registry_record(REGION, record_id, seq, born=date(1981, 2, 3), called="拒收", **over)


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with identity_service(servers, tmp_path_factory.mktemp("refusals-home")) as pair:
        yield pair


async def stored_ids(servers: Servers, pattern: str) -> dict[str, str]:
    """record_id → source of the stored records whose id matches the LIKE pattern."""
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(
                "SELECT record_id, source FROM identity.registry_records WHERE record_id LIKE :p"), {"p": pattern})
            return {r.record_id: r.source for r in result}
    finally:
        await engine.dispose()


async def publish_all(servers: Servers, messages: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Publish (subject, record) pairs; the REGISTRY sequence of each, by record_id."""
    nc = await nats.connect(servers.nats_url)
    try:
        js = nc.jetstream()
        seqs: dict[str, int] = {}
        for subject, body in messages:
            ack = await js.publish(subject, json.dumps(body, ensure_ascii=False).encode())
            seqs[body["record_id"]] = ack.seq
        return seqs
    finally:
        await nc.close()


async def dead_letters_of(servers: Servers, seqs: set[int]) -> dict[int, tuple[dict[str, str], bytes]]:
    """The registry dead letters of these REGISTRY sequences: seq → (headers, body)."""
    found: dict[int, tuple[dict[str, str], bytes]] = {}
    for subject, headers, body in await stream_messages(servers.nats_url, "DEADLETTER_IDENTITY"):
        if subject.startswith("deadletter.identity.registry.") and json.loads(body)["stream_seq"] in seqs:
            found[json.loads(body)["stream_seq"]] = (headers, body)
    return found


async def feed_drained(runtime: Runtime) -> bool:
    js = runtime.broker.config.connection_state.stream
    state = await js.consumer_info(REGISTRY_STREAM.name, "identity-registry")
    return state.num_pending == 0 and state.num_ack_pending == 0


# --- values the database cannot store -----------------------------------------------------------------


async def test_http_batch_refuses_an_empty_date_placeholder_alone(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    batch = [record("H0-1", 1), record("H0-2", 2, updated_at="0001-01-01T00:00:00"), record("H0-3", 3)]
    resp = await client.post("/v1/registry/population/records", json=batch, headers=INTEGRATION)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": 2, "unchanged": 0, "rejected": [{"index": 1, "error": TOO_EARLY}],
                           "rejected_total": 1}
    assert await stored_ids(servers, "H0-%") == {"H0-1": "population", "H0-3": "population"}


async def test_feed_dead_letters_an_empty_date_placeholder_and_stores_the_rest_of_its_batch(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    good = [record(f"F0-{i}", 100 + i) for i in range(30)]
    placeholder = record("F0-empty", 140, updated_at="0001-01-01T00:00:00")
    messages = [("registry.population.records", body) for body in [*good[:15], placeholder, *good[15:]]]
    seqs = await publish_all(servers, messages)

    async def all_good_stored() -> bool:
        return len(await stored_ids(servers, "F0-%")) == 30

    await eventually(all_good_stored, timeout=20, what="the 30 good records of the batch stored")

    async def placeholder_parked() -> bool:
        return seqs["F0-empty"] in await dead_letters_of(servers, {seqs["F0-empty"]})

    await eventually(placeholder_parked, timeout=10, what="the placeholder record dead-lettered")
    await eventually(lambda: feed_drained(runtime), timeout=10, what="nothing left pending or unacknowledged")
    (_, body) = (await dead_letters_of(servers, {seqs["F0-empty"]}))[seqs["F0-empty"]]
    assert json.loads(body)["error"] == TOO_EARLY
    assert "F0-empty" not in await stored_ids(servers, "F0-%")


@pytest.fixture
async def refusing_trigger(servers: Servers) -> AsyncIterator[None]:
    """PostgreSQL refuses records whose id starts with POISON-, as it would a value it cannot hold."""
    engine = create_async_engine(servers.database_url)
    async with engine.begin() as conn:
        await conn.execute(text("""
            CREATE OR REPLACE FUNCTION identity.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.record_id LIKE 'POISON-%' THEN RAISE EXCEPTION 'refused'; END IF;
                RETURN NEW;
            END $$"""))
        await conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON identity.registry_records "
                                "FOR EACH ROW EXECUTE FUNCTION identity.refuse_poison()"))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_poison ON identity.registry_records"))
            await conn.execute(text("DROP FUNCTION identity.refuse_poison()"))
        await engine.dispose()


@pytest.mark.usefixtures("refusing_trigger")
async def test_feed_sets_aside_only_the_records_the_database_refuses(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    bodies = [record(f"T1-{i}", 200 + i) for i in range(40)]
    bodies.insert(7, record("POISON-a", 250))
    bodies.insert(31, record("POISON-b", 251))
    seqs = await publish_all(servers, [("registry.population.records", b) for b in bodies])
    poisoned = {seqs["POISON-a"], seqs["POISON-b"]}

    async def all_good_stored() -> bool:
        return len(await stored_ids(servers, "T1-%")) == 40

    await eventually(all_good_stored, timeout=20, what="the 40 storable records stored")

    async def both_parked() -> bool:
        return set(await dead_letters_of(servers, poisoned)) == poisoned

    await eventually(both_parked, timeout=10, what="both refused records dead-lettered")
    await eventually(lambda: feed_drained(runtime), timeout=10, what="nothing left pending or unacknowledged")
    letters = await dead_letters_of(servers, poisoned)
    assert sorted(json.loads(body)["error"] for _, body in letters.values()) == [REFUSED_BY_TRIGGER] * 2
    assert await stored_ids(servers, "POISON-%") == {}


@pytest.mark.usefixtures("refusing_trigger")
async def test_http_batch_rejects_only_the_records_the_database_refuses(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    batch = [record("T2-1", 301), record("POISON-c", 302), record("T2-3", 303),
             # Two versions of one refused record: both are rejected, neither counted as unchanged.
             record("POISON-d", 304), record("POISON-d", 304, updated_at="2026-10-02T08:00:00+08:00"),
             record("T2-5", 305, updated_at="0001-01-01T00:00:00")]
    resp = await client.post("/v1/registry/population/records", json=batch, headers=INTEGRATION)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": 2, "unchanged": 0, "rejected_total": 4, "rejected": [
        {"index": 1, "error": REFUSED_BY_TRIGGER}, {"index": 3, "error": REFUSED_BY_TRIGGER},
        {"index": 4, "error": REFUSED_BY_TRIGGER}, {"index": 5, "error": TOO_EARLY}]}
    assert await stored_ids(servers, "T2-%") == {"T2-1": "population", "T2-3": "population"}


async def test_a_value_the_driver_cannot_encode_is_set_aside_and_the_transaction_goes_on(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    # Past the parser (built by hand): a year-1 time overflows asyncpg's encoder on its way to UTC.
    _, runtime = identity

    def row(record_id: str, seq: int, updated_at: datetime) -> tuple[Any, ...]:
        return to_row(runtime.keyring, RegistryRecord(
            source="population", record_id=record_id, id_number=id_number(REGION, date(1982, 1, 1), seq),
            name="编码", birth_date=date(1982, 1, 1), hukou_region_code=REGION, residence_region_code=REGION,
            status="active", political_rights=True, residence_certificate=None, updated_at=updated_at))

    rows = [row("E1-1", 401, datetime(2026, 1, 1, tzinfo=SHANGHAI)),
            row("E1-2", 402, datetime(1, 1, 1, tzinfo=SHANGHAI)),
            row("E1-3", 403, datetime(2026, 1, 2, tzinfo=SHANGHAI))]
    async with runtime.transaction() as session:
        stored = await store_rows_apart(session, rows)
    assert (stored.changed, stored.refused) == (2, [(1, "OverflowError")])
    assert await stored_ids(servers, "E1-%") == {"E1-1": "population", "E1-3": "population"}


# --- the source is where a record was sent --------------------------------------------------------------


async def test_feed_refuses_a_record_whose_body_names_another_registry(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    seqs = await publish_all(servers, [
        ("registry.migrant.records", record("S1-claims-population", 501, source="population")),
        ("registry.population.records", record("S1-says-population", 502, source="population")),
        ("registry.migrant.records", record("S1-plain", 503)),
    ])

    async def two_stored() -> bool:
        return len(await stored_ids(servers, "S1-%")) == 2

    await eventually(two_stored, timeout=20, what="the two consistent records stored")
    seq = seqs["S1-claims-population"]

    async def parked() -> bool:
        return seq in await dead_letters_of(servers, {seq})

    await eventually(parked, timeout=10, what="the record claiming another registry dead-lettered")
    assert await stored_ids(servers, "S1-%") == {"S1-says-population": "population", "S1-plain": "migrant"}
    (_, body) = (await dead_letters_of(servers, {seq}))[seq]
    assert json.loads(body)["error"] == "source: 记录声明的数据来源 population 与发送的数据来源 migrant 不一致"
    await eventually(lambda: feed_drained(runtime), timeout=10, what="nothing left pending or unacknowledged")


async def test_an_integration_writes_only_the_sources_its_token_names(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    migrant_only = bearer("integration", sources=["migrant"], sub="province-migrant")
    refused = await client.post("/v1/registry/population/records", json=[record("S2-1", 601)], headers=migrant_only)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "该集成账号无权写入数据来源 population（登录凭证的 sources 中没有它）。"
    allowed = await client.post("/v1/registry/migrant/records", json=[record("S2-2", 602)], headers=migrant_only)
    assert allowed.status_code == 200 and allowed.json()["accepted"] == 1
    no_sources = bearer("integration", sources=[], sub="province-unnamed")
    for source in ("population", "social_security", "migrant"):
        resp = await client.post(f"/v1/registry/{source}/records", json=[record("S2-3", 603)], headers=no_sources)
        assert resp.status_code == 403, resp.text
    # The path decides too: a record sent as migrant that calls itself population is refused alone.
    mixed = await client.post("/v1/registry/migrant/records", headers=migrant_only,
                              json=[record("S2-4", 604, source="population"), record("S2-5", 605)])
    assert mixed.json()["rejected"] == [
        {"index": 0, "error": "source: 记录声明的数据来源 population 与发送的数据来源 migrant 不一致"}]
    assert await stored_ids(servers, "S2-%") == {"S2-2": "migrant", "S2-5": "migrant"}


# --- what a refused record leaves behind --------------------------------------------------------------------


async def test_a_dead_letter_keeps_a_keyed_reference_not_the_record(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    person = id_number(REGION, date(1979, 6, 5), 701)
    bad = record("D1-wrong-check", 701, id_number=with_wrong_check(person), name="司马迁")
    unknown = record("D1-unknown-source", 702, name="班固")
    seqs = await publish_all(servers, [("registry.population.records", bad), ("registry.tax.records", unknown)])
    wanted = set(seqs.values())

    async def parked() -> bool:
        return set(await dead_letters_of(servers, wanted)) == wanted

    await eventually(parked, timeout=20, what="both records dead-lettered")
    letters = await dead_letters_of(servers, wanted)
    for record_id, seq in seqs.items():
        headers, body = letters[seq]
        for personal in (person, with_wrong_check(person), person[6:14], "司马迁", "班固", record_id):
            assert personal.encode() not in body and personal not in json.dumps(headers, ensure_ascii=False)
        letter = parse_letter("identity", 1, body)
        assert letter.original_headers == {}
        reference = json.loads(letter.original)
        assert reference["stream_seq"] == seq and datetime.fromisoformat(reference["received_at"])
    bad_ref = json.loads(parse_letter("identity", 1, letters[seqs["D1-wrong-check"]][1]).original)
    assert bad_ref["source"] == "population"
    assert bad_ref["person_ref"] == blind_index(runtime.keyring, with_wrong_check(person), kind="id_number").hex()
    unknown_ref = json.loads(parse_letter("identity", 1, letters[seqs["D1-unknown-source"]][1]).original)
    assert unknown_ref["source"] == "tax"
    assert unknown_ref["person_ref"] == blind_index(runtime.keyring, unknown["id_number"], kind="id_number").hex()
    assert json.loads(letters[seqs["D1-unknown-source"]][1])["error"] == "未知的数据来源：tax"


async def test_the_registry_stream_keeps_records_for_a_week(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    _, runtime = identity
    js = runtime.broker.config.connection_state.stream
    info = await js.stream_info(REGISTRY_STREAM.name)
    assert info.config.max_age == 7 * 24 * 3600
