"""The citizen's network address, taken out of the request before anything can log or trace it.

Intake's flood limits count requests per source. Behind the web tier every request would come
from the web tier's own address, so one busy station's kiosk would limit a whole city; the web
tier passes the citizen's address on to intake (as a trusted proxy, with the shared proxy secret)
and nowhere else. This wrapper sits outside everything else in the app: it keeps the address in
the request's state for that one purpose and removes it, the forwarding headers and the headers
that describe the device from what the tracing middleware, the access metrics and the handlers see.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.client_source import ADDRESS_HEADERS, describes_device

STATE_KEY = "minyi_citizen_address"


class CitizenAddress:
    def __init__(self, app: ASGIApp, *, trust_forwarded_for: bool = False) -> None:
        self.app = app
        self.trust_forwarded_for = trust_forwarded_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = ""
        kept: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            lower = name.lower()
            if lower in ADDRESS_HEADERS:
                if self.trust_forwarded_for and lower == b"x-forwarded-for":
                    # The ingress appends the address it saw; anything before that the client wrote itself.
                    address = value.decode("latin-1").split(",")[-1].strip() or address
                continue
            if describes_device(lower):
                continue
            kept.append((name, value))
        if not address and scope.get("client"):
            address = str(scope["client"][0])
        state: dict[str, Any] = dict(scope.get("state") or {})
        state[STATE_KEY] = address or None
        await self.app({**scope, "client": None, "headers": kept, "state": state}, receive, send)


def citizen_address(request: Request) -> str | None:
    value = request.scope.get("state", {}).get(STATE_KEY)
    return value if isinstance(value, str) else None
