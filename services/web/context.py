"""What every page handler reaches through the app: the services' clients, templates, caches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from services.web.cache import TtlCache
from services.web.rendering import Pages
from services.web.upstreams import Category, ResolvedCode, Upstreams
from services.web.work_session import SessionCodec, WorkSession
from shared.settings import Settings


@dataclass
class Web:
    settings: Settings
    upstreams: Upstreams
    pages: Pages
    # Signed-in sessions (services/web/work_session.py), sealed with a key from the web tier's secret.
    sessions: SessionCodec
    # A code's owner and the categories: read on every scan, changed rarely.
    codes: TtlCache[ResolvedCode | None] = field(default_factory=lambda: TtlCache(60.0))
    categories: TtlCache[list[Category]] = field(default_factory=lambda: TtlCache(600.0, 4))
    # Public boards and the region tree: the same for everyone, recomputed at most once a minute.
    public: TtlCache[object] = field(default_factory=lambda: TtlCache(60.0, 512))
    # Gets a fresh access token for a session about to run out (the OpenID Connect sign-in); None
    # where sessions cannot be refreshed (a development sign-in), which then end with their token.
    refresher: Callable[[WorkSession], Awaitable[WorkSession | None]] | None = None


def web_of(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]
