"""HTTP API of attachments: a citizen uploads a photo or a recording first, then names it in the report."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Path, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select

from services.intake import clock
from services.intake.api import IdempotencyKey, ReportId, RuntimeDep, Viewer, limit_flood, report_for
from services.intake.attachment_store import AttachmentStore, FileStore, storage_key
from services.intake.attachments import ACCEPTED, MAX_BYTES, detect, strip_photo_metadata
from services.intake.models import IDEMPOTENCY, Attachment
from shared import idempotency
from shared.auth import OptionalPrincipal
from shared.errors import Problem, not_found
from shared.ids import new_id
from shared.problems import problems
from shared.service import Runtime

log = logging.getLogger("minyi.intake.attachments")

router = APIRouter(prefix="/v1", tags=["intake"], responses=problems(400, 401, 422))

# Room for the multipart framing around a file of the largest allowed size.
UPLOAD_LIMIT = MAX_BYTES + 64 * 1024
# An upload no report has claimed by then was abandoned (the citizen gave up or the report failed).
UNCLAIMED_AFTER = timedelta(hours=24)
_UNSUPPORTED = "仅支持照片（JPEG、PNG、WebP）和语音（AMR、MP3、M4A、WAV、OGG、WebM），请更换文件后重试。"


class AttachmentCreated(BaseModel):
    id: str
    kind: str
    size: int
    media_type: str


def store(runtime: Runtime) -> AttachmentStore:
    found: AttachmentStore | None = runtime.state.get("intake.attachments")
    if found is None:
        root = runtime.settings.attachments_dir or runtime.settings.state_dir / "attachments"
        found = FileStore(root)
        runtime.state["intake.attachments"] = found
    return found


@router.post("/attachments", status_code=201, response_model=AttachmentCreated,
             summary="Upload a photo (jpeg/png/webp) or voice recording (amr/mp3/m4a/wav/ogg/webm), up to 10 MB",
             responses=problems((413, "larger than 10 MB"),
                                (415, "not one of the accepted types (checked by content, not by name)"),
                                (422, "an empty file"), (429, "too many uploads from one source")))
async def upload(request: Request, who: OptionalPrincipal, runtime: RuntimeDep,
                 file: Annotated[UploadFile, File(description="the photo or recording")],
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    await limit_flood(request, runtime, who, "attachments")
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Problem(413, "附件过大，照片和语音每个不能超过 10 MB。")
    if not data:
        raise Problem(422, "附件是空文件。", title="Validation Failed")
    detected = detect(data)
    if detected is None:
        raise Problem(415, _UNSUPPORTED)
    if detected.kind == "photo":
        try:
            # Location and device data leave with the metadata: the reporter may be anonymous.
            data = await asyncio.to_thread(strip_photo_metadata, data, detected)
        except ValueError as exc:
            raise Problem(415, str(exc)) from exc
    digest = hashlib.sha256(data).hexdigest()
    scope = "attachments"
    retry = idempotency.Request(IDEMPOTENCY, scope, idempotency_key, digest)
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        attachment_id = new_id()
        key = storage_key(attachment_id)
        session.add(Attachment(id=attachment_id, kind=detected.kind, media_type=detected.media_type, size=len(data),
                               sha256=digest, storage_key=key))
        await session.flush()
        # Bytes before the commit: a row never points at a file that is not there.
        await store(runtime).put(key, data)
        out = AttachmentCreated(id=attachment_id, kind=detected.kind, size=len(data),
                                media_type=detected.media_type).model_dump()
        return await retry.answer(session, out, 201)


@router.get("/reports/{report_id}/attachments/{attachment_id}", response_class=Response,
            summary="An attachment of a report, for those who handle or supervise it",
            responses={200: {"content": {kind.media_type: {} for kind in ACCEPTED}, "description": "the file"},
                       **problems((404, "unknown report or attachment"))})
async def download(report_id: ReportId, attachment_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
                   who: Viewer, runtime: RuntimeDep) -> Response:
    async with runtime.database.sessions() as session:
        await report_for(session, who, report_id, handle=False)
        attachment = await session.scalar(select(Attachment).where(Attachment.id == attachment_id,
                                                                    Attachment.report_id == report_id))
    if attachment is None:
        raise not_found("附件不存在。")
    try:
        data = await store(runtime).get(attachment.storage_key)
    except KeyError as exc:
        log.error("attachment %s has a row but no stored bytes", attachment.id)
        raise not_found("附件文件已丢失。") from exc
    return Response(data, media_type=attachment.media_type, headers={"Cache-Control": "private, no-store"})


async def sweep_unclaimed(runtime: Runtime, batch: int = 500) -> int:
    """Forget uploads no report claimed within a day: their rows, then their bytes."""
    cutoff = clock.now(runtime) - UNCLAIMED_AFTER
    async with runtime.transaction() as session:
        rows = (await session.execute(
            select(Attachment.id, Attachment.storage_key)
            .where(Attachment.report_id.is_(None), Attachment.created_at < cutoff)
            .limit(batch).with_for_update(skip_locked=True)
        )).all()
        if not rows:
            return 0
        await session.execute(delete(Attachment).where(Attachment.id.in_([r.id for r in rows])))
    for row in rows:
        await store(runtime).delete(row.storage_key)
    return len(rows)


def sweeper(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    async def unclaimed_attachments() -> None:
        while True:
            try:
                removed = await sweep_unclaimed(runtime)
                if removed:
                    log.info("forgot %d unclaimed attachments", removed)
                    continue
            except Exception as exc:
                log.warning("sweeping unclaimed attachments failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(600)

    return unclaimed_attachments
