"""Bulk HTTP intake of registry records: a JSON array or NDJSON, parsed as it streams in.

The body is never held whole: records are validated and written in chunks as they arrive, all in
one transaction, so a body that breaks off or turns out not to be JSON halfway leaves nothing
behind, while a single bad record is only rejected with its reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import ijson
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from services.identity import registry
from services.identity.registry_store import store_rows_apart
from shared.auth import Principal, require_roles
from shared.errors import Problem
from shared.problems import COMMON, problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

CHUNK: Final = 2000
# The answer lists every rejected record up to this many; beyond it only the count grows.
MAX_LISTED_REJECTIONS: Final = 10_000
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                                 "application/x-jsonlines", "application/json-seq"})

# Who may call: integration only (an operator account is no registry feed).
Integration = Annotated[Principal, Depends(require_roles("integration"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SourcePath = Annotated[str, Path(pattern="^(population|social_security|migrant)$",
                                 description="population, social_security or migrant")]


RECORD_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["record_id", "id_number", "name", "hukou_region_code", "residence_region_code", "status",
                 "political_rights", "updated_at"],
    "properties": {
        "record_id": {"type": "string", "maxLength": 64, "description": "the source system's own record id"},
        "id_number": {"type": "string", "description": "GB 11643, 18 characters (15-digit numbers upgraded)"},
        "name": {"type": "string", "maxLength": 100},
        "hukou_region_code": {"type": "string", "pattern": "^([0-9]{6}|[0-9]{9}|[0-9]{12})$"},
        "residence_region_code": {"type": "string", "pattern": "^([0-9]{6}|[0-9]{9}|[0-9]{12})$"},
        "status": {"type": "string", "enum": ["active", "deceased", "emigrated"]},
        "political_rights": {"type": "boolean"},
        "residence_certificate": {"type": "boolean", "description": "居住证/选民资格证明 (migrant source)"},
        "updated_at": {"type": "string", "format": "date-time", "description": "later wins; no offset = +08:00"},
    },
}


# Two records of a population register (made-up people; the ID numbers' check digits are right).
EXAMPLE: Final[list[dict[str, Any]]] = [
    {"record_id": "P-2026-000101", "id_number": "330106198005010010", "name": "张三", "hukou_region_code": "330106",
     "residence_region_code": "330106", "status": "active", "political_rights": True,
     "updated_at": "2026-02-01T08:00:00+08:00"},
    {"record_id": "P-2026-000102", "id_number": "330106199003120026", "name": "李四", "hukou_region_code": "330106",
     "residence_region_code": "330106001", "status": "active", "political_rights": True,
     "updated_at": "2026-02-01T08:00:00+08:00"},
]


def check_source(who: Principal, source: str) -> None:
    # An integration credential is issued for the registries it feeds; one leaked from the migrant
    # system must not be able to rewrite the population register.
    if source not in who.sources:
        raise Problem(403, f"该集成账号无权写入数据来源 {source}（登录凭证的 sources 中没有它）。")


class Rejection(BaseModel):
    index: int
    error: str


class BatchResult(BaseModel):
    accepted: int
    unchanged: int
    rejected: list[Rejection]
    rejected_total: int


class _BodyReader:
    """The request body as the async file object ijson reads from."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.first_byte: int | None = None

    async def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                self._buffer = await anext(self._chunks)
            except StopAsyncIteration:
                return b""
        if self.first_byte is None:
            stripped = self._buffer.lstrip()
            if not stripped:
                self._buffer = b""
                return await self.read(size)
            self.first_byte = stripped[0]
            if self.first_byte != ord("["):
                raise Problem(422, "请求体应为 JSON 数组，或以 application/x-ndjson 发送每行一条记录。",
                              title="Validation Failed")
        out, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return out


async def _array_items(request: Request) -> AsyncIterator[Any]:
    reader = _BodyReader(request.stream())
    try:
        async for item in ijson.items(reader, "item", use_float=True):
            yield item
    except (ijson.JSONError, ijson.IncompleteJSONError) as exc:
        if reader.first_byte is None:
            raise Problem(422, "请求体为空。", title="Validation Failed") from None
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise Problem(400, f"请求体不是有效或完整的 JSON（{reason}），本批记录均未保存。",
                      title="Malformed Body") from None
    if reader.first_byte is None:
        raise Problem(422, "请求体为空。", title="Validation Failed")


class _Malformed:
    """An NDJSON line that is not JSON: rejected alone, like any other bad record."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def _ndjson_items(request: Request) -> AsyncIterator[Any]:
    pending = b""
    async for chunk in request.stream():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield _parse_line(line)
    if pending.strip():
        yield _parse_line(pending)


def _parse_line(line: bytes) -> Any:
    try:
        return registry.parse_json(line)
    except registry.RecordError as exc:
        return _Malformed(exc.reason)


@router.post(
    "/registry/{source}/records",
    response_model=BatchResult,
    summary="Load registry records in bulk (JSON array or NDJSON, streamed)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": RECORD_SCHEMA},
                             "examples": {"population": {"summary": "two people of a county", "value": EXAMPLE}}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one record per line"},
                                 "examples": {"population": {"summary": "the same, a line each",
                                                             "value": "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                              for r in EXAMPLE)}}},
    }}},
    responses=problems((400, "the body is not valid JSON; nothing was stored"),
                       (403, "not an integration, or the token's `sources` claim does not name this source"),
                       (415, "neither application/json nor application/x-ndjson")),
)
async def post_records(source: SourcePath, request: Request, who: Integration, runtime: RuntimeDep) -> BatchResult:
    check_source(who, source)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        items = _array_items(request)
    elif media_type in NDJSON_TYPES:
        items = _ndjson_items(request)
    else:
        raise Problem(415, "请以 application/json（数组）或 application/x-ndjson（每行一条）发送记录。")
    now = datetime.now(UTC)
    accepted = valid = rejected_total = 0
    rejected: list[Rejection] = []
    async with runtime.transaction() as session:
        chunk: list[tuple[int, Any]] = []
        index = 0

        async def flush() -> None:
            nonlocal accepted, valid, rejected_total
            good = [(i, obj) for i, obj in chunk if not isinstance(obj, _Malformed)]
            prepared = registry.prepare_batch(source, good, runtime.keyring, now=now)
            bad = [(i, obj.reason) for i, obj in chunk if isinstance(obj, _Malformed)] + prepared.rejected
            stored = await store_rows_apart(session, prepared.rows)
            for position, state in stored.refused:
                items = prepared.row_items[position]
                valid -= len(items)
                bad.extend((i, f"数据库无法保存该记录（{state}）") for i in items)
            for i, reason in sorted(bad):
                rejected_total += 1
                if len(rejected) < MAX_LISTED_REJECTIONS:
                    rejected.append(Rejection(index=i, error=reason))
            valid += prepared.valid
            accepted += stored.changed
            chunk.clear()

        async for obj in items:
            chunk.append((index, obj))
            index += 1
            if len(chunk) >= CHUNK:
                await flush()
        await flush()
    return BatchResult(accepted=accepted, unchanged=valid - accepted, rejected=rejected, rejected_total=rejected_total)
