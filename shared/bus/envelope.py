"""CloudEvents 1.0 structured JSON envelope; its `id` is also the `Nats-Msg-Id`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from shared.ids import new_id

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str = Field(default_factory=new_id, min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    # How it arrived: the subject it was published on, its headers and bytes. Never serialised; a
    # handler that must not believe what the body says of its origin reads the subject from here.
    _delivery: Delivery | None = PrivateAttr(default=None)

    @property
    def delivery(self) -> Delivery | None:
        return self._delivery

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True)
class Delivery:
    subject: str
    headers: dict[str, str]
    raw: bytes


class MalformedEvent(ValueError):
    """The bytes are not a usable event: poison, not a passing failure."""


def new_event(service: str, event_type: str, data: dict[str, Any], subject: str | None = None) -> CloudEvent:
    return CloudEvent(source=f"/minyi/{service}", type=event_type, subject=subject, data=data)


def parse_event(raw: bytes, *, subject: str, headers: dict[str, str] | None = None) -> CloudEvent:
    """Read a CloudEvent; a bare JSON object is wrapped (inbound feeds may send records bare)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    if not isinstance(doc, dict):
        raise MalformedEvent("event is not a JSON object")
    if "specversion" in doc:
        try:
            event = CloudEvent.model_validate(doc)
        except ValueError as exc:
            raise MalformedEvent(f"invalid CloudEvent: {exc}") from exc
    else:
        # A replayed bare record must get the same id again, so the inbox can recognise it.
        msg_id = (headers or {}).get("Nats-Msg-Id") or hashlib.sha256(raw).hexdigest()[:32]
        event = CloudEvent(id=msg_id, source="/external", type=subject, data=doc)
    event._delivery = Delivery(subject, dict(headers or {}), raw)
    return event
