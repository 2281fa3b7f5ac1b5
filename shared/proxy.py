"""The secret a trusted proxy (the web tier) shows to name the citizen it calls for.

The web tier renders pages for citizens and calls the services over HTTP, so every request it
makes comes from its own address: flood control would count all citizens as one. With this
secret it may say whose request it is (`X-Minyi-Client-Address`); `shared/client_source.py`
believes that header only next to the right `X-Minyi-Proxy-Secret`, and removes both before any
handler, log or trace sees them.

The secret is text, since it travels in a header: printable ASCII, at least 32 characters.
"""

from __future__ import annotations

import secrets

from shared.secret_files import ensure_dev_secret
from shared.settings import Settings

SECRET_HEADER = "X-Minyi-Proxy-Secret"
ADDRESS_HEADER = "X-Minyi-Client-Address"
MIN_CHARS = 32


def new_proxy_secret() -> bytes:
    return secrets.token_urlsafe(32).encode()


def load_proxy_secret(settings: Settings) -> bytes | None:
    """The operator's secret file (MINYI_PROXY_SECRET_FILE), or with MINYI_DEV_SECRETS a development
    one made under MINYI_HOME; None when neither is set, and then no proxy is trusted."""
    if settings.proxy_secret_file is None and not settings.dev_secrets:
        return None
    path, dev = settings.secret_file("proxy_secret_file", settings.dev_proxy_secret_file)
    try:
        raw = ensure_dev_secret(path, new_proxy_secret) if dev else path.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"MINYI_PROXY_SECRET_FILE ({path}): {exc.strerror or exc}") from None
    secret = raw.strip()
    if len(secret) < MIN_CHARS or not all(0x21 <= b <= 0x7E for b in secret):
        raise RuntimeError(f"MINYI_PROXY_SECRET_FILE ({path}) must hold at least {MIN_CHARS} printable ASCII"
                           " characters (it is sent as an HTTP header)")
    return secret
