"""Development secrets made on first use: written whole, published once, shared by every process."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def ensure_dev_secret(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of `path`, creating it (mode 0600) from `make()` on first use.

    Services starting together may race here: the secret is written whole to a temp file and
    published with a link, which fails for the loser, who then reads the winner's secret.
    """
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = make()
    # mkstemp creates the file 0600 from the start, so the secret is never readable by others.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
        except OSError:
            # Some filesystems (certain bind mounts) have no hard links; replace is still atomic there.
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return secret
