"""Who is signed in, for the pages of the workbench and the console.

`require(request, roles)` is what a page handler calls first: it opens the session cookie, ends it
when idle, refreshes its access token when it is about to run out (through `Web.refresher`, which
the OpenID Connect sign-in provides), and answers with the session or an exception the app turns
into a page: `SignInNeeded` sends the person to sign in and back to this page; `NotAllowed` is a
403 page that says which role the page is for. Pages add no access of their own beyond the role
gate: what a person may see and do is what the services answer for their token.

A service answering 401 for the token (expired, revoked, keys rotated) also ends the session and
sends the person to sign in again (see `error_pages`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.web.context import web_of
from services.web.work_session import MAX_AGE_SECONDS, SESSION_COOKIE, SessionCodec, WorkSession, touched

_STATE_KEY = "minyi_session_update"
_CLEAR = "clear"


class SignInNeeded(Exception):
    def __init__(self, next_path: str, *, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


@dataclass
class NotAllowed(Exception):
    roles: tuple[str, ...]


def here(request: Request) -> str:
    """This page's path and query, to come back to after signing in."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def current(request: Request) -> WorkSession | None:
    """The signed-in person, or None (no cookie, a cookie that does not open, an idle session)."""
    web = web_of(request)
    session = web.sessions.open(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    now = time.time()
    if session.idle(now):
        forget(request)
        return None
    if session.needs_refresh(now):
        refreshed = await web.refresher(session) if web.refresher is not None else None
        if refreshed is None:
            if session.expires_at <= now:
                forget(request)
                return None
        else:
            session = refreshed
            remember(request, session)
    update = touched(session, now)
    if update is not None:
        session = update
        remember(request, session)
    return session


async def require(request: Request, roles: Iterable[str]) -> WorkSession:
    """The signed-in person holding one of `roles`; otherwise SignInNeeded or NotAllowed."""
    session = await current(request)
    wanted = tuple(roles)
    if session is None:
        raise SignInNeeded(here(request), expired=SESSION_COOKIE in request.cookies)
    if not session.has_any(wanted):
        raise NotAllowed(wanted)
    return session


def remember(request: Request, session: WorkSession) -> None:
    """Write `session` into the cookie with this answer (after a refresh or a sighting)."""
    request.scope.setdefault("state", {})[_STATE_KEY] = session


def forget(request: Request) -> None:
    """Take the session cookie away with this answer."""
    request.scope.setdefault("state", {})[_STATE_KEY] = _CLEAR


class SessionWriter:
    """ASGI middleware that writes what `remember`/`forget` asked for into the answer's cookies.

    Whether the session's cookie changes with a page (a refresh, a sighting, an idle session ended)
    is decided while the page is made, so the cookie is written here rather than by every handler.
    """

    def __init__(self, app: ASGIApp, *, codec: SessionCodec, secure: bool) -> None:
        self.app = app
        self.codec = codec
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                update = (scope.get("state") or {}).get(_STATE_KEY)
                if update is not None:
                    cookie = self.cookie(scope, None if update == _CLEAR else update)
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, sending)

    def cookie(self, scope: Scope, session: WorkSession | None) -> bytes:
        https = self.secure or scope.get("scheme") == "https"
        flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https else "")
        if session is None:
            return f"{SESSION_COOKIE}=; Max-Age=0{flags}".encode()
        return f"{SESSION_COOKIE}={self.codec.seal(session)}; Max-Age={MAX_AGE_SECONDS}{flags}".encode()
