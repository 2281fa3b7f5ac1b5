"""What a sign-in in progress keeps between `/login` and `/auth/callback`: the `state`, `nonce` and
PKCE code verifier it sent the provider, and the page to go to after.

They live in the browser, in a short-lived cookie sealed with AES-GCM under a key derived from the
web tier's secret (another key than the session's), HttpOnly, SameSite=Lax (the provider's redirect
back is a top-level GET, which Lax lets through), and sent only to `/auth/callback`. Any replica
finishes a sign-in another one began; nothing is kept in a process.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIGNIN_COOKIE = "minyi_signin"
SIGNIN_COOKIE_PATH = "/auth/callback"
# Long enough to type a password and answer a second factor; a sign-in left longer starts again.
SIGNIN_SECONDS = 10 * 60
_VERSION = b"a1"


@dataclass(frozen=True)
class SignInState:
    state: str
    nonce: str
    verifier: str
    next: str
    started_at: float

    def expired(self, now: float) -> bool:
        return not (-60 <= now - self.started_at <= SIGNIN_SECONDS)


class StateCodec:
    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"minyi-web-signin").derive(secret)
        self._aead = AESGCM(key)

    def seal(self, value: SignInState) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(asdict(value), separators=(",", ":")).encode(), _VERSION)
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode().rstrip("=")

    def open(self, value: str | None, now: float | None = None) -> SignInState | None:
        """The state, or None for a cookie that is missing, altered, not ours or too old."""
        if not value or len(value) > 2000:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            if raw[:2] != _VERSION:
                return None
            state = SignInState(**json.loads(self._aead.decrypt(raw[2:14], raw[14:], _VERSION)))
        except (ValueError, InvalidTag, TypeError):
            return None
        return None if state.expired(time.time() if now is None else now) else state
