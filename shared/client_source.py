"""The caller's network address, replaced by a pseudonym before any code, log or trace sees it.

Citizens report anonymously; an address kept anywhere (an access log, a span attribute, a
row) would undo that. This wrapper sits outside everything else in the app, so the address
reaches neither the tracing middleware nor the handlers: they get `scope["client"] = None`
and, for flood control, a keyed hash that changes with every process start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

STATE_KEY = "minyi_source"
# Headers a proxy adds with the client's address; dropped so the handlers cannot read them either.
_ADDRESS_HEADERS = frozenset({b"x-forwarded-for", b"x-real-ip", b"forwarded", b"true-client-ip",
                              b"cf-connecting-ip"})


class ClientPseudonym:
    def __init__(self, app: ASGIApp, *, trust_forwarded_for: bool = False, key: bytes | None = None) -> None:
        self.app = app
        self.trust_forwarded_for = trust_forwarded_for
        self._key = key or os.urandom(32)

    def pseudonym(self, address: str) -> str:
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:24]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = ""
        kept: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            if name.lower() in _ADDRESS_HEADERS:
                if self.trust_forwarded_for and name.lower() == b"x-forwarded-for":
                    # Our proxy appends the address it saw; anything before that the client wrote itself.
                    address = value.decode("latin-1").split(",")[-1].strip() or address
                continue
            kept.append((name, value))
        if not address and scope.get("client"):
            address = str(scope["client"][0])
        state: dict[str, Any] = dict(scope.get("state") or {})
        state[STATE_KEY] = self.pseudonym(address) if address else "unknown"
        await self.app({**scope, "client": None, "headers": kept, "state": state}, receive, send)


def source_of(request: Request) -> str:
    """The caller's pseudonym: stable within one process, meaningless outside it."""
    return str(request.scope.get("state", {}).get(STATE_KEY, "unknown"))
