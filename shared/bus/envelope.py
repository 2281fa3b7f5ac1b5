"""CloudEvents 1.0 envelope; its `id` is also the `Nats-Msg-Id`.

Minyi publishes the structured JSON mode. It reads the structured mode and the NATS binary mode
(`ce-*` headers, the data as the body), and refuses what the CloudEvents 1.0 specification refuses:
another `specversion`, a missing `id`, `source` or `type`, attribute names other than lower-case
letters and digits, a `time` that is not RFC 3339 with an offset, `data` and `data_base64` together.
Binary data (`data_base64`) is kept as it came; JSON data is offered to the handlers as `data`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from shared.events import EventData, PayloadError, read
from shared.ids import new_id

SPECVERSION = "1.0"
CONTEXT_ATTRIBUTES = frozenset({"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                                "dataschema"})
# CloudEvents 1.0 §3.1.1: attribute names are lower-case ASCII letters and digits.
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,40}$")
# RFC 3339 date-time: a full date, a time, and an offset (Z or ±hh:mm).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
M = TypeVar("M", bound=EventData)

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
    # Binary data as it came, base64 (never for Minyi's own events, whose data is JSON).
    data_base64: str | None = None
    # How it arrived: the subject it was published on, its headers and bytes. Never serialised; a
    # handler that must not believe what the body says of its origin reads the subject from here.
    _delivery: Delivery | None = PrivateAttr(default=None)

    _payload: EventData | None = PrivateAttr(default=None)

    @property
    def delivery(self) -> Delivery | None:
        return self._delivery

    def payload(self, model: type[M]) -> M:
        """`data` read through its event type's model (shared/events.py); PayloadError says which field
        is wrong. Read once per event, however many handlers ask."""
        if isinstance(self._payload, model):
            return self._payload
        try:
            value = read(model, self.data)
        except PayloadError as exc:
            raise PayloadError(f"{self.type} {self.id}: {exc}") from None
        self._payload = value
        return value  # type: ignore[return-value]

    def to_bytes(self) -> bytes:
        # data and data_base64 never travel together (CloudEvents JSON format §3.1).
        return self.model_dump_json(exclude_none=True,
                                    exclude={"data"} if self.data_base64 is not None else None).encode()


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
    headers = dict(headers or {})
    if any(k.lower() == "ce-specversion" for k in headers):
        event = _from_binary(raw, headers)
    else:
        doc = _json_object(raw, "")
        if "specversion" in doc:
            event = _from_structured(doc)
        else:
            # A replayed bare record must get the same id again, so the inbox can recognise it.
            msg_id = headers.get("Nats-Msg-Id") or hashlib.sha256(raw).hexdigest()[:32]
            event = CloudEvent(id=msg_id, source="/external", type=subject, data=doc)
    event._delivery = Delivery(subject, headers, raw)
    return event


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """`raw` as a JSON object; `what` names it in the refusal (nothing for the message itself)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise MalformedEvent(f"{what} is not JSON: {reason}" if what else f"not JSON: {reason}") from exc
    if not isinstance(doc, dict):
        raise MalformedEvent(f"{what} is not a JSON object" if what else "event is not a JSON object")
    return doc


def _from_structured(doc: dict[str, Any]) -> CloudEvent:
    attributes = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
    _check_attributes(attributes)
    if "data" in doc and "data_base64" in doc:
        raise MalformedEvent("data and data_base64 together")
    fields: dict[str, Any] = dict(attributes)
    if "data_base64" in doc:
        encoded = doc["data_base64"]
        if not isinstance(encoded, str):
            raise MalformedEvent("data_base64 is not a string")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedEvent(f"data_base64 is not base64: {exc}") from exc
        fields["data_base64"] = encoded
        if _is_json(doc.get("datacontenttype")):
            fields["data"] = _json_object(decoded, "data_base64")
    elif "data" in doc:
        data = doc["data"]
        if data is not None and not isinstance(data, dict):
            raise MalformedEvent(f"data is a JSON {type(data).__name__}, not an object")
        fields["data"] = data or {}
    return _build(fields)


def _from_binary(raw: bytes, headers: dict[str, str]) -> CloudEvent:
    """The NATS protocol binding's binary mode: attributes in `ce-` headers, the data as the body."""
    attributes: dict[str, Any] = {}
    content_type = None
    for key, value in headers.items():
        lower = key.lower()
        if lower.startswith("ce-"):
            attributes[lower[3:]] = value
        elif lower == "content-type":
            content_type = value
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    _check_attributes(attributes)
    fields: dict[str, Any] = dict(attributes)
    if _is_json(content_type) or content_type is None:
        fields["data"] = _json_object(raw, "data") if raw else {}
    else:
        fields["data_base64"] = base64.b64encode(raw).decode()
    return _build(fields)


def _check_attributes(attributes: dict[str, Any]) -> None:
    version = attributes.get("specversion")
    if version != SPECVERSION:
        raise MalformedEvent(f"specversion {str(version)[:20]!r} is not {SPECVERSION}")
    for name in ("id", "source", "type"):
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise MalformedEvent(f"{name} is missing or empty")
    for name, value in attributes.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise MalformedEvent(f"attribute name {name[:40]!r} is not lower-case letters and digits")
        if name not in CONTEXT_ATTRIBUTES and value is not None and not isinstance(value, str | int | bool):
            raise MalformedEvent(f"extension {name} is not a string, integer or boolean")
    when = attributes.get("time")
    if when is not None and (not isinstance(when, str) or not _RFC3339.match(when)):
        raise MalformedEvent(f"time {str(when)[:40]!r} is not RFC 3339 with an offset")


def _is_json(content_type: Any) -> bool:
    if content_type is None:
        return True  # CloudEvents: no datacontenttype in JSON format means JSON data
    media = str(content_type).split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _build(fields: dict[str, Any]) -> CloudEvent:
    try:
        return CloudEvent.model_validate(fields)
    except ValueError as exc:
        raise MalformedEvent(f"invalid CloudEvent: {exc}") from exc
