"""Registry records (人口库、社保库、流动人口库): what a valid record is, and which one wins.

Records come from provincial integrations, one or a batch per NATS message or many per HTTP
request, in the same shape (see README, "Registry feed"). Validation here is hand-written rather
than a pydantic model: it runs once per record at feed rates, and each failure needs a Chinese
reason that never repeats the personal data it rejects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

import orjson

from shared import idnumber
from shared.calendar import SHANGHAI
from shared.inputs import MESSAGE, storable
from shared.pii import Keyring, blind_index, encrypt, id_number_index

SOURCES: Final = ("population", "social_security", "migrant")
Source = Literal["population", "social_security", "migrant"]
STATUSES: Final = frozenset({"active", "deceased", "emigrated"})

# A feed clock a little ahead of ours is normal; a record dated far ahead would win over every
# later correction, so it is refused.
FUTURE_TOLERANCE: Final = timedelta(minutes=10)
# Provincial systems write "0001-01-01T00:00:00" for "no date". No registry record was written
# before this year, and a time that early cannot even be converted to UTC for storage.
EARLIEST_UPDATE_YEAR: Final = 1900

ID_CONTEXT: Final = "identity.registry.id_number"
NAME_CONTEXT: Final = "identity.registry.name"


class RecordError(ValueError):
    """A record that cannot be stored; `reason` is safe to show and log (no personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Not frozen: a frozen dataclass sets each field through object.__setattr__, a microsecond a record
# at load rates; nothing keeps these beyond the batch that parsed them.
@dataclass(slots=True)
class RegistryRecord:
    source: str
    record_id: str
    id_number: str
    name: str
    birth_date: date
    hukou_region_code: str
    residence_region_code: str
    status: str
    political_rights: bool
    residence_certificate: bool | None
    updated_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.record_id)


def _text(obj: Mapping[str, Any], name: str, max_length: int) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{name}: 缺少或不是文本")
    if not storable(value):
        raise RecordError(f"{name}: {MESSAGE}")
    value = value.strip()
    if len(value) > max_length:
        raise RecordError(f"{name}: 长度不能超过{max_length}")
    return value


