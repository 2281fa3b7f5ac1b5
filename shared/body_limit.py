"""Refuse request bodies over a size limit before reading them whole (413 problem+json).

A declared Content-Length over the limit is refused at once; a chunked body is counted as it
arrives and refused the moment it passes the limit, so an endless upload costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PROBLEM_JSON, TYPE_BASE


def readable_size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


# What a refusal says: (body, content type) for the path and the limit; problem+json by default.
Refusal = Callable[[str, int], tuple[bytes, str]]


def problem_refusal(path: str, limit: int) -> tuple[bytes, str]:
    body = json.dumps({
        "type": TYPE_BASE + "content-too-large", "title": "Content Too Large", "status": 413,
        "detail": f"提交的内容过大，上限为 {readable_size(limit)}。", "instance": path,
    }, ensure_ascii=False).encode()
    return body, PROBLEM_JSON


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int,
                 refusal: Refusal = problem_refusal) -> None:
        self.app = app
        self.refusal = refusal
        # Longest prefix first, so `/v1/attachments` wins over `/v1`.
        self.limits = sorted(limits.items(), key=lambda kv: -len(kv[0]))
        self.default = default

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(send, scope["path"], limit)
                    return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answer now and tell the app the client went away: an exception raised here would
                    # reach the app's own error handling first and come out as some other status.
                    refused = True
                    if not started:
                        await self._refuse(send, scope["path"], limit)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already; whatever the app answers to the disconnect is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, watched)

    async def _refuse(self, send: Send, path: str, limit: int) -> None:
        body, content_type = self.refusal(path, limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
