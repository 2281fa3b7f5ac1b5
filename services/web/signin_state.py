"""What a sign-in in progress keeps between `/login` and `/auth/callback`: the `state`, `nonce` and
PKCE code verifier it sent the provider, and the page to go to after.

They live in the browser, in a short-lived cookie sealed with AES-GCM under a key derived from the
web tier's secret (another key than the session's), HttpOnly, SameSite=Lax (the provider's redirect
back is a top-level GET, which Lax lets through), and sent only to `/auth/callback`. Any replica
finishes a sign-in another one began; nothing is kept in a process.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from services.web.sealed import Sealer

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
        self._sealer = Sealer(secret, purpose=b"minyi-web-signin", version=_VERSION, max_chars=2000)

    def seal(self, value: SignInState) -> str:
        return self._sealer.seal(asdict(value))

    def open(self, value: str | None, now: float | None = None) -> SignInState | None:
        """The state, or None for a cookie that is missing, altered, not ours or too old."""
        data = self._sealer.open(value)
        if data is None:
            return None
        try:
            state = SignInState(**data)
        except TypeError:
            return None
        return None if state.expired(time.time() if now is None else now) else state
