"""Signed-in sessions of deputies, station staff, units and congress staff, kept in the browser.

The session is an AES-GCM encrypted, HttpOnly, SameSite=Lax cookie (Secure behind TLS) holding who
the person is (the claims the services will see), the access token the pages pass on as the Bearer
token, the refresh token where the provider gave one, and when the person was last seen. Nothing
is kept in the web process: any replica reads any session, and a restart signs nobody out. The
key is derived from the web tier's secret (`MINYI_WEB_SECRET_FILE`), so every replica shares it.

A session ends when its idle time passes (`IDLE_SECONDS`), when it is older than `MAX_AGE_SECONDS`,
on sign-out, or when a service answers 401 for its token (the person signs in again and comes
back to the page they were on).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from services.web.sealed import Sealer

SESSION_COOKIE = "minyi_session"
# A desk left alone this long signs out; a phone that comes back after lunch signs in again.
IDLE_SECONDS = 30 * 60
# However busy, a session is made again at least once a working day.
MAX_AGE_SECONDS = 12 * 3600
# Refresh the access token when it has less than this left, so a form sent now is not refused.
REFRESH_MARGIN_SECONDS = 120
# The person is "seen" again at most this often: each sighting rewrites the cookie.
TOUCH_EVERY_SECONDS = 60
_VERSION = b"s1"

WORK_ROLES = frozenset({"deputy", "station_staff", "unit"})
CONSOLE_ROLES = frozenset({"npc_staff", "admin"})


@dataclass(frozen=True)
class WorkSession:
    """One signed-in person: the claims the services see and the tokens the pages act with."""

    sub: str
    roles: tuple[str, ...]
    region: str
    access_token: str
    expires_at: float  # the access token's exp
    deputy_id: str | None = None
    unit_id: str | None = None
    name: str = ""  # what the pages call the person (the provider's `name`, else `sub`)
    refresh_token: str | None = None
    created_at: float = field(default_factory=time.time)
    seen_at: float = field(default_factory=time.time)

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(set(self.roles).intersection(roles))

    @property
    def bearer(self) -> dict[str, str]:
        """The header the pages send to the services on this person's behalf."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def home(self) -> str:
        """Where this person lands after signing in: the workbench or the console."""
        return "/console" if self.has_any(CONSOLE_ROLES) and not self.has_any(WORK_ROLES) else "/work"

    def idle(self, now: float) -> bool:
        return now - self.seen_at > IDLE_SECONDS or now - self.created_at > MAX_AGE_SECONDS

    def needs_refresh(self, now: float) -> bool:
        return self.expires_at - now < REFRESH_MARGIN_SECONDS


class SessionCodec:
    """Seals a session into a cookie value and opens it again; a cookie that was altered, made
    with another key or is not one of ours opens as None."""

    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(secret, purpose=b"minyi-web-session", version=_VERSION, max_chars=4000)

    def seal(self, session: WorkSession) -> str:
        return self._sealer.seal(asdict(session))

    def open(self, value: str | None) -> WorkSession | None:
        data = self._sealer.open(value)
        if data is None:
            return None
        try:
            return WorkSession(**{**data, "roles": tuple(data["roles"])})
        except (TypeError, KeyError):
            return None


def secure_cookie(request: Request, always: bool) -> bool:
    return always or request.url.scheme == "https"


def write_session(response: Response, request: Request, codec: SessionCodec, session: WorkSession, *,
                  secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, codec.seal(session), httponly=True, samesite="lax", path="/",
                        secure=secure_cookie(request, secure), max_age=MAX_AGE_SECONDS)


def clear_session(response: Response, request: Request, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=secure_cookie(request, secure))


def touched(session: WorkSession, now: float) -> WorkSession | None:
    """The session seen again now, or None when rewriting the cookie is not yet worth it."""
    if now - session.seen_at < TOUCH_EVERY_SECONDS:
        return None
    return replace(session, seen_at=now)


def login_path(next_path: str) -> str:
    """Where to send someone who must sign in, to come back to `next_path` after."""
    return "/login?next=" + quote(safe_next(next_path), safe="/")


def safe_next(value: str | None, default: str = "/work") -> str:
    """A path on this site to go to after signing in; anything else (another host, a scheme,
    `//evil`) is replaced by `default`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 32 for c in value):
        return default
    return value
