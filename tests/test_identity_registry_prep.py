"""Registry load chunks prepared in worker processes and in a thread give the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.identity import registry
from services.identity.registry_prep import Preparer
from shared import idnumber
from shared.pii import Keyring, blind_index, decrypt, key_id_of


def lines() -> list[tuple[int, bytes]]:
    out = []
    for i in range(40):
        first17 = f"32020519800101{i:03d}"
        record = {"record_id": f"R{i}", "id_number": first17 + idnumber.check_character(first17), "name": f"居民{i}",
                  "hukou_region_code": "320205001001", "residence_region_code": "320205001001",
                  "status": "active", "political_rights": True, "updated_at": "2026-10-01T08:00:00+08:00"}
        out.append((i + 1, json.dumps(record, ensure_ascii=False).encode()))
    out.insert(5, (99, b'{"record_id": "broken"'))
    return out


def readable(keyring: Keyring, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows with the ID number and the name decrypted (each encryption draws its own nonce)."""
    cols = registry.ROW_COLUMNS
    out = []
    for row in rows:
        values = dict(zip(cols, row, strict=True))
        values["id_number_encrypted"] = decrypt(keyring, values["id_number_encrypted"], context=registry.ID_CONTEXT)
        values["name_encrypted"] = decrypt(keyring, values["name_encrypted"], context=registry.NAME_CONTEXT)
        out.append(tuple(values.values()))
    return out


async def test_a_worker_process_and_a_thread_prepare_the_same_rows_and_refusals() -> None:
    keyring = Keyring.generate()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    in_process, in_thread = Preparer(1), Preparer(0)
    try:
        a = await in_process.prepare("population", None, lines(), 41, keyring, now)
        b = await in_thread.prepare("population", None, lines(), 41, keyring, now)
    finally:
        in_process.close()
    assert a.valid == b.valid == 40 and a.rejected == b.rejected and [n for n, _ in a.rejected] == [99]
    assert readable(keyring, a.rows) == readable(keyring, b.rows)
    first = dict(zip(registry.ROW_COLUMNS, a.rows[0], strict=True))
    assert first["person_index"] == blind_index(keyring, decrypt(keyring, first["id_number_encrypted"],
                                                                 context=registry.ID_CONTEXT), kind="id_number")


async def test_a_rotated_keyring_is_used_from_the_next_chunk_on() -> None:
    keyring = Keyring.generate()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    preparer = Preparer(1)
    try:
        before = await preparer.prepare("population", None, lines(), 41, keyring, now)
        rotated = keyring.with_new_current_key()
        after = await preparer.prepare("population", None, lines(), 41, rotated, now)
    finally:
        preparer.close()
    column = registry.ROW_COLUMNS.index("name_encrypted")
    assert {key_id_of(r[column]) for r in before.rows} == {keyring.current_key_id}
    assert {key_id_of(r[column]) for r in after.rows} == {rotated.current_key_id} != {keyring.current_key_id}


async def test_a_feed_batch_prepared_in_a_worker_sets_the_bad_messages_aside_with_references_only() -> None:
    keyring = Keyring.generate()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    good = [("registry.population.records", body) for _, body in lines() if b"broken" not in body]
    wrong_check = json.loads(good[3][1])
    wrong_check["id_number"] = wrong_check["id_number"][:17] + ("0" if wrong_check["id_number"][17] != "0" else "1")
    messages = [*good[:3], ("registry.population.records", b"{not json"),
                ("registry.elsewhere.records", good[4][1]),
                ("registry.population.records", json.dumps(wrong_check).encode()), *good[5:]]
    preparer = Preparer(1)
    try:
        prepared = await preparer.prepare_feed(messages, keyring, now)
    finally:
        preparer.close()
    assert prepared.valid == len(messages) - 3 == len(prepared.rows)
    assert all(position is None for (_, position), _, _ in prepared.bad)  # messages of one record
    by_index = {i: (reason, ref) for (i, _), reason, ref in prepared.bad}
    assert sorted(by_index) == [3, 4, 5]
    assert by_index[3][1] is None  # no record, no reference
    assert by_index[4][0].startswith("未知的数据来源")
    assert by_index[4][1] == blind_index(keyring, json.loads(good[4][1])["id_number"], kind="id_number").hex()
    assert by_index[5][0].startswith("id_number:") and by_index[5][1] is not None
    assert all(str(wrong_check["id_number"]) not in reason for reason, _ in by_index.values())
    assert prepared.row_origins == [[(i, None)] for i in range(len(messages)) if i not in (3, 4, 5)]


async def test_a_batch_message_gives_each_record_its_place_and_a_repeated_key_one_row() -> None:
    keyring = Keyring.generate()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    records = [json.loads(body) for _, body in lines() if b"broken" not in body][:4]
    later = {**records[1], "updated_at": "2026-10-02T08:00:00+08:00"}
    batch = [records[0], records[1], {"specversion": "1.0", "id": "e"}, 7, later,
             {"specversion": "1.0", "id": "e2", "data": records[2]}]
    messages = [("registry.population.records", json.dumps(batch, ensure_ascii=False).encode()),
                ("registry.population.records", json.dumps(records[3], ensure_ascii=False).encode())]
    prepared = await Preparer(0).prepare_feed(messages, keyring, now)
    assert prepared.records == 7 and prepared.valid == 5 and len(prepared.rows) == 4
    assert sorted((origin, reason) for origin, reason, _ in prepared.bad) == [
        ((0, 2), "CloudEvents 消息缺少 data 对象"), ((0, 3), "记录应为 JSON 对象")]
    assert sorted(prepared.row_origins) == [[(0, 0)], [(0, 1), (0, 4)], [(0, 5)], [(1, None)]]
    updated = registry.ROW_COLUMNS.index("updated_at")
    row_of_r1 = prepared.rows[prepared.row_origins.index([(0, 1), (0, 4)])]
    assert row_of_r1[updated].day == 2  # the later version of the repeated record is the one kept
