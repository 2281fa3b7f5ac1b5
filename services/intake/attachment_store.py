"""Where attachment bytes live: an interface an object store can implement, and files on local disk behind it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

# Dots are left out on purpose: no key can spell "..", and no key can collide with the ".name.tmp" files that
# FileStore writes before renaming.
_KEY = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
_MAX_KEY_LENGTH = 255


@runtime_checkable
class AttachmentStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there; readers see the old bytes or the new, never a mix."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError if there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Forget `key`; nothing happens if it is not there."""
        ...

    async def exists(self, key: str) -> bool:
        ...


def storage_key(attachment_id: str) -> str:
    """The key of an attachment: its id behind a two-character fan-out directory, so no directory grows huge."""
    try:
        canonical = str(uuid.UUID(attachment_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"attachment id is not a UUID: {attachment_id!r}") from None
    return f"{canonical[:2]}/{canonical}"


def validate_key(key: str) -> str:
    """`key` itself if it is a relative path of letters, digits, "_" and "-" segments; ValueError otherwise."""
    if not isinstance(key, str) or len(key) > _MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise ValueError(f"invalid attachment key: {key!r}")
    return key


class FileStore:
    """Attachments as files under one root directory, readable by the owning user only."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = self.root / validate_key(key)
        # The pattern already rules out "..", absolute paths and empty segments; this lexical check (no file system
        # access, so it is fine on the event loop) is the last line of defence should the pattern ever be loosened.
        if os.path.commonpath([os.path.normpath(path), os.path.normpath(self.root)]) != os.path.normpath(self.root):
            raise ValueError(f"invalid attachment key: {key!r}")
        return path

    async def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        await asyncio.to_thread(_write_atomically, path, data)

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            # A fan-out directory or a path through a file is no attachment either.
            raise KeyError(key) from None

    async def delete(self, key: str) -> None:
        path = self.path(key)
        await asyncio.to_thread(_unlink_if_file, path)

    async def exists(self, key: str) -> bool:
        path = self.path(key)
        return await asyncio.to_thread(path.is_file)


def _write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent
    # 0700 directories and 0600 files: attachments are personal data (faces, voices, home addresses in photos).
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 whatever the umask; a unique name in the same directory lets concurrent puts of
    # one key each finish their own file, and keeps os.replace a rename within one file system.
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            # Without fsync a crash right after the rename can leave an empty file under the final name.
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename itself lives in the directory; syncing it makes the new name survive a power loss.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_if_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.is_dir():
            return
        path.unlink()
