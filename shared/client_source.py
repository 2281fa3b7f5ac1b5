"""The caller's network address, replaced by a pseudonym before any code, log or trace sees it.

Citizens report anonymously; an address kept anywhere (an access log, a span attribute, a
row) would undo that. This wrapper sits outside everything else in the app, so the address
reaches neither the tracing middleware nor the handlers: they get `scope["client"] = None`
and, for flood control, a keyed hash that changes with every process start.

Headers that describe the device (user agent, client hints, WeChat's own) go the same way.

Whose address counts: the connection's; behind an ingress (`trust_forwarded_for`) the last
`X-Forwarded-For` entry; and for the web tier, which calls on citizens' behalf, the
`X-Minyi-Client-Address` it names next to the right `X-Minyi-Proxy-Secret` (shared/proxy.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.proxy import ADDRESS_HEADER, SECRET_HEADER

STATE_KEY = "minyi_source"
# Headers a proxy adds with the client's address; dropped so the handlers cannot read them either.
ADDRESS_HEADERS = frozenset({b"x-forwarded-for", b"x-real-ip", b"forwarded", b"true-client-ip",
                              b"cf-connecting-ip"})
# Headers that describe the caller's device (a WeChat user agent names the phone model and OS
# build). No service needs them, and on a span or in a log next to an anonymous report's trace
# they would tell who sent it; they are dropped with the address.
_DEVICE_HEADERS = frozenset({b"user-agent", b"x-requested-with", b"x-wechat-key", b"x-wechat-uin",
                             b"x-client-data", b"device-memory", b"dpr", b"viewport-width", b"width"})
_DEVICE_PREFIXES = (b"sec-ch-", b"x-wx-", b"x-device-")
_PROXY_SECRET = SECRET_HEADER.lower().encode()
_PROXY_ADDRESS = ADDRESS_HEADER.lower().encode()
# An address is an IPv6 literal at most; anything longer is not one, and is not worth hashing.
_MAX_ADDRESS = 64

ProxySecret = Callable[[], bytes | None]


def describes_device(lower_name: bytes) -> bool:
    return lower_name in _DEVICE_HEADERS or lower_name.startswith(_DEVICE_PREFIXES)


class ClientPseudonym:
    def __init__(self, app: ASGIApp, *, trust_forwarded_for: bool = False, key: bytes | None = None,
                 proxy_secret: ProxySecret | bytes | None = None) -> None:
        self.app = app
        self.trust_forwarded_for = trust_forwarded_for
        self._key = key or os.urandom(32)
        # A callable: the service loads its secret when it starts, after this wrapper is built.
        self._proxy_secret: ProxySecret = proxy_secret if callable(proxy_secret) else (lambda: proxy_secret)

    def pseudonym(self, address: str) -> str:
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:24]

    def _proxied(self, shown: bytes | None, named: bytes | None) -> str:
        """The citizen's address a trusted proxy names, or "" when the proxy is not trusted."""
        secret = self._proxy_secret()
        if not secret or shown is None or named is None or not hmac.compare_digest(shown.strip(), secret):
            return ""
        address = named.decode("latin-1").strip()
        return address if len(address) <= _MAX_ADDRESS else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        forwarded = ""
        proxy: dict[bytes, list[bytes]] = {_PROXY_SECRET: [], _PROXY_ADDRESS: []}
        kept: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            lower = name.lower()
            if lower in ADDRESS_HEADERS:
                if self.trust_forwarded_for and lower == b"x-forwarded-for":
                    # Our proxy appends the address it saw; anything before that the client wrote itself.
                    forwarded = value.decode("latin-1").split(",")[-1].strip() or forwarded
                continue
            if lower in proxy:
                proxy[lower].append(value)
                continue
            if describes_device(lower):
                continue
            kept.append((name, value))
        # Two of either header: which one the proxy wrote cannot be told, so neither is believed.
        shown, named = (values[0] if len(values) == 1 else None for values in proxy.values())
        address = self._proxied(shown, named) or forwarded
        if not address and scope.get("client"):
            address = str(scope["client"][0])
        state: dict[str, Any] = dict(scope.get("state") or {})
        state[STATE_KEY] = self.pseudonym(address) if address else "unknown"
        await self.app({**scope, "client": None, "headers": kept, "state": state}, receive, send)


def source_of(request: Request) -> str:
    """The caller's pseudonym: stable within one process, meaningless outside it."""
    return str(request.scope.get("state", {}).get(STATE_KEY, "unknown"))
