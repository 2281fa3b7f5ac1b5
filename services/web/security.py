"""What every page answer carries against the web's usual attacks, and the forms' CSRF tokens.

- Headers: a Content-Security-Policy with no inline script or style (the templates have none;
  scripts and styles come from hashed files), no framing, no MIME sniffing, and a referrer
  policy that keeps receipt codes (which are in follow-up URLs) on this site.
- CSRF: a random value in an HttpOnly, SameSite=Lax cookie and, in every form, a token derived
  from it with the web tier's secret and the time it was made. A forged cross-site POST has
  neither the cookie's value nor a way to compute the token. Citizens have no account, so the
  cookie is all that ties a form to the browser that loaded it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    # Photos previewed before upload and voice notes played back before sending are blob: URLs.
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=(self), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding `PAGE_HEADERS` to every answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in PAGE_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, sending)


# ---- CSRF ----------------------------------------------------------------------------------------

CSRF_COOKIE = "minyi_form"
CSRF_FIELD = "csrf"
# A form may sit open on a phone for a long while before it is sent; after this it is made again.
CSRF_MAX_AGE_SECONDS = 12 * 3600


@dataclass(frozen=True)
class CsrfCheck:
    ok: bool
    expired: bool = False


class Csrf:
    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"minyi-web-csrf\x00" + secret).digest()

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(18)

    def _mac(self, cookie: str, issued: int) -> str:
        digest = hmac.new(self._key, f"{cookie}|{issued}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def token(self, cookie: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        return f"{issued}.{self._mac(cookie, issued)}"

    def check(self, cookie: str | None, token: str | None, now: float | None = None) -> CsrfCheck:
        if not cookie or not token or "." not in token:
            return CsrfCheck(False)
        issued_text, mac = token.split(".", 1)
        if not issued_text.isdigit() or not hmac.compare_digest(mac, self._mac(cookie, int(issued_text))):
            return CsrfCheck(False)
        age = (now if now is not None else time.time()) - int(issued_text)
        if age > CSRF_MAX_AGE_SECONDS or age < -300:
            return CsrfCheck(False, expired=True)
        return CsrfCheck(True)
