"""Registry feeds on real NATS JetStream and PostgreSQL: the NATS consumer and the bulk HTTP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import date
from typing import Any
from urllib.parse import unquote

import httpx
import nats
import nats.js.errors
import pytest
from busutil import eventually, stream_messages
from conftest import Servers
from identityutil import bearer, id_number, identity_service, registry_record, with_wrong_check
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.identity.handlers import FEED_DURABLE, consume_registry
from shared.contracts import REGISTRY_STREAM
from shared.pii import blind_index
from shared.service import Runtime

INTEGRATION = bearer("integration")
REGION = "320201"  # regions of this module: 3202xx, used by no other test module


def record(record_id: str, seq: int, **over: Any) -> dict[str, Any]:
    return registry_record(REGION, record_id, seq, born=date(1980, 1, 1), called="测试", **over)


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with identity_service(servers, tmp_path_factory.mktemp("registry-home")) as pair:
        yield pair


async def rows(servers: Servers, where: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(f"SELECT * FROM identity.registry_records WHERE {where}"), params)
            return [dict(r) for r in result.mappings()]
    finally:
        await engine.dispose()


async def test_bulk_json_array_counts_accepted_unchanged_and_rejected(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    batch = [
        record("A-1", 1),
        record("A-2", 2, id_number=with_wrong_check(id_number(REGION, date(1980, 1, 1), 2))),
        record("A-3", 3, status="missing"),
        record("A-4", 4),
        "not a record",
    ]
    resp = await client.post("/v1/registry/population/records", json=batch, headers=INTEGRATION)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["accepted"], out["unchanged"]) == (2, 0)
    assert out["rejected"] == [
        {"index": 1, "error": "id_number: 校验位不正确"},
        {"index": 2, "error": "status: 应为 active、deceased 或 emigrated"},
        {"index": 4, "error": "记录应为 JSON 对象"},
    ]
    again = await client.post("/v1/registry/population/records", json=batch, headers=INTEGRATION)
    assert (again.json()["accepted"], again.json()["unchanged"]) == (0, 2)
    assert len(await rows(servers, "record_id IN ('A-1', 'A-2', 'A-3', 'A-4')")) == 2


async def test_later_updated_at_wins_whatever_the_arrival_order(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    newer = record("B-1", 11, hukou_region_code=f"{REGION}002", updated_at="2026-10-02T08:00:00+08:00")
    older = record("B-1", 11, hukou_region_code=f"{REGION}009", updated_at="2026-10-01T08:00:00+08:00")
    first = await client.post("/v1/registry/population/records", json=[newer], headers=INTEGRATION)
    assert first.json()["accepted"] == 1
    late = await client.post("/v1/registry/population/records", json=[older], headers=INTEGRATION)
    assert (late.json()["accepted"], late.json()["unchanged"]) == (0, 1)
    # Within one batch too: the later version is the one stored, the other counts as unchanged.
    both = await client.post("/v1/registry/population/records", headers=INTEGRATION, json=[
        record("B-2", 12, hukou_region_code=f"{REGION}003", updated_at="2026-10-03T00:00:00"),
        record("B-2", 12, hukou_region_code=f"{REGION}004", updated_at="2026-10-02T00:00:00"),
    ])
    assert (both.json()["accepted"], both.json()["unchanged"]) == (1, 1)
    stored = {r["record_id"]: r["hukou_region_code"] for r in await rows(servers, "record_id LIKE 'B-%'")}
    assert stored == {"B-1": f"{REGION}002", "B-2": f"{REGION}003"}


async def test_ndjson_streams_in_chunks_and_rejects_a_bad_line_alone(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    count = 4500  # more than two internal chunks

    async def body() -> AsyncIterator[bytes]:
        for i in range(count):
            line = json.dumps(record(f"N-{i}", 100 + i, name=f"流{i}"), ensure_ascii=False) + "\n"
            if i == 3000:
                line = '{"record_id": "N-broken", \n'
            yield line.encode()

    resp = await client.post("/v1/registry/social_security/records", content=body(),
                             headers={**INTEGRATION, "content-type": "application/x-ndjson"})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["accepted"] == count - 1 and out["unchanged"] == 0
    assert [r["index"] for r in out["rejected"]] == [3000]
    assert len(await rows(servers, "source = 'social_security' AND record_id LIKE 'N-%'")) == count - 1


async def test_a_body_that_breaks_off_leaves_nothing_behind(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    good = json.dumps([record(f"X-{i}", 500 + i) for i in range(2500)], ensure_ascii=False)
    resp = await client.post("/v1/registry/population/records", content=good[:-300].encode(),
                             headers={**INTEGRATION, "content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert "均未保存" in resp.json()["detail"]
    assert await rows(servers, "record_id LIKE 'X-%'") == []


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/csv", b"record_id,id_number\n", 415),
        ("application/json", b'{"record_id": "x"}', 422),
        ("application/json", b"", 422),
    ],
)
async def test_bodies_that_are_not_a_batch_are_refused(
    identity: tuple[httpx.AsyncClient, Runtime], content_type: str, body: bytes, status: int
) -> None:
    client, _ = identity
    resp = await client.post("/v1/registry/population/records", content=body,
                             headers={**INTEGRATION, "content-type": content_type})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_only_integrations_load_records(identity: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = identity
    resp = await client.post("/v1/registry/population/records", json=[record("R-1", 9)],
                             headers=bearer("station_staff"))
    assert resp.status_code == 403
    unknown = await client.post("/v1/registry/tax/records", json=[], headers=INTEGRATION)
    assert unknown.status_code == 422


async def test_nats_feed_stores_records_dead_letters_bad_ones_and_ignores_replays(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    good = [record(f"F-{i}", 700 + i) for i in range(50)]
    envelope = {"specversion": "1.0", "id": "ev-1", "source": "province", "type": "registry.record",
                "data": record("F-env", 760, status="deceased")}
    bad = record("F-bad", 761, id_number=with_wrong_check(id_number(REGION, date(1980, 1, 1), 761)))
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()

    async def send_all() -> None:
        for body in good:
            await js.publish("registry.population.records", json.dumps(body).encode())
        await js.publish("registry.migrant.records", json.dumps(envelope).encode())
        await js.publish("registry.population.records", json.dumps(bad).encode())
        await js.publish("registry.population.records", b"{not json")

    await send_all()

    async def stored() -> bool:
        return len(await rows(servers, "record_id LIKE 'F-%'")) == 51

    await eventually(stored, timeout=20, what="51 feed records stored")

    async def dead_letters() -> list[tuple[str, dict[str, str], bytes]]:
        msgs = await stream_messages(servers.nats_url, "DEADLETTER_IDENTITY")
        return [m for m in msgs if m[0] == "deadletter.identity.registry.population.records"]

    async def two_dead() -> bool:
        return len(await dead_letters()) >= 2

    await eventually(two_dead, timeout=10, what="two dead-lettered feed messages")
    reasons = sorted(json.loads(body)["error"] for _, _, body in await dead_letters())
    assert reasons[0] == "id_number: 校验位不正确"
    assert reasons[1].startswith("不是有效的 JSON")
    for _, headers, body in await dead_letters():
        assert unquote(headers["Minyi-Error"]) == json.loads(body)["error"]
        assert bad["id_number"] not in json.loads(body)["error"]

    before = {r["record_id"]: r["received_at"] for r in await rows(servers, "record_id LIKE 'F-%'")}
    env_row = (await rows(servers, "record_id = 'F-env'"))[0]
    assert env_row["source"] == "migrant" and env_row["status"] == "deceased"
    assert env_row["person_index"] == blind_index(runtime.keyring, envelope["data"]["id_number"], kind="id_number")

    await send_all()  # a replayed feed
    info = await js.consumer_info("REGISTRY", "identity-registry")

    async def drained() -> bool:
        state = await js.consumer_info("REGISTRY", "identity-registry")
        return state.num_pending == 0 and state.num_ack_pending == 0

    await eventually(drained, timeout=20, what="the replay consumed")
    assert info.config.max_deliver == -1
    after = {r["record_id"]: r["received_at"] for r in await rows(servers, "record_id LIKE 'F-%'")}
    assert after == before, "a replay must not rewrite any record"
    await nc.close()


async def test_a_message_may_carry_a_batch_and_a_bad_record_in_it_is_dead_lettered_alone(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    _, runtime = identity
    bad = record("MB-bad", 802, id_number=with_wrong_check(id_number(REGION, date(1980, 1, 1), 802)))
    batch = [record("MB-0", 800),
             {"specversion": "1.0", "id": "ev-b1", "source": "province", "type": "registry.record",
              "data": record("MB-1", 801)},
             bad,
             {"specversion": "1.0", "id": "ev-b3"},  # an envelope without data: refused alone
             record("MB-4", 804)]
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    batch_seq = (await js.publish("registry.population.records", json.dumps(batch).encode())).seq
    # More records than a message may carry: the whole message is refused, nothing of it stored.
    too_many = [record(f"MB-many-{i}", 900) for i in range(1001)]
    too_many_seq = (await js.publish("registry.population.records", json.dumps(too_many).encode())).seq

    async def stored() -> bool:
        return len(await rows(servers, "record_id LIKE 'MB-%'")) == 3

    await eventually(stored, timeout=20, what="the three good records of the batch stored")

    async def dead_letters() -> list[dict[str, Any]]:
        msgs = await stream_messages(servers.nats_url, "DEADLETTER_IDENTITY")
        found = [json.loads(body) for subject, _, body in msgs
                 if subject == "deadletter.identity.registry.population.records"]
        return [d for d in found if d["stream_seq"] in (batch_seq, too_many_seq)]

    async def three_dead() -> bool:
        return len(await dead_letters()) >= 3

    await eventually(three_dead, timeout=10, what="two records of the batch and the oversized message dead-lettered")
    seqs = sorted(d["stream_seq"] for d in await dead_letters())
    by_error = {d["error"]: json.loads(d["original"]["text"]) for d in await dead_letters()}
    wrong = by_error["id_number: 校验位不正确"]
    assert wrong["item"] == 2
    assert wrong["person_ref"] == blind_index(runtime.keyring, bad["id_number"], kind="id_number").hex()
    assert by_error["CloudEvents 消息缺少 data 对象"]["item"] == 3
    assert by_error["一条消息最多1000条记录，这条有1001条"].get("item") is None
    assert seqs == [batch_seq, batch_seq, too_many_seq]
    assert await rows(servers, "record_id LIKE 'MB-many-%'") == []
    await nc.close()


async def test_nothing_personal_is_stored_in_clear(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, _ = identity
    person = record("P-1", 901, name="欧阳明月")
    assert (await client.post("/v1/registry/population/records", json=[person], headers=INTEGRATION)
            ).json()["accepted"] == 1
    (row,) = await rows(servers, "record_id = 'P-1'")
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert person["id_number"].encode() not in stored
    assert person["id_number"][6:14].encode() not in b"".join(v for v in row.values() if isinstance(v, bytes))
    assert "欧阳明月".encode() not in stored


async def test_a_record_corrected_to_another_person_moves_the_merged_view(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    client, runtime = identity
    first, second = id_number(REGION, date(1975, 3, 3), 951), id_number(REGION, date(1976, 4, 4), 952)
    await client.post("/v1/registry/population/records", json=[record("C-1", 951, id_number=first)],
                      headers=INTEGRATION)
    fixed = record("C-1", 952, id_number=second, updated_at="2026-10-05T08:00:00+08:00")
    assert (await client.post("/v1/registry/population/records", json=[fixed], headers=INTEGRATION)
            ).json()["accepted"] == 1
    engine = create_async_engine(servers.database_url)
    async with engine.connect() as conn:
        persons = {bytes(r.person_index): r.birth_date for r in await conn.execute(text(
            "SELECT person_index, birth_date FROM identity.registry_persons WHERE person_index IN (:a, :b)"),
            {"a": blind_index(runtime.keyring, first, kind="id_number"),
             "b": blind_index(runtime.keyring, second, kind="id_number")})}
    await engine.dispose()
    assert persons == {blind_index(runtime.keyring, second, kind="id_number"): date(1976, 4, 4)}


async def test_a_stopped_feed_leaves_no_subscription_for_the_shutdown_drain_to_wait_on(
    identity: tuple[httpx.AsyncClient, Runtime], servers: Servers
) -> None:
    # At shutdown the connection drains every subscription it still has; the feed's pull
    # subscription, abandoned with a late status message in its queue, held a stop for 30 s.
    _, runtime = identity
    cid = runtime.broker.config.connection_state.connection.client_id

    async def subscriptions() -> int:
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"http://127.0.0.1:{servers.nats.monitor_port}/connz",
                                  params={"cid": cid, "subs": 1})
        return int(resp.json()["connections"][0]["subscriptions"])

    async def feed_pulling() -> bool:
        js = runtime.broker.config.connection_state.stream
        try:
            return bool((await js.consumer_info(REGISTRY_STREAM.name, FEED_DURABLE)).num_waiting)
        except nats.js.errors.NotFoundError:  # not created yet
            return False

    await eventually(feed_pulling, timeout=10, what="the service's own feed waiting for records")
    before = await subscriptions()
    feed = asyncio.create_task(consume_registry(runtime))
    await eventually(lambda: _equals(subscriptions(), before + 1), timeout=10,
                     what="a second feed subscribed on identity's connection")
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed
    assert await subscriptions() == before


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
