"""HTTP API of attachments: a citizen uploads a photo or a recording first, then names it in the report."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import clock, upload_quota
from services.intake.api import UNLIMITED_ROLES, IdempotencyKey, ReportId, RuntimeDep, Viewer, limit_flood, report_for
from services.intake.attachment_store import AttachmentStore, FileStore, storage_key
from services.intake.attachments import (
    ACCEPTED,
    MAX_BYTES,
    MAX_EXPANSION,
    MAX_PIXELS,
    Inflated,
    TooLarge,
    detect,
    strip_photo_metadata,
)
from services.intake.models import IDEMPOTENCY, Attachment
from services.intake.recording_metadata import strip_recording_metadata
from services.intake.upload_form import read_file
from shared import idempotency
from shared.auth import OptionalPrincipal, Principal
from shared.client_source import source_of
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
# How often the sweeper looks for abandoned uploads when it found none the last time.
SWEEP_EVERY = timedelta(minutes=10)
# Photos decoded at once by one process: a 12 MP photo takes 50 MB decoded and twice that while it is turned
# upright, and an intake pod has 512 MiB. Others wait their turn, up to `DECODE_WAIT_SECONDS`.
DECODES_AT_ONCE = 2
DECODE_WAIT_SECONDS = 30.0
_UNSUPPORTED = "仅支持照片（JPEG、PNG、WebP）和语音（AMR、MP3、M4A、WAV、OGG、WebM），请更换文件后重试。"
_TOO_LARGE = "附件过大，照片和语音每个不能超过 10 MB。"
# Serializes the check of the total quota with the insert it allows, across replicas (pg_advisory_xact_lock).
_QUOTA_LOCK = 0x6D696E79_69757071  # "minyiupq"

_FILE_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the photo or recording"}},
}}}}}


class AttachmentCreated(BaseModel):
    id: str
    kind: str
    size: int
    media_type: str


def store(runtime: Runtime) -> AttachmentStore:
    root = runtime.settings.attachments_dir or runtime.settings.state_dir / "attachments"
    return runtime.kept("intake.attachments", lambda: FileStore(root))


def _decodes(runtime: Runtime) -> asyncio.Semaphore:
    return runtime.kept("intake.decodes", lambda: asyncio.Semaphore(DECODES_AT_ONCE))


def _ledger(runtime: Runtime) -> upload_quota.UnclaimedLedger:
    return runtime.kept("intake.unclaimed", lambda: upload_quota.UnclaimedLedger(UNCLAIMED_AFTER))


async def _strip(runtime: Runtime, data: bytes) -> tuple[bytes, str, str]:
    """The upload without its metadata, its kind and its media type; Problem when refused."""
    detected = detect(data)
    if detected is None:
        raise Problem(415, _UNSUPPORTED)
    try:
        if detected.kind == "photo":
            # Location and device data leave with the metadata: the reporter may be anonymous.
            try:
                async with asyncio.timeout(DECODE_WAIT_SECONDS):
                    await _decodes(runtime).acquire()
            except TimeoutError:
                raise Problem(503, "正在处理的照片较多，请稍后再试。", headers={"Retry-After": "10"}) from None
            try:
                data = await asyncio.to_thread(strip_photo_metadata, data, detected)
            finally:
                _decodes(runtime).release()
        else:
            data = await asyncio.to_thread(strip_recording_metadata, data, detected)
    except TooLarge as exc:
        raise Problem(413, str(exc)) from exc
    except Inflated as exc:
        raise Problem(422, str(exc), title="Validation Failed") from exc
    except ValueError as exc:
        raise Problem(415, str(exc)) from exc
    return data, detected.kind, detected.media_type


async def _source_held(runtime: Runtime, session: AsyncSession, source: str) -> list[upload_quota.Held]:
    """The source's uploads (through this process) that no report has claimed yet."""
    ledger = _ledger(runtime)
    held = ledger.held(source, clock.now(runtime))
    if not held:
        return []
    unclaimed = set((await session.scalars(select(Attachment.id).where(
        Attachment.id.in_([h.attachment_id for h in held]), Attachment.report_id.is_(None)))).all())
    ledger.keep(source, unclaimed)
    return [h for h in held if h.attachment_id in unclaimed]


