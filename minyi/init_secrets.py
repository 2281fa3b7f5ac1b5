"""`minyi init-secrets DIR`: the secret files a new deployment needs, made once.

Into DIR: the PII keyring (`pii-keys.json`), the QR code signing secret (`code-secret`), the secret the
web tier shows the services to name the citizen it calls for (`proxy-secret`), the web tier's own key
for its form tokens (`web-secret`), a password
for every NATS user (one file per user under `nats/`, which the services read, and `nats-users.conf`,
the server's users and permissions with those passwords in place) and, with `--dev-jwt`, a token
signing key pair for a stack without an identity provider. Every file is new and 0600; one
that exists is kept as it is, so running it again after an upgrade only adds what is missing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from minyi.pii_keys import Refused
from shared.auth import load_signing_key, public_pem
from shared.nats_permissions import Permissions, render
from shared.pii import Keyring, fsync_dir
from shared.proxy import new_proxy_secret
from shared.settings import new_nats_password

Say = Callable[[str], None]

CODE_SECRET_BYTES = 32
PII_KEYS = "pii-keys.json"
CODE_SECRET = "code-secret"
PROXY_SECRET = "proxy-secret"
WEB_SECRET = "web-secret"
NATS_DIR = "nats"
NATS_USERS = "nats-users.conf"
JWT_PRIVATE = "jwt-signing-key.pem"
JWT_PUBLIC = "jwt-public-key.pem"


def _write_new(path: Path, content: bytes) -> bool:
    """Write `content` to a new 0600 file; False (and nothing written) when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True


def nats_permissions(*, grid_platforms: Sequence[str] = (), registry_sources: Sequence[str] = ()
                     ) -> dict[str, Permissions]:
    """Every NATS user with its permissions: the services, one per grid platform and registry source, `ops`."""
    from shared import nats_permissions as wiring

    return wiring.users(wiring.service_specs(), grid_platforms=grid_platforms, registry_sources=registry_sources)


def _read_password(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def init_secrets(directory: Path, *, dev_jwt: bool, users: Mapping[str, Permissions], say: Say) -> int:
    if not directory.is_dir():
        raise Refused(f"{directory}: no such directory")
    made: list[str] = []
    kept: list[str] = []

    def put(relative: str, content: Callable[[], bytes]) -> None:
        path = directory / relative
        (made if not path.exists() and _write_new(path, content()) else kept).append(relative)

    put(PII_KEYS, lambda: Keyring.generate().to_json().encode())
    put(CODE_SECRET, lambda: secrets.token_bytes(CODE_SECRET_BYTES))
    put(PROXY_SECRET, new_proxy_secret)
    put(WEB_SECRET, lambda: secrets.token_bytes(CODE_SECRET_BYTES))
    (directory / NATS_DIR).mkdir(mode=0o700, exist_ok=True)
    for user in users:
        put(f"{NATS_DIR}/{user}", lambda: new_nats_password().encode())
    # Made from the per-user files and the running version's wiring every time, so after an upgrade
    # it has the new permissions and always the passwords the services read.
    passwords = {user: _read_password(directory / NATS_DIR / user) for user in users}
    text = render(users, passwords)
    target = directory / NATS_USERS
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        tmp = directory / f".{NATS_USERS}.tmp"
        tmp.unlink(missing_ok=True)
        _write_new(tmp, text.encode())
        tmp.replace(target)
        made.append(NATS_USERS)
    else:
        kept.append(NATS_USERS)
    if dev_jwt:
        put(JWT_PRIVATE, lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        if JWT_PRIVATE in made or not (directory / JWT_PUBLIC).exists():
            try:
                signing = load_signing_key(directory / JWT_PRIVATE)
            except ValueError as exc:
                raise Refused(str(exc)) from None
            (directory / JWT_PUBLIC).unlink(missing_ok=True)
            put(JWT_PUBLIC, lambda: public_pem(signing))
        else:
            kept.append(JWT_PUBLIC)
    fsync_dir(directory)
    fsync_dir(directory / NATS_DIR)
    if made:
        say(f"{directory}: made {', '.join(made)}")
    if kept:
        say(f"{directory}: kept {', '.join(kept)} (existing files are never overwritten)")
    return 0
