"""Core NATS request/reply for other services: what a QR code (亮码) leads to.

Request on `identity.codes.resolve`: `{"code": "..."}`, or the bare code. Reply (JSON):
`{kind, id, name, region_code}`, the first fields of `GET /v1/codes/{code}` (what intake needs to
aim a report; the page's extras are read over HTTP), or `{"error": "not_found"}` for a forged, malformed or revoked
code, `{"error": "bad_request"}` when the request names no code, `{"error": "unavailable"}` when
the database cannot be read (ask again). Replicas share the requests through one queue group.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.message import StreamMessage
from pydantic import BaseModel, Field

from services.identity import code_store
from services.identity.codes import code_from_request
from shared.service import Runtime

log = logging.getLogger("minyi.identity.codes")

SUBJECT = "identity.codes.resolve"
QUEUE = "identity-codes-resolve"


class ResolveRequest(BaseModel):
    code: str = Field(description="the code as printed or scanned; a bare code string is accepted too")


async def _decode(msg: StreamMessage[Any]) -> dict[str, str]:
    # Decoding here, not in FastStream's JSON decoder, lets a bare code or a malformed request
    # reach the handler as an empty code (answered `bad_request`) instead of a validation error,
    # after which a core NATS requester would get no reply at all, only a timeout.
    return {"code": code_from_request(msg.body) or ""}


def register(runtime: Runtime) -> None:
    @runtime.broker.subscriber(
        SUBJECT,
        queue=QUEUE,
        decoder=_decode,
        title=f"{QUEUE}:{SUBJECT}",
        description=(
            "Core NATS request/reply (not JetStream): what a QR code leads to. Request "
            '`{"code": "..."}` or the bare code. Reply: `{kind: deputy|station, id, name, region_code}`, '
            "or `{error: not_found|bad_request|unavailable}`."
        ),
    )
    async def resolve_code(request: ResolveRequest) -> dict[str, str]:
        if not request.code:
            return {"error": "bad_request"}
        try:
            found = await code_store.resolve(runtime, request.code)
        except Exception:
            # Every path answers: a requester waiting for a reply that never comes only sees a timeout.
            log.exception("resolving a code over NATS failed")
            return {"error": "unavailable"}
        return found.as_dict() if found is not None else {"error": "not_found"}