async def _check_quotas(runtime: Runtime, session: AsyncSession, source: str, incoming: int) -> None:
    """Problem 429 when the source's unclaimed uploads would pass its quota, 507 when everyone's would."""
    settings, now = runtime.settings, clock.now(runtime)
    held = await _source_held(runtime, session, source)
    refusal = upload_quota.over_quota(
        sum(h.size for h in held), incoming, settings.unclaimed_upload_bytes_per_source,
        min((h.at for h in held), default=None), now, UNCLAIMED_AFTER, whose="source")
    status = 429
    if refusal is None:
        total, oldest = (await session.execute(
            select(func.coalesce(func.sum(Attachment.size), 0), func.min(Attachment.created_at))
            .where(Attachment.report_id.is_(None)))).one()
        # Swept, not merely expired, frees the space: the sweeper may take one more round to get there.
        refusal = upload_quota.over_quota(int(total), incoming, settings.unclaimed_upload_bytes_total, oldest, now,
                                          UNCLAIMED_AFTER + SWEEP_EVERY, whose="total")
        status = 507
    if refusal is not None:
        log.warning("upload refused: unclaimed uploads over the %s quota", "source" if status == 429 else "total")
        raise Problem(status, refusal.message, headers={"Retry-After": str(refusal.retry_after)})


async def _seen(session: AsyncSession, key: str) -> bool:
    found = await session.scalar(select(IDEMPOTENCY.c.key).where(IDEMPOTENCY.c.scope == "attachments",
                                                                 IDEMPOTENCY.c.key == key))
    return found is not None


def _quota_applies(who: Principal | None) -> bool:
    # Staff at a counter and integrations upload for many people, under their own account.
    return who is None or not who.roles & UNLIMITED_ROLES


@router.post("/attachments", status_code=201, response_model=AttachmentCreated, openapi_extra=_FILE_FORM,
             summary="Upload a photo (jpeg/png/webp) or voice recording (amr/mp3/m4a/wav/ogg/webm), up to 10 MB",
             description=f"Photos up to {MAX_PIXELS // 1_000_000} megapixels are re-encoded without EXIF; "
                         f"recordings lose their tags. A photo that decodes to over {MAX_EXPANSION} times its file "
                         "size (beyond 32 MiB decoded) is refused. Uploads no report claims within a day are "
                         "forgotten; until then they count against the sender's and everyone's quota.",
             responses=problems((409, "the Idempotency-Key was used for another upload"),
                                (413, "larger than 10 MB, or a photo of too many pixels"),
                                (415, "not one of the accepted types (checked by content, not by name), or damaged"),
                                (422, "an empty file, no file, or a photo that inflates far beyond its size"),
                                (429, "too many uploads, or too many unclaimed bytes, from one source"),
                                (503, "too many photos being processed right now; retry"),
                                (507, "the space for unclaimed uploads is full; retry later")))
async def upload(request: Request, who: OptionalPrincipal, runtime: RuntimeDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    # Everything that can refuse without the body runs before a byte of it is read: the form is parsed here, not
    # by FastAPI ahead of the handler, and into memory, not into temporary files.
    await limit_flood(request, runtime, who, "attachments")
    source = source_of(request)
    quota = _quota_applies(who)
    if quota:
        async with runtime.database.sessions() as session:
            # A retry of an upload that was taken gets its first answer below, quota or not.
            if idempotency_key is None or not await _seen(session, idempotency_key):
                await _check_quotas(runtime, session, source, 1)
    data = await read_file(request, field="file", limit=MAX_BYTES, too_large=_TOO_LARGE)
    if not data:
        raise Problem(422, "附件是空文件。", title="Validation Failed")
    data, kind, media_type = await _strip(runtime, data)
    digest = hashlib.sha256(data).hexdigest()
    scope = "attachments"
    retry = idempotency.Request(IDEMPOTENCY, scope, idempotency_key, digest)
    async with runtime.transaction() as session:
        if (replay := await retry.replayed(session)) is not None:
            return replay
        if quota:
            await session.execute(select(func.pg_advisory_xact_lock(_QUOTA_LOCK)))
            await _check_quotas(runtime, session, source, len(data))
        attachment_id = new_id()
        key = storage_key(attachment_id)
        session.add(Attachment(id=attachment_id, kind=kind, media_type=media_type, size=len(data),
                               sha256=digest, storage_key=key))
        await session.flush()
        # Bytes before the commit: a row never points at a file that is not there.
        await store(runtime).put(key, data)
        if quota:
            # Noted before the commit, while the lock keeps the source's next upload waiting; should the commit
            # fail, the database knows no such upload and the next check drops it.
            _ledger(runtime).add(source, upload_quota.Held(attachment_id, len(data), clock.now(runtime)))
        out = AttachmentCreated(id=attachment_id, kind=kind, size=len(data), media_type=media_type).model_dump()
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
            await asyncio.sleep(SWEEP_EVERY.total_seconds())

    return unclaimed_attachments
