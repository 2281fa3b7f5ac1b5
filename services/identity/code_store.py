"""QR codes (亮码) against the database: the signing secret, issuing, revoking, resolving.

Resolving is on every citizen's path, so it is cheap in order: the HMAC check refuses a forged or
mistyped code without any I/O, then a small in-process TTL cache answers repeated scans, and only
then one primary-key read of the `codes` projection, which holds the name and region copied from
the deputy or station. Whoever changes those rows (issue, revoke, rename) invalidates this
process's cache after the commit; other replicas see the change within `CACHE_TTL_SECONDS`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.identity.codes import (
    SECRET_MIN_BYTES,
    CodeKind,
    CodeSigner,
    InvalidCode,
    TtlCache,
    code_url,
)
from services.identity.models import Code
from shared.secret_files import ensure_dev_secret
from shared.service import Runtime
from shared.settings import Settings

CACHE_TTL_SECONDS = 30.0
CACHE_MAX_ENTRIES = 10_000
_STATE_KEY = "identity.codes"


@dataclass(frozen=True)
class Resolution:
    kind: CodeKind
    id: str
    name: str
    region_code: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "region_code": self.region_code}


@dataclass
class CodeBook:
    signer: CodeSigner
    cache: TtlCache[str, Resolution | None]
    public_base_url: str

    def url(self, code: str) -> str:
        return code_url(self.public_base_url, code)


def ensure_dev_code_secret(path: Path) -> bytes:
    """Load the development code secret, creating it (mode 0600) on first use."""
    return ensure_dev_secret(path, lambda: secrets.token_bytes(SECRET_MIN_BYTES))


def signer_from_settings(settings: Settings) -> CodeSigner:
    """The operator's secret file (raw bytes), or with MINYI_DEV_SECRETS a development one under MINYI_HOME."""
    path, dev = settings.secret_file("code_secret_file", settings.dev_code_secret_file)
    if dev:
        return CodeSigner.from_secret(ensure_dev_code_secret(path))
    secret = path.read_bytes()
    if len(secret) < SECRET_MIN_BYTES:
        raise RuntimeError(f"MINYI_CODE_SECRET_FILE ({path}) must hold at least {SECRET_MIN_BYTES} bytes")
    return CodeSigner.from_secret(secret)


def codebook(runtime: Runtime) -> CodeBook:
    """This process's signer and cache, made on first use (reading the secret is I/O, and
    generating the docs builds every service without ever resolving a code)."""
    book = runtime.state.get(_STATE_KEY)
    if book is None:
        book = CodeBook(
            signer=signer_from_settings(runtime.settings),
            cache=TtlCache(ttl_seconds=CACHE_TTL_SECONDS, max_entries=CACHE_MAX_ENTRIES, clock=time.monotonic),
            public_base_url=runtime.settings.public_base_url,
        )
        runtime.state[_STATE_KEY] = book
    return book  # type: ignore[no-any-return]


async def resolve(runtime: Runtime, text: str) -> Resolution | None:
    """What a code leads to, or None for a forged, malformed or revoked code."""
    book = codebook(runtime)
    try:
        code = book.signer.verify(text)
    except InvalidCode:
        return None
    found, cached = book.cache.get(code)
    if found:
        return cached
    generation = book.cache.generation
    async with runtime.database.sessions() as session:
        row = (await session.execute(
            select(Code.kind, Code.target_id, Code.name, Code.region_code)
            .where(Code.code == code, Code.revoked_at.is_(None))
        )).one_or_none()
    value = Resolution(row.kind, row.target_id, row.name, row.region_code) if row else None
    book.cache.put(code, value, generation=generation)
    return value


def _invalidate_after_commit(runtime: Runtime, session: AsyncSession, codes: Sequence[str]) -> None:
    if not codes:
        return
    cache = codebook(runtime).cache
    # Now, so a lookup already under way does not cache what it read; and again after the commit,
    # so nothing read between now and then outlives the change.
    cache.discard(*codes)

    def after_commit(_session: Session) -> None:
        cache.discard(*codes)

    event.listen(session.sync_session, "after_commit", after_commit, once=True)


async def live_code(session: AsyncSession, kind: CodeKind, target_id: str) -> Code | None:
    return await session.scalar(
        select(Code).where(Code.kind == kind, Code.target_id == target_id, Code.revoked_at.is_(None))
    )


async def revoke(runtime: Runtime, session: AsyncSession, kind: CodeKind, target_id: str) -> list[str]:
    """Revoke the live code of a deputy or station in `session`'s transaction; the codes revoked."""
    revoked = list((await session.scalars(
        update(Code)
        .where(Code.kind == kind, Code.target_id == target_id, Code.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(Code.code)
    )).all())
    _invalidate_after_commit(runtime, session, revoked)
    return revoked


async def issue(runtime: Runtime, session: AsyncSession, kind: CodeKind, target_id: str, name: str,
                region_code: str, issue_key: str | None = None) -> str:
    """Revoke the live code, if any, and issue a new one. The caller holds the target's row lock,
    which keeps two issues for one target (and a rename) from interleaving."""
    await revoke(runtime, session, kind, target_id)
    code = codebook(runtime).signer.issue()
    session.add(Code(code=code, kind=kind, target_id=target_id, name=name, region_code=region_code,
                     issue_key=issue_key))
    await session.flush()
    return code


async def issued_with_key(session: AsyncSession, kind: CodeKind, target_id: str, issue_key: str) -> Code | None:
    return await session.scalar(
        select(Code).where(Code.kind == kind, Code.target_id == target_id, Code.issue_key == issue_key)
    )


async def sync_target(runtime: Runtime, session: AsyncSession, kind: CodeKind, target_id: str, name: str,
                      region_code: str) -> None:
    """Copy a deputy's or station's new name and region into its live codes, in the caller's
    transaction, so a scan never shows a name the directory no longer has."""
    changed = list((await session.scalars(
        update(Code)
        .where(Code.kind == kind, Code.target_id == target_id, Code.revoked_at.is_(None),
               or_(Code.name != name, Code.region_code != region_code))
        .values(name=name, region_code=region_code)
        .returning(Code.code)
    )).all())
    _invalidate_after_commit(runtime, session, changed)

