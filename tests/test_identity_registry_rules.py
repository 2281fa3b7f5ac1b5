"""Registry records without I/O: validation, the feed envelope, latest-wins and the stored row.

Test numbers are built from real region codes (320923 Funing county, Jiangsu; 110105 Chaoyang,
Beijing) with made-up dates and sequence numbers; every check character comes from
`check_character`. Rejection reasons are user-facing Chinese text and are asserted exactly; none of
them may repeat the ID number or the name it rejects.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.identity.registry import (
    ID_CONTEXT,
    MAX_RECORDS_PER_MESSAGE,
    NAME_CONTEXT,
    ROW_COLUMNS,
    SOURCES,
    RecordError,
    RegistryRecord,
    latest_per_key,
    parse_record,
    person_reference,
    prepare_batch,
    record_at,
    record_of_message,
    records_of_message,
    to_row,
)
from shared import idnumber
from shared.idnumber import check_character
from shared.pii import Keyring, PiiError, blind_index, decrypt

# 2026-05-01 12:00 in Shanghai.
NOW = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)
SHANGHAI_OFFSET = timedelta(hours=8)


def build(region: str, born: str, sequence: str) -> str:
    body = region + born + sequence
    return body + check_character(body)


ID_18 = build("320923", "19900307", "123")  # 320923199003071234
ID_15 = "320923900307123"  # the same person's first-generation number
ID_X = build("320923", "19900307", "120")  # ends in X
NAME = "欧阳娜娜"
OTHER_ID = build("110105", "19851120", "452")
NO_PROVINCE_ID = build("990000", "19900307", "123")


def raw_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_id": "P-0001",
        "id_number": ID_18,
        "name": NAME,
        "hukou_region_code": "320923101",
        "residence_region_code": "320923101201",
        "status": "active",
        "political_rights": True,
        "updated_at": "2026-04-30T09:30:00+08:00",
    }
    record.update(changes)
    return record


def without(field: str) -> dict[str, Any]:
    record = raw_record()
    del record[field]
    return record


def parse(obj: Any, source: str = "population") -> RegistryRecord:
    return parse_record(source, obj, now=NOW)


def reason_of(obj: Any, source: str = "population") -> str:
    with pytest.raises(RecordError) as info:
        parse(obj, source)
    return info.value.reason


def assert_no_pii(text: str, *values: str) -> None:
    for value in values:
        stripped = value.strip()
        assert stripped not in text, text
        # Not even a recognizable run of the number (6 characters: a region code or a birth date).
        for start in range(len(stripped) - 5):
            assert stripped[start : start + 6] not in text, text


# --- valid records ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_a_valid_record_of_each_source(source: str) -> None:
    certificate = True if source == "migrant" else None
    changes = {"residence_certificate": certificate} if certificate is not None else {}
    record = parse(raw_record(**changes), source)
    assert record == RegistryRecord(
        source=source, record_id="P-0001", id_number=ID_18, name=NAME, birth_date=idnumber.birth_date(ID_18),
        hukou_region_code="320923101",
        residence_region_code="320923101201", status="active", political_rights=True,
        residence_certificate=certificate, updated_at=datetime(2026, 4, 30, 1, 30, tzinfo=UTC),
    )
    assert record.key == (source, "P-0001")


def test_sources_are_the_three_registries() -> None:
    assert SOURCES == ("population", "social_security", "migrant")


@pytest.mark.parametrize("status", ["active", "deceased", "emigrated"])
def test_every_status_is_accepted(status: str) -> None:
    assert parse(raw_record(status=status)).status == status


@pytest.mark.parametrize("rights", [True, False])
def test_political_rights_both_ways(rights: bool) -> None:
    assert parse(raw_record(political_rights=rights)).political_rights is rights


@pytest.mark.parametrize(("given", "stored"), [(True, True), (False, False), (None, None)])
def test_residence_certificate_bool_or_null(given: bool | None, stored: bool | None) -> None:
    assert parse(raw_record(residence_certificate=given), "migrant").residence_certificate is stored


def test_residence_certificate_may_be_left_out() -> None:
    assert parse(raw_record(), "migrant").residence_certificate is None


@pytest.mark.parametrize("code", ["320923", "320923101", "320923101201"])
def test_region_codes_of_6_9_and_12_digits(code: str) -> None:
    record = parse(raw_record(hukou_region_code=code, residence_region_code=code))
    assert (record.hukou_region_code, record.residence_region_code) == (code, code)


def test_fifteen_digit_number_is_upgraded_to_eighteen() -> None:
    assert ID_18 == "320923199003071234"
    assert parse(raw_record(id_number=ID_15)).id_number == ID_18


def test_lower_case_x_is_accepted_and_upper_cased() -> None:
    assert ID_X.endswith("X")
    assert parse(raw_record(id_number=ID_X.lower())).id_number == ID_X


def test_text_fields_are_stripped() -> None:
    record = parse(raw_record(record_id="  P-0001 ", name=f" {NAME}\t", id_number=f" {ID_18} "))
    assert (record.record_id, record.name, record.id_number) == ("P-0001", NAME, ID_18)


# --- updated_at --------------------------------------------------------------------------------------


def test_naive_updated_at_is_read_as_shanghai_time() -> None:
    record = parse(raw_record(updated_at="2026-04-30T09:30:00"))
    assert record.updated_at.utcoffset() == SHANGHAI_OFFSET
    assert record.updated_at == datetime(2026, 4, 30, 1, 30, tzinfo=UTC)


def test_naive_time_a_few_minutes_ahead_in_shanghai_is_not_read_as_utc() -> None:
    # 12:05 Shanghai is 5 minutes ahead of NOW; read as UTC it would be 8 hours ahead and refused.
    assert parse(raw_record(updated_at="2026-05-01T12:05:00")).updated_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    "value",
    ["2026-05-01T04:10:00+00:00", "2026-05-01T12:10:00+08:00", "2026-05-01T12:10:00", "2026-05-01T04:09:59Z"],
)
def test_up_to_ten_minutes_ahead_is_accepted(value: str) -> None:
    assert parse(raw_record(updated_at=value)).updated_at <= NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    "value", ["2026-05-01T04:10:01+00:00", "2026-05-01T12:10:01", "2026-05-02T00:00:00+08:00", "2099-01-01T00:00:00Z"]
)
def test_more_than_ten_minutes_ahead_is_refused(value: str) -> None:
    assert reason_of(raw_record(updated_at=value)) == "updated_at: 不能晚于当前时间"


def test_offset_is_kept() -> None:
    record = parse(raw_record(updated_at="2026-04-30T01:30:00+00:00"))
    assert record.updated_at == datetime(2026, 4, 30, 1, 30, tzinfo=UTC)


def test_the_first_moment_of_1900_is_accepted() -> None:
    record = parse(raw_record(updated_at="1900-01-01T00:00:00+08:00"))
    assert record.updated_at == datetime(1899, 12, 31, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("source", SOURCES)
def test_a_record_may_name_the_source_it_is_sent_as(source: str) -> None:
    assert parse(raw_record(source=source), source).source == source
    assert parse(raw_record(source=None), source).source == source


# --- rejections --------------------------------------------------------------------------------------

HUKOU_BAD = "hukou_region_code: 应为6位、9位或12位地区代码"
TOO_EARLY = "updated_at: 不能早于1900年（空日期请不要填写占位值）"
RESIDENCE_BAD = "residence_region_code: 应为6位、9位或12位地区代码"

REJECTIONS: list[tuple[str, Any, str]] = [
    ("record_id missing", without("record_id"), "record_id: 缺少或不是文本"),
    ("record_id blank", raw_record(record_id="   "), "record_id: 缺少或不是文本"),
    ("record_id empty", raw_record(record_id=""), "record_id: 缺少或不是文本"),
    ("record_id number", raw_record(record_id=17), "record_id: 缺少或不是文本"),
    ("record_id too long", raw_record(record_id="r" * 65), "record_id: 长度不能超过64"),
    ("id missing", without("id_number"), "id_number: 缺少或不是文本"),
    ("id not text", raw_record(id_number=320923199003071234), "id_number: 缺少或不是文本"),
    ("id wrong check digit", raw_record(id_number=ID_18[:17] + "5"), "id_number: 校验位不正确"),
    ("id impossible birth date", raw_record(id_number=build("320923", "19990230", "123")), "id_number: 出生日期无效"),
    ("id 15 impossible birth date", raw_record(id_number="320923990230123"), "id_number: 出生日期无效"),
    ("id too short", raw_record(id_number=ID_18[:17]), "id_number: 身份证号码应为18位"),
    ("id too long", raw_record(id_number=ID_18 + "1"), "id_number: 身份证号码应为18位"),
    ("id 16 digits", raw_record(id_number=ID_18[:16]), "id_number: 身份证号码应为18位"),
    ("id letters", raw_record(id_number=ID_18[:16] + "AB"), "id_number: 身份证号码只能包含数字，末位可以是X"),
    ("id unknown province", raw_record(id_number=NO_PROVINCE_ID), "id_number: 身份证号码的地区代码无效"),
    ("id born tomorrow", raw_record(id_number=build("320923", "20260502", "123")), "id_number: 出生日期不能晚于今天"),
    ("name missing", without("name"), "name: 缺少或不是文本"),
    ("name blank", raw_record(name=" \t "), "name: 缺少或不是文本"),
    ("name not text", raw_record(name=["欧阳", "娜娜"]), "name: 缺少或不是文本"),
    ("name too long", raw_record(name=NAME * 26), "name: 长度不能超过100"),
    ("hukou missing", without("hukou_region_code"), HUKOU_BAD),
    ("hukou 5 digits", raw_record(hukou_region_code="32092"), HUKOU_BAD),
    ("hukou 7 digits", raw_record(hukou_region_code="3209231"), HUKOU_BAD),
    ("hukou letters", raw_record(hukou_region_code="32092A"), HUKOU_BAD),
    ("hukou full width", raw_record(hukou_region_code="３２０９２３"), HUKOU_BAD),
    ("hukou number", raw_record(hukou_region_code=320923), HUKOU_BAD),
    ("residence 8 digits", raw_record(residence_region_code="32092310"), RESIDENCE_BAD),
    ("residence grid", raw_record(residence_region_code="320923-G03"), RESIDENCE_BAD),
    ("residence missing", without("residence_region_code"), RESIDENCE_BAD),
    ("status unknown", raw_record(status="dead"), "status: 应为 active、deceased 或 emigrated"),
    ("status upper case", raw_record(status="ACTIVE"), "status: 应为 active、deceased 或 emigrated"),
    ("status missing", without("status"), "status: 应为 active、deceased 或 emigrated"),
    ("rights string", raw_record(political_rights="true"), "political_rights: 应为 true 或 false"),
    ("rights number", raw_record(political_rights=1), "political_rights: 应为 true 或 false"),
    ("rights null", raw_record(political_rights=None), "political_rights: 应为 true 或 false"),
    ("rights missing", without("political_rights"), "political_rights: 应为 true 或 false"),
    ("certificate string", raw_record(residence_certificate="false"), "residence_certificate: 应为 true 或 false"),
    ("certificate number", raw_record(residence_certificate=0), "residence_certificate: 应为 true 或 false"),
    ("updated_at missing", without("updated_at"), "updated_at: 应为时间（RFC 3339）"),
    ("updated_at garbage", raw_record(updated_at="yesterday"), "updated_at: 应为时间（RFC 3339）"),
    ("updated_at impossible", raw_record(updated_at="2026-02-30T10:00:00+08:00"), "updated_at: 应为时间（RFC 3339）"),
    ("updated_at epoch number", raw_record(updated_at=1777600000), "updated_at: 应为时间（RFC 3339）"),
    # What provincial systems write for "no date": accepted, it overflowed the database's encoder.
    ("updated_at empty-date placeholder", raw_record(updated_at="0001-01-01T00:00:00"), TOO_EARLY),
    ("updated_at placeholder with offset", raw_record(updated_at="0001-01-01T00:00:00+14:00"), TOO_EARLY),
    ("updated_at date-only placeholder", raw_record(updated_at="0001-01-01"), TOO_EARLY),
    ("updated_at before 1900", raw_record(updated_at="1899-12-31T23:59:59+08:00"), TOO_EARLY),
    ("updated_at with NUL", raw_record(updated_at="2026-04-30T09:30:00\x00"), "updated_at: 应为时间（RFC 3339）"),
    ("source of another registry", raw_record(source="migrant"),
     "source: 记录声明的数据来源 migrant 与发送的数据来源 population 不一致"),
    ("source unknown", raw_record(source="tax"), "source: 记录声明的数据来源无效，应省略或为 population"),
    ("source not text", raw_record(source=["population"]), "source: 记录声明的数据来源无效，应省略或为 population"),
    ("not an object: list", [raw_record()], "记录应为 JSON 对象"),
    ("not an object: string", json.dumps(raw_record()), "记录应为 JSON 对象"),
    ("not an object: null", None, "记录应为 JSON 对象"),
]


@pytest.mark.parametrize(("obj", "reason"), [(obj, reason) for _, obj, reason in REJECTIONS],
                         ids=[case for case, _, _ in REJECTIONS])
def test_rejection_reasons(obj: Any, reason: str) -> None:
    assert reason_of(obj) == reason


@pytest.mark.parametrize("source", ["hospital", "Population", "", "population "])
def test_unknown_source_is_refused(source: str) -> None:
    assert reason_of(raw_record(), source) == f"未知的数据来源：{source}"


def test_unknown_source_is_shortened_in_the_reason() -> None:
    assert reason_of(raw_record(), "x" * 100) == "未知的数据来源：" + "x" * 40


@pytest.mark.parametrize(("obj", "_reason"), [(obj, reason) for _, obj, reason in REJECTIONS],
                         ids=[case for case, _, _ in REJECTIONS])
def test_no_reason_repeats_the_id_number_or_the_name(obj: Any, _reason: str) -> None:
    with pytest.raises(RecordError) as info:
        parse(obj)
    error = info.value
    given = obj if isinstance(obj, dict) else raw_record()
    pii = [ID_18, ID_15, NAME]
    pii += [v for v in (given.get("id_number"), given.get("name")) if isinstance(v, str) and v.strip()]
    for text in (error.reason, str(error), repr(error), *map(str, error.args)):
        assert_no_pii(text, *pii)
    assert error.__cause__ is None


def test_reasons_with_a_fifteen_digit_number_do_not_repeat_it() -> None:
    for bad in ("320923990230123", "32092390030712X", "000000900307123"):
        assert_no_pii(reason_of(raw_record(id_number=bad)), bad)


def test_record_error_is_a_value_error_with_its_reason() -> None:
    error = RecordError("name: 缺少或不是文本")
    assert isinstance(error, ValueError)
    assert (error.reason, str(error)) == ("name: 缺少或不是文本", "name: 缺少或不是文本")


def test_first_problem_is_reported() -> None:
    # Bad ID number and bad status together: the ID number is checked first.
    assert reason_of(raw_record(id_number=ID_18[:17] + "5", status="dead")) == "id_number: 校验位不正确"
    assert reason_of(raw_record(name="", political_rights="yes")) == "name: 缺少或不是文本"


def test_today_for_the_birth_date_check_comes_from_now_in_shanghai() -> None:
    born_today = build("320923", "20260501", "001")
    # 2026-04-30 17:00 UTC is already 1 May in Shanghai: a baby born on 1 May is not in the future.
    assert parse_record("population", raw_record(id_number=born_today, updated_at="2026-04-30T16:00:00Z"),
                        now=datetime(2026, 4, 30, 17, 0, tzinfo=UTC)).id_number == born_today
    with pytest.raises(RecordError) as info:
        parse_record("population", raw_record(id_number=born_today, updated_at="2026-04-30T12:00:00Z"),
                     now=datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    assert info.value.reason == "id_number: 出生日期不能晚于今天"


# --- record_of_message -------------------------------------------------------------------------------


def test_cloudevents_envelope_yields_its_data() -> None:
    envelope = {
        "specversion": "1.0", "id": "evt-1", "source": "/province/population", "type": "registry.record",
        "datacontenttype": "application/json", "data": raw_record(),
    }
    assert record_of_message(json.dumps(envelope, ensure_ascii=False).encode()) == raw_record()


def test_bare_record_yields_itself() -> None:
    assert record_of_message(json.dumps(raw_record(), ensure_ascii=False).encode()) == raw_record()


def test_bare_non_object_is_passed_on_for_parse_record_to_refuse() -> None:
    assert record_of_message(b"[1, 2]") == [1, 2]
    assert reason_of(record_of_message(b"[1, 2]")) == "记录应为 JSON 对象"


def test_a_json_array_is_a_batch_whose_items_are_read_one_by_one() -> None:
    envelope = {"specversion": "1.0", "id": "evt-1", "data": raw_record()}
    items, batched = records_of_message(json.dumps([raw_record(), envelope, {"specversion": "1.0"}, 1]).encode())
    assert batched and items[:2] == [raw_record(), raw_record()] and items[3] == 1
    assert isinstance(items[2], RecordError) and items[2].reason == "CloudEvents 消息缺少 data 对象"
    assert records_of_message(json.dumps(raw_record()).encode()) == ([raw_record()], False)
    assert records_of_message(b"[]") == ([], True)


def test_a_batch_longer_than_allowed_is_refused_whole() -> None:
    with pytest.raises(RecordError) as info:
        records_of_message(json.dumps([raw_record()] * (MAX_RECORDS_PER_MESSAGE + 1)).encode())
    assert info.value.reason == f"一条消息最多{MAX_RECORDS_PER_MESSAGE}条记录，这条有{MAX_RECORDS_PER_MESSAGE + 1}条"
    items, _ = records_of_message(json.dumps([raw_record()] * MAX_RECORDS_PER_MESSAGE).encode())
    assert len(items) == MAX_RECORDS_PER_MESSAGE


def test_record_at_finds_the_record_of_a_batch_or_of_a_single_message() -> None:
    body = json.dumps([raw_record(record_id="A"), {"specversion": "1.0"}]).encode()
    assert record_at(body, 0)["record_id"] == "A"
    assert record_at(body, 1) is None and record_at(body, 5) is None and record_at(b"{not json", None) is None
    assert record_at(json.dumps(raw_record(record_id="S")).encode(), None)["record_id"] == "S"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b'{"record_id": "P-1",}',
        b"\x00\x01",
        json.dumps(raw_record(), ensure_ascii=False).encode("gb18030"),  # non-UTF-8 name
        b'{"name": "\xd5\xc5\xc8\xfd"}',  # GBK bytes for a name
        b'{"name": "\xff"}',
    ],
)
def test_invalid_json_or_non_utf8_is_a_record_error(body: bytes) -> None:
    with pytest.raises(RecordError) as info:
        record_of_message(body)
    assert info.value.reason.startswith("不是有效的 JSON（")
    assert_no_pii(info.value.reason, ID_18, NAME)


def test_invalid_json_reason_names_the_position() -> None:
    with pytest.raises(RecordError) as info:
        record_of_message(b"{not json")
    assert info.value.reason == "不是有效的 JSON（第1个字符）"


@pytest.mark.parametrize(
    "body",
    [
        b"1" * 5000,  # more digits than int() converts: ValueError, not JSONDecodeError
        b'{"record_id": "P-1", "political_rights": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the decoder's recursion limit
    ],
    ids=["huge-number", "huge-number-in-record", "deep-nesting"],
)
def test_any_undecodable_body_is_a_record_error(body: bytes) -> None:
    # A message that cannot become a record must be rejected alone, not fail the whole feed batch.
    with pytest.raises(RecordError):
        record_of_message(body)


@pytest.mark.parametrize(
    "envelope",
    [
        {"specversion": "1.0", "id": "evt-1"},
        {"specversion": "1.0", "data": None},
        {"specversion": "1.0", "data": [raw_record()]},
        {"specversion": "1.0", "data": json.dumps(raw_record())},
        {"specversion": "1.0", "data_base64": "e30="},
    ],
)
def test_envelope_without_a_data_object_is_a_record_error(envelope: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as info:
        record_of_message(json.dumps(envelope).encode())
    assert info.value.reason == "CloudEvents 消息缺少 data 对象"


# --- unhashable values must not escape as TypeError ------------------------------------------------


@pytest.mark.parametrize("status", [["active"], {"value": "active"}])
def test_status_of_the_wrong_json_type_is_a_record_error(status: Any) -> None:
    assert reason_of(raw_record(status=status)) == "status: 应为 active、deceased 或 emigrated"


# --- latest_per_key ----------------------------------------------------------------------------------


def record(record_id: str = "P-0001", *, source: str = "population", at: datetime = NOW, status: str = "active",
           id_number: str = ID_18) -> RegistryRecord:
    return RegistryRecord(
        source=source, record_id=record_id, id_number=id_number, name=NAME,
        birth_date=idnumber.birth_date(id_number), hukou_region_code="320923",
        residence_region_code="320923", status=status, political_rights=True, residence_certificate=None,
        updated_at=at,
    )


@pytest.mark.parametrize("newer_first", [False, True])
def test_latest_per_key_keeps_the_later_updated_at(newer_first: bool) -> None:
    older = record(at=NOW - timedelta(days=1), status="active")
    newer = record(at=NOW, status="deceased")
    given = [newer, older] if newer_first else [older, newer]
    kept, superseded = latest_per_key(given)
    assert kept == [newer]
    assert superseded == 1


def test_latest_per_key_compares_instants_not_wall_clocks() -> None:
    # 09:00+08:00 is 01:00 UTC, earlier than 02:00 UTC although its wall clock reads later.
    shanghai = parse(raw_record(updated_at="2026-04-30T09:00:00"))
    utc = parse(raw_record(updated_at="2026-04-30T02:00:00Z", status="deceased"))
    assert latest_per_key([utc, shanghai]) == ([utc], 1)
    assert latest_per_key([shanghai, utc]) == ([utc], 1)


def test_latest_per_key_counts_every_superseded_version() -> None:
    versions = [record(at=NOW - timedelta(hours=h)) for h in (3, 0, 5, 1)]
    kept, superseded = latest_per_key(versions)
    assert kept == [versions[1]]
    assert superseded == 3


def test_latest_per_key_separates_sources_and_record_ids() -> None:
    records = [
        record("P-0001", source="population"),
        record("P-0001", source="migrant"),
        record("P-0002", source="population"),
        record("P-0001", source="social_security"),
    ]
    kept, superseded = latest_per_key(records)
    assert kept == records
    assert superseded == 0


def test_latest_per_key_replay_is_harmless() -> None:
    one = record()
    kept, superseded = latest_per_key([one, one, one])
    assert kept == [one]
    assert superseded == 2


def test_latest_per_key_of_nothing() -> None:
    assert latest_per_key([]) == ([], 0)


# --- to_row ------------------------------------------------------------------------------------------


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def assert_row_has_no_clear_pii(row: tuple[Any, ...], *values: str) -> None:
    for field in row:
        for value in values:
            if isinstance(field, bytes):
                assert value.encode("utf-8") not in field
            elif isinstance(field, str):
                assert value not in field
            else:
                assert value not in str(field)


def test_row_columns_match_the_row(keyring: Keyring) -> None:
    row = to_row(keyring, parse(raw_record()))
    assert len(row) == len(ROW_COLUMNS)
    assert ROW_COLUMNS == (
        "source", "record_id", "person_index", "id_number_encrypted", "name_encrypted", "birth_date",
        "hukou_region_code", "residence_region_code", "status", "political_rights", "residence_certificate",
        "updated_at",
    )


def test_to_row_encrypts_and_indexes(keyring: Keyring) -> None:
    rec = parse(raw_record(residence_certificate=True), "migrant")
    row = dict(zip(ROW_COLUMNS, to_row(keyring, rec), strict=True))
    assert decrypt(keyring, row["id_number_encrypted"], context=ID_CONTEXT) == ID_18
    assert decrypt(keyring, row["name_encrypted"], context=NAME_CONTEXT) == NAME
    assert row["person_index"] == blind_index(keyring, ID_18, kind="id_number")
    assert row == {
        **row,
        "source": "migrant", "record_id": "P-0001", "birth_date": date(1990, 3, 7),
        "hukou_region_code": "320923101", "residence_region_code": "320923101201", "status": "active",
        "political_rights": True, "residence_certificate": True, "updated_at": datetime(2026, 4, 30, 1, 30, tzinfo=UTC),
    }


def test_contexts_are_distinct(keyring: Keyring) -> None:
    row = dict(zip(ROW_COLUMNS, to_row(keyring, parse(raw_record())), strict=True))
    assert ID_CONTEXT != NAME_CONTEXT
    with pytest.raises(PiiError):
        decrypt(keyring, row["id_number_encrypted"], context=NAME_CONTEXT)


@pytest.mark.parametrize("spelling", [ID_18, ID_15])
def test_blind_index_is_the_same_for_both_spellings(keyring: Keyring, spelling: str) -> None:
    row = dict(zip(ROW_COLUMNS, to_row(keyring, parse(raw_record(id_number=spelling))), strict=True))
    assert row["person_index"] == blind_index(keyring, ID_18, kind="id_number")
    assert decrypt(keyring, row["id_number_encrypted"], context=ID_CONTEXT) == ID_18


def test_lower_case_x_indexes_like_upper_case(keyring: Keyring) -> None:
    lower = to_row(keyring, parse(raw_record(id_number=ID_X.lower())))
    upper = to_row(keyring, parse(raw_record(id_number=ID_X)))
    assert lower[2] == upper[2] == blind_index(keyring, ID_X, kind="id_number")


def test_different_people_index_differently(keyring: Keyring) -> None:
    one = to_row(keyring, parse(raw_record()))
    two = to_row(keyring, parse(raw_record(id_number=OTHER_ID)))
    assert one[2] != two[2]


@pytest.mark.parametrize("spelling", [ID_18, ID_15, ID_X.lower()])
def test_no_row_field_holds_the_id_number_or_name_in_clear(keyring: Keyring, spelling: str) -> None:
    rec = parse(raw_record(id_number=spelling))
    row = to_row(keyring, rec)
    assert_row_has_no_clear_pii(row, rec.id_number, spelling, NAME)
    assert all(isinstance(field, str | bytes | date | bool | None) for field in row)


# --- prepare_batch -----------------------------------------------------------------------------------


def test_prepare_batch_keeps_original_indexes_and_one_row_per_key(keyring: Keyring) -> None:
    items: list[tuple[int, Any]] = [
        (10, raw_record(record_id="A", updated_at="2026-04-30T08:00:00+08:00", status="active")),
        (11, raw_record(record_id="B", id_number=ID_18[:17] + "5")),
        (12, raw_record(record_id="C", id_number=OTHER_ID, name="李四")),
        (13, "not an object"),
        (14, raw_record(record_id="A", updated_at="2026-04-30T09:00:00+08:00", status="deceased")),
        (15, raw_record(record_id="D", political_rights="true")),
        (16, raw_record(record_id="A", updated_at="2026-04-30T07:00:00+08:00", status="emigrated")),
    ]
    batch = prepare_batch("population", items, keyring, now=NOW)
    assert batch.rejected == [
        (11, "id_number: 校验位不正确"),
        (13, "记录应为 JSON 对象"),
        (15, "political_rights: 应为 true 或 false"),
    ]
    assert batch.valid == 4
    rows = {row[1]: dict(zip(ROW_COLUMNS, row, strict=True)) for row in batch.rows}
    assert len(batch.rows) == 2
    assert set(rows) == {"A", "C"}
    assert rows["A"]["status"] == "deceased"
    assert rows["A"]["updated_at"] == datetime(2026, 4, 30, 1, 0, tzinfo=UTC)
    assert decrypt(keyring, rows["C"]["name_encrypted"], context=NAME_CONTEXT) == "李四"
    assert all(row["source"] == "population" for row in rows.values())
    for _, reason in batch.rejected:
        assert_no_pii(reason, ID_18, NAME, OTHER_ID)


def test_prepare_batch_with_an_unknown_source_rejects_every_item(keyring: Keyring) -> None:
    batch = prepare_batch("hospital", [(0, raw_record()), (1, raw_record())], keyring, now=NOW)
    assert batch.rejected == [(0, "未知的数据来源：hospital"), (1, "未知的数据来源：hospital")]
    assert (batch.rows, batch.valid) == ([], 0)


def test_prepare_batch_of_nothing(keyring: Keyring) -> None:
    batch = prepare_batch("migrant", [], keyring, now=NOW)
    assert (batch.rows, batch.valid, batch.rejected) == ([], 0, [])


def test_prepare_batch_rejects_an_unhashable_status_alone(keyring: Keyring) -> None:
    batch = prepare_batch("population", [(0, raw_record(status=["active"])), (1, raw_record(record_id="B"))],
                          keyring, now=NOW)
    assert batch.rejected == [(0, "status: 应为 active、deceased 或 emigrated")]
    assert batch.valid == 1


def test_prepare_batch_says_which_items_each_row_stands_for(keyring: Keyring) -> None:
    items: list[tuple[int, Any]] = [
        (3, raw_record(record_id="A", updated_at="2026-04-30T08:00:00+08:00")),
        (4, raw_record(record_id="B", id_number=OTHER_ID)),
        (5, raw_record(record_id="A", updated_at="2026-04-30T09:00:00+08:00")),
        (6, "not an object"),
    ]
    batch = prepare_batch("population", items, keyring, now=NOW)
    by_record = {row[1]: numbers for row, numbers in zip(batch.rows, batch.row_items, strict=True)}
    assert by_record == {"A": [3, 5], "B": [4]}


# --- person_reference --------------------------------------------------------------------------------


def test_person_reference_is_the_blind_index_of_the_canonical_number(keyring: Keyring) -> None:
    expected = blind_index(keyring, ID_18, kind="id_number").hex()
    assert person_reference(keyring, raw_record()) == expected
    # The 15-digit spelling of the same person, and padding, lead to the same stored person.
    assert person_reference(keyring, raw_record(id_number=ID_15)) == expected
    assert person_reference(keyring, raw_record(id_number=f"  {ID_18} ")) == expected
    assert len(expected) == 64 and ID_18 not in expected


def test_person_reference_of_a_malformed_number_is_still_keyed(keyring: Keyring) -> None:
    wrong = ID_18[:17] + "5"
    assert person_reference(keyring, raw_record(id_number=wrong)) == blind_index(keyring, wrong, kind="id_number").hex()
    assert person_reference(keyring, raw_record(id_number=wrong)) != person_reference(keyring, raw_record())


@pytest.mark.parametrize("obj", [raw_record(id_number=None), without("id_number"), raw_record(id_number="  "),
                                 raw_record(id_number="1" * 41), raw_record(id_number="3209\x00"),
                                 raw_record(id_number=320923199003071234), "not an object", None])
def test_no_person_reference_without_a_usable_number(keyring: Keyring, obj: Any) -> None:
    assert person_reference(keyring, obj) is None


def test_person_references_differ_between_keyrings() -> None:
    assert person_reference(Keyring.generate(), raw_record()) != person_reference(Keyring.generate(), raw_record())
