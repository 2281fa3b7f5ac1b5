"""Initial loads of a registry: one large NDJSON or CSV file per request, resumable.

A province's first load is tens of millions of lines. The file is read as it streams in and
stored in chunks, each its own transaction that also records the last line it covers; a load
broken off (network, restart) is re-sent whole with the same `load_id` and the committed lines are
skipped unread. Each chunk is validated and encrypted in a worker thread, or worker processes
(registry_prep.py), while the previous one is written, so PostgreSQL and Python work at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from services.identity import registry_lines
from services.identity.registry_api import EXAMPLE, NDJSON_TYPES, Integration, RuntimeDep, SourcePath, check_source
from services.identity.registry_lines import PreparedLines
from services.identity.registry_load_store import (
    COMPLETE,
    INTERRUPTED,
    Load,
    LoadMoved,
    begin_load,
    commit_chunk,
    end_load,
    get_load,
    rejections,
)
from services.identity.registry_prep import preparer
from shared.errors import Problem
from shared.problems import COMMON, problems
from shared.service import Runtime

router = APIRouter(prefix="/v1", tags=["identity"], responses=COMMON)

# Lines per transaction: large enough that COPY and the set-based merge dominate, small enough
# that a resumed load repeats little.
CHUNK_LINES: Final = 20_000
# The answer lists the first rejected lines up to this many; all of them are kept.
LISTED_REJECTIONS: Final = 1000
# 65 million records of about 250 bytes each, with room to spare; it streams, so size costs no memory.
BODY_LIMIT: Final = 64 * 1024 * 1024 * 1024
CSV_TYPES: Final = frozenset({"text/csv"})
# A file sent by a client that only knows bytes (a generated client) is read as NDJSON.
BINARY_NDJSON: Final = "application/octet-stream"
LOAD_ID_PATTERN: Final = "^[A-Za-z0-9._-]{1,64}$"

LoadIdQuery = Annotated[str | None, Query(pattern=LOAD_ID_PATTERN, description=(
    "the client's name for this load; a re-sent file with the same id skips the lines already committed. "
    "Left out: a new load with a generated id"))]
LoadIdPath = Annotated[str, Path(pattern=LOAD_ID_PATTERN)]


class LoadRejection(BaseModel):
    line: int
    error: str


class LoadProgress(BaseModel):
    load_id: str
    source: str
    state: str
    lines_committed: int
    accepted: int
    unchanged: int
    rejected: int
    rejections: list[LoadRejection]
    created_at: datetime
    updated_at: datetime


class LoadResult(LoadProgress):
    lines_skipped: int
    lines_read: int


async def _lines(request: Request) -> AsyncIterator[tuple[int, bytes]]:
    """The body's lines numbered from 1, blank ones included so numbers match the file's."""
    pending = b""
    number = 0
    async for chunk in request.stream():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            number += 1
            yield number, line
    if pending:
        yield number + 1, pending


async def _progress(runtime: Runtime, load: Load) -> LoadProgress:
    async with runtime.transaction() as session:
        listed = await rejections(session, load.source, load.load_id, LISTED_REJECTIONS)
    return LoadProgress(load_id=load.load_id, source=load.source, state=load.state,
                        lines_committed=load.lines_committed, accepted=load.accepted, unchanged=load.unchanged,
                        rejected=load.rejected, rejections=[LoadRejection(line=n, error=e) for n, e in listed],
                        created_at=load.created_at, updated_at=load.updated_at)


async def _write(runtime: Runtime, load: Load, prepared: PreparedLines) -> Load:
    async with runtime.transaction() as session:
        return await commit_chunk(session, load, through_line=prepared.through_line, rows=prepared.rows,
                                  row_lines=prepared.row_lines, valid=prepared.valid, rejected=prepared.rejected)


@router.post(
    "/registry/{source}/loads",
    response_model=LoadResult,
    summary="Load a registry file (NDJSON or CSV), streamed and committed in chunks, resumable",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-ndjson": {"schema": {"type": "string", "description": "one record per line"}},
        # What client generators can send as a file: read as NDJSON.
        "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                "description": "an NDJSON file's bytes, one record per line"}},
        "text/csv": {"schema": {"type": "string", "description": "a header row of the record's field names, "
                                                                  "then one record per line"},
                     "examples": {"population": {"summary": "two people of a county", "value": (
                         ",".join(EXAMPLE[0]) + "\n"
                         + "".join(",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in r.values())
                                   + "\n" for r in EXAMPLE))}}},
    }}},
    responses=problems((403, "not an integration, or the token's `sources` claim does not name this source"),
                       (409, "another request is loading the same `load_id`; nothing of this one was committed "
                             "past that point"),
                       (415, "neither application/x-ndjson, application/octet-stream (read as NDJSON) nor text/csv"),
                       (422, "the CSV header lacks a required field")),
)
async def post_load(source: SourcePath, request: Request, who: Integration, runtime: RuntimeDep,
                    load_id: LoadIdQuery = None) -> LoadResult:
    check_source(who, source)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in NDJSON_TYPES and media_type not in CSV_TYPES and media_type != BINARY_NDJSON:
        raise Problem(415, "请以 application/x-ndjson（每行一条）或 text/csv（首行为字段名）发送文件。")
    is_csv = media_type in CSV_TYPES
    async with runtime.transaction() as session:
        load = await begin_load(session, source, load_id or uuid.uuid4().hex)
    skipped = load.lines_committed
    header: tuple[str, ...] | None = None
    chunk: list[tuple[int, bytes]] = []
    last_line = read = 0
    flushed = skipped
    writing: asyncio.Task[Load] | None = None

    async def flush() -> None:
        nonlocal writing, load, flushed
        flushed = last_line
        prepared = await preparer(runtime.state, runtime.settings.registry_load_workers).prepare(
            source, header, list(chunk), last_line, runtime.keyring, datetime.now(UTC))
        chunk.clear()
        if writing is not None:
            load = await writing
            writing = None
        writing = asyncio.create_task(_write(runtime, load, prepared))

    try:
        async for number, line in _lines(request):
            last_line = number
            if is_csv and number == 1:
                try:
                    header = registry_lines.csv_header(line)
                except registry_lines.LineError as exc:
                    raise Problem(422, f"第1行：{exc.reason}", title="Validation Failed") from None
                continue
            if number <= skipped:
                continue
            read += 1
            chunk.append((number, line))
            if len(chunk) >= CHUNK_LINES:
                await flush()
        if last_line > flushed:
            await flush()
        if writing is not None:
            load = await writing
            writing = None
    except LoadMoved:
        raise Problem(409, f"装载 {load.load_id} 正由另一请求写入，本请求已停止。", title="Conflict") from None
    except BaseException:
        # The chunk being written is whole and stays; what was read after it is read again on resume.
        if writing is not None:
            with contextlib.suppress(Exception):
                load = await writing
        with contextlib.suppress(Exception):
            async with runtime.transaction() as session:
                await end_load(session, load, INTERRUPTED)
        raise
    async with runtime.transaction() as session:
        load = await end_load(session, load, COMPLETE)
    progress = await _progress(runtime, load)
    return LoadResult(**progress.model_dump(), lines_skipped=skipped, lines_read=read)


@router.get(
    "/registry/{source}/loads/{load_id}",
    response_model=LoadProgress,
    summary="Where a registry load stands: lines committed, records accepted, unchanged and rejected",
    responses=problems((403, "not an integration, or the token's `sources` claim does not name this source"),
                       (404, "no load of this id for this source")),
)
async def get_load_progress(source: SourcePath, load_id: LoadIdPath, who: Integration,
                            runtime: RuntimeDep) -> LoadProgress:
    check_source(who, source)
    async with runtime.transaction() as session:
        load = await get_load(session, source, load_id)
    if load is None:
        raise Problem(404, f"没有数据来源 {source} 的装载 {load_id}。")
    return await _progress(runtime, load)
