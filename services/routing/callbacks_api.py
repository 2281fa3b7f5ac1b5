"""`POST /v1/grid/callbacks`: a grid platform's word on its ticket, signed with the platform's secret.

The ticket names the platform and so the secret; until the signature is checked nothing in the
body is believed. Unsigned, stale (> 5 minutes) or wrongly signed callbacks, and tickets we do
not know, are 401; a wrong signature and an unknown ticket get the very same answer, so a caller
without the secret learns nothing about which tickets exist.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.routing import domain, platforms, tickets
from services.routing.models import GridPlatform
from shared.errors import FieldError, Problem, field_path, validation_message
from shared.inputs import StorableText
from shared.instants import AnyInstant
from shared.problems import problems
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["routing"], responses=problems(400, 422))

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class CallbackIn(StorableText):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    ticket_id: str = Field(min_length=1, max_length=64)
    status: Literal["accepted", "in_progress", "resolved", "returned"]
    note: str | None = Field(default=None, max_length=2000)
    at: AnyInstant


class CallbackOut(BaseModel):
    ticket_id: str
    status: str = Field(description="the ticket's status after this callback")
    applied: bool = Field(description="false when the ticket had this status already or a later one")


# One answer for a wrong signature and an unknown ticket alike.
NOT_VERIFIED = "回调未通过验证：签名不正确或工单不存在。"
_NOBODYS_SECRET = secrets.token_bytes(32)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, title="Unauthorized")


@router.post("/grid/callbacks", response_model=CallbackOut,
             summary="A grid platform's status for one of its tickets (signed)",
             description="The body is read raw, since the signature covers its bytes: X-Minyi-Signature is "
                         "`sha256=` and the hex HMAC-SHA256, under the platform's secret, of X-Minyi-Timestamp, "
                         "a dot, and the body. Fields other than these are ignored.",
             # Read by hand (see above), so FastAPI cannot see the body: the document says what it is.
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": CallbackIn.model_json_schema(),
                 "examples": {"resolved": {"summary": "the platform solved the matter", "value": {
                     "ticket_id": "3f0c2d9e-8b1a-4c7e-9f25-6a4d1e8b2c70", "status": "resolved",
                     "note": "路灯已由市政养护单位修复。", "at": "2026-03-06T16:20:00+08:00"}}}}}}},
             responses=problems((401, "unsigned, stale, wrongly signed, or an unknown ticket")))
async def callback(request: Request, runtime: RuntimeDep,
                   x_minyi_timestamp: Annotated[str | None, Header()] = None,
                   x_minyi_signature: Annotated[str | None, Header()] = None) -> CallbackOut:
    raw = await request.body()
    try:
        timestamp = domain.parse_timestamp(x_minyi_timestamp, time.time())
        if not x_minyi_signature:
            raise domain.SignatureError("缺少 X-Minyi-Signature 请求头")
    except domain.SignatureError as exc:
        raise _unauthorized(f"回调未通过验证：{exc}。") from exc
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "回调内容不是有效的 JSON。", title="Bad Request") from exc
    ticket_id = doc.get("ticket_id") if isinstance(doc, dict) else None
    if not isinstance(ticket_id, str) or not ticket_id or len(ticket_id) > 64:
        raise _unauthorized("回调未通过验证：缺少有效的 ticket_id。")
    async with runtime.transaction() as session:
        ticket = await tickets.lock(session, ticket_id)
        platform = await session.get(GridPlatform, ticket.platform_id) if ticket is not None else None
        # An unknown ticket is checked against a secret nobody has, so it fails the same way and
        # in about the same time as a wrong signature: the answer tells a prober nothing.
        secret = platforms.secret_of(runtime.keyring, platform) if platform is not None else _NOBODYS_SECRET
        try:
            domain.verify(secret, timestamp, raw, x_minyi_signature)
        except domain.SignatureError as exc:
            raise _unauthorized(NOT_VERIFIED) from exc
        if ticket is None or platform is None:
            raise _unauthorized(NOT_VERIFIED)
        try:
            body = CallbackIn.model_validate(doc)
        except ValidationError as exc:
            errors = [FieldError(field_path(e["loc"]), validation_message(dict(e))) for e in exc.errors()]
            raise Problem(422, "回调内容有误：" + "；".join(e.message for e in errors[:3]) + "。",
                          title="Validation Failed", errors=errors) from exc
        if body.at.tzinfo is None:
            raise Problem(422, "回调内容有误：at 须带时区。", title="Validation Failed",
                          errors=[FieldError("at", "须带时区")])
        change = await tickets.apply_status(runtime, session, ticket, body.status, note=body.note, at=body.at,
                                            source="callback")
        return CallbackOut(ticket_id=ticket.id, status=ticket.status, applied=change == domain.Change.APPLY)