def _region(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or len(value) not in (6, 9, 12) or not (value.isascii() and value.isdigit()):
        raise RecordError(f"{name}: 应为6位、9位或12位地区代码")
    return value


def _timestamp(value: Any, now: datetime) -> datetime:
    # fromisoformat stops at a NUL and takes what came before it: refused here, not half-read.
    if not isinstance(value, str) or not storable(value):
        raise RecordError("updated_at: 应为时间（RFC 3339）")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError("updated_at: 应为时间（RFC 3339）") from None
    if parsed.year < EARLIEST_UPDATE_YEAR:
        raise RecordError(f"updated_at: 不能早于{EARLIEST_UPDATE_YEAR}年（空日期请不要填写占位值）")
    if parsed.tzinfo is None:
        # Provincial systems commonly send local wall-clock time without an offset.
        parsed = parsed.replace(tzinfo=SHANGHAI)
    if parsed > now + FUTURE_TOLERANCE:
        raise RecordError("updated_at: 不能晚于当前时间")
    return parsed


def _declared_source(obj: Mapping[str, Any], source: str) -> None:
    """A record may name its registry; it must then be the one it was sent as (subject or path).

    The source a record is stored under decides how it is merged (hukou from `population`, residence
    from `migrant`), and who may send it is decided by where it was sent, never by what it claims.
    """
    declared = obj.get("source")
    if declared is None or declared == source:
        return
    if isinstance(declared, str) and declared in SOURCES:
        raise RecordError(f"source: 记录声明的数据来源 {declared} 与发送的数据来源 {source} 不一致")
    raise RecordError(f"source: 记录声明的数据来源无效，应省略或为 {source}")


def parse_record(source: str, obj: Any, *, now: datetime, today: date | None = None) -> RegistryRecord:
    """A validated record, or RecordError with the first problem found.

    `source` is where the record was sent (the NATS subject or the HTTP path), never the body.
    """
    if source not in SOURCES:
        raise RecordError(f"未知的数据来源：{source[:40]}")
    if not isinstance(obj, dict):
        raise RecordError("记录应为 JSON 对象")
    _declared_source(obj, source)
    record_id = _text(obj, "record_id", 64)
    raw_id = obj.get("id_number")
    if not isinstance(raw_id, str):
        raise RecordError("id_number: 缺少或不是文本")
    try:
        id_number, born = idnumber.normalize_born(raw_id, today=today or now.astimezone(SHANGHAI).date())
    except idnumber.InvalidIdNumber as exc:
        raise RecordError(f"id_number: {exc.message}") from None
    name = _text(obj, "name", 100)
    hukou = _region(obj, "hukou_region_code")
    residence = _region(obj, "residence_region_code")
    status = obj.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise RecordError("status: 应为 active、deceased 或 emigrated")
    rights = obj.get("political_rights")
    if not isinstance(rights, bool):
        raise RecordError("political_rights: 应为 true 或 false")
    certificate = obj.get("residence_certificate")
    if certificate is not None and not isinstance(certificate, bool):
        raise RecordError("residence_certificate: 应为 true 或 false")
    return RegistryRecord(
        source=source, record_id=record_id, id_number=id_number, name=name, birth_date=born, hukou_region_code=hukou,
        residence_region_code=residence, status=str(status), political_rights=rights,
        residence_certificate=certificate, updated_at=_timestamp(obj.get("updated_at"), now),
    )


def parse_json(body: bytes) -> Any:
    """Strict UTF-8 JSON; RecordError for anything else (including bodies built to exhaust the parser)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("不是有效的 JSON（应为 UTF-8 编码）") from None
    try:
        # orjson is stricter than the standard library where it matters here: it refuses lone
        # surrogates, NaN and numbers beyond a double, and nesting deeper than 1,024.
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"不是有效的 JSON（第{exc.pos}个字符）") from None


def _unwrapped(obj: Any) -> Any:
    """A CloudEvents envelope's `data`, or the bare record itself."""
    if isinstance(obj, dict) and "specversion" in obj:
        data = obj.get("data")
        if not isinstance(data, dict):
            raise RecordError("CloudEvents 消息缺少 data 对象")
        return data
    return obj


def record_of_message(body: bytes) -> Any:
    """The record carried by a feed message of one record (`records_of_message` reads batches)."""
    return _unwrapped(parse_json(body))


# A feed message may carry a batch of records: a JSON array whose items are what a message of one
# record carries (a bare record or a CloudEvent; the array is CloudEvents' JSON batch format). Each
# message costs the consumer a delivery, an acknowledgement and their bookkeeping in the client,
# about half of the identity process's time at one record a message (bench/README.md).
MAX_RECORDS_PER_MESSAGE: Final = 1000


def records_of_message(body: bytes) -> tuple[list[Any], bool]:
    """The items of a feed message and whether it was a batch. Each item is a record, or the
    RecordError of that item alone (an envelope without data); a body that is not JSON, or a batch
    longer than MAX_RECORDS_PER_MESSAGE, raises RecordError for the whole message."""
    obj = parse_json(body)
    if not isinstance(obj, list):
        return [_item(obj)], False
    if len(obj) > MAX_RECORDS_PER_MESSAGE:
        raise RecordError(f"一条消息最多{MAX_RECORDS_PER_MESSAGE}条记录，这条有{len(obj)}条")
    return [_item(item) for item in obj], True


def _item(obj: Any) -> Any:
    try:
        return _unwrapped(obj)
    except RecordError as exc:
        return exc


def record_at(body: bytes, position: int | None) -> Any:
    """The record at `position` of a batch message (None: a message of one record), or None."""
    try:
        items, _ = records_of_message(body)
    except RecordError:
        return None
    item = items[position or 0] if (position or 0) < len(items) else None
    return None if isinstance(item, RecordError) else item


def latest_per_key(records: Iterable[RegistryRecord]) -> tuple[list[RegistryRecord], int]:
    """Keep the latest `updated_at` per (source, record_id); also how many were superseded.

    A batch may carry several versions of one record; storing them in one statement needs one row
    per key, and the later version is the one that would win anyway.
    """
    best: dict[tuple[str, str], RegistryRecord] = {}
    superseded = 0
    for record in records:
        current = best.get(record.key)
        if current is None:
            best[record.key] = record
            continue
        superseded += 1
        if record.updated_at > current.updated_at:
            best[record.key] = record
    return list(best.values()), superseded


# Column order of `identity.registry_records` as written by the store (COPY needs it explicit).
ROW_COLUMNS: Final = (
    "source", "record_id", "person_index", "id_number_encrypted", "name_encrypted", "birth_date",
    "hukou_region_code", "residence_region_code", "status", "political_rights", "residence_certificate",
    "updated_at",
)


def to_row(keyring: Keyring, record: RegistryRecord) -> tuple[Any, ...]:
    """The stored form: ID number and name encrypted, the ID's blind index to match on."""
    return (
        record.source,
        record.record_id,
        id_number_index(keyring, record.id_number),
        encrypt(keyring, record.id_number, context=ID_CONTEXT),
        encrypt(keyring, record.name, context=NAME_CONTEXT),
        record.birth_date,
        record.hukou_region_code,
        record.residence_region_code,
        record.status,
        record.political_rights,
        record.residence_certificate,
        record.updated_at,
    )


@dataclass
class PreparedBatch:
    rows: list[tuple[Any, ...]]
    valid: int
    rejected: list[tuple[int, str]]
    # For each row, the numbers of the items it stands for: every version of its key in the batch.
    row_items: list[list[int]] = field(default_factory=list)


def prepare_batch(source: str, items: Iterable[tuple[int, Any]], keyring: Keyring, *, now: datetime) -> PreparedBatch:
    """Validate numbered raw records; the valid ones become rows (one per key), the rest reasons."""
    valid: list[RegistryRecord] = []
    numbers: dict[tuple[str, str], list[int]] = {}
    rejected: list[tuple[int, str]] = []
    today = now.astimezone(SHANGHAI).date()
    for index, obj in items:
        try:
            record = parse_record(source, obj, now=now, today=today)
        except RecordError as exc:
            rejected.append((index, exc.reason))
            continue
        valid.append(record)
        numbers.setdefault(record.key, []).append(index)
    latest, _ = latest_per_key(valid)
    return PreparedBatch(rows=[to_row(keyring, r) for r in latest], valid=len(valid), rejected=rejected,
                         row_items=[numbers[r.key] for r in latest])


# Longer than any ID number in any spelling; a longer value is not worth a reference.
_MAX_REFERENCED_ID: Final = 40


def person_reference(keyring: Keyring, obj: Any) -> str | None:
    """A keyed reference to the person a refused record names: the HMAC of its ID number, in hex.

    For a well-formed number it equals the `person_index` of that person's stored records and voter
    registrations, so an operator can find them; it reveals nothing without the service's key.
    None when the record names no usable ID number.
    """
    raw = obj.get("id_number") if isinstance(obj, dict) else None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_REFERENCED_ID or not storable(raw):
        return None
    try:
        value = idnumber.normalize(raw)
    except idnumber.InvalidIdNumber:
        value = raw
    try:
        return blind_index(keyring, value, kind="id_number").hex()
    except ValueError:
        return None
