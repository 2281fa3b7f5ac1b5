"""The event contract as documents: the AsyncAPI document's payloads and docs/events.md, both from the
models of shared/events.py, so what is documented is what producers are held to."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel

from shared import events
from shared.bus.streams import subject_matches
from shared.contracts import EVENTS, GRID_STREAM, REGISTRY_STREAM, STREAMS

SCHEMAS = "#/components/schemas/"
ENVELOPE = "CloudEventEnvelope"
CONTENT_TYPE = "application/cloudevents+json"
NATS_BINDING_VERSION = "0.1.0"

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, structured JSON mode. Extension attributes are lower-case letters and digits.",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string", "minLength": 1,
               "description": "unique per producer; also the NATS `Nats-Msg-Id`, and the same on every redelivery"},
        "source": {"type": "string", "minLength": 1, "format": "uri-reference",
                   "description": "`/minyi/<service>` for Minyi's own events"},
        "type": {"type": "string", "minLength": 1, "description": "the event type, which is also the subject"},
        "subject": {"type": "string", "description": "the id of what the event is about (a report, a ticket …)"},
        "time": {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset"},
        "datacontenttype": {"type": "string", "default": "application/json"},
        "data": {"type": "object"},
    },
}
MSG_ID_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {"Nats-Msg-Id": {"type": "string", "description": "the event's `id`: JetStream drops a "
                                                                     "repeat within the stream's duplicate window"}},
}


def schema_name(event_type: str) -> str:
    """`intake.report.submitted` → `IntakeReportSubmittedEvent`."""
    return "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"


def model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """JSON Schemas of the models and of everything they nest, by name, referring to each other."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        for name, sub in schema.pop("$defs", {}).items():
            out[name] = sub
        out[model.__name__] = schema
    return out


def _event_schema(event_type: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": SCHEMAS + ENVELOPE},
            {"type": "object", "required": ["data"],
             "properties": {"type": {"const": event_type}, "data": {"$ref": SCHEMAS + model.__name__}}},
        ],
    }


def _inbound_schema(model: type[BaseModel], *, arrays: bool) -> dict[str, Any]:
    """What an outside system may publish: the object itself, or a CloudEvent carrying it."""
    choices: list[dict[str, Any]] = [
        {"$ref": SCHEMAS + model.__name__},
        {"allOf": [{"$ref": SCHEMAS + ENVELOPE},
                   {"type": "object", "required": ["data"],
                    "properties": {"data": {"$ref": SCHEMAS + model.__name__}}}]},
    ]
    if arrays:
        choices.append({"type": "array", "items": {"$ref": SCHEMAS + model.__name__}})
    return {"oneOf": choices}


def types_on(address: str) -> list[str]:
    """The catalogue's event types a subscription's subject matches (`>` the rest, `*` one token)."""
    return sorted(t for t in events.MODELS if subject_matches(address, t))


def _example(model: type[BaseModel]) -> dict[str, Any] | None:
    try:
        return events.example(model)
    except LookupError:
        return None


def _envelope_example(event_type: str, model: type[BaseModel]) -> dict[str, Any] | None:
    data = _example(model)
    if data is None:
        return None
    return {"specversion": "1.0", "id": "01a24791-2911-73e8-b94c-df696d4aa04d",
            "source": f"/minyi/{event_type.split('.')[0]}", "type": event_type,
            "time": "2026-12-05T10:57:05.282842+08:00", "datacontenttype": "application/json", "data": data}


def enrich(doc: dict[str, Any]) -> dict[str, Any]:
    """Give every channel of a generated AsyncAPI 3.0 document its typed payload, NATS bindings of the
    bindings specification, and the outside subjects that no broker of Minyi's subscribes through."""
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    messages = components.setdefault("messages", {})
    schemas[ENVELOPE] = ENVELOPE_SCHEMA
    schemas.update(model_schemas([*dict.fromkeys(events.MODELS.values()), *events.INBOUND.values()]))
    for event_type, model in events.MODELS.items():
        schemas[schema_name(event_type)] = _event_schema(event_type, model)

    _add_outside_channels(doc)
    queues: dict[str, str] = {}
    for channel_name, channel in doc["channels"].items():
        address = channel["address"]
        # The NATS channel binding has no fields; a queue group belongs to the receiving operation.
        queue = channel.pop("bindings", {}).get("nats", {}).get("queue")
        if queue:
            queues[channel_name] = queue
        for key, ref in channel.get("messages", {}).items():
            name = _ref_name(ref["$ref"])
            message = messages.get(name)
            if message is None:
                continue
            payload, examples = _payload_for(address)
            if payload is None:
                continue
            message.update(payload=payload, contentType=CONTENT_TYPE, headers=MSG_ID_HEADERS,
                           name=key, title=message.get("title", channel_name))
            if examples:
                message["examples"] = examples
    for operation in doc.get("operations", {}).values():
        queue = queues.get(_ref_name(operation["channel"]["$ref"]))
        if queue:
            operation["bindings"] = {"nats": {"queue": queue, "bindingVersion": NATS_BINDING_VERSION}}
    for server in doc.get("servers", {}).values():
        server.pop("protocolVersion", None)
    used = json.dumps(doc)
    for name in [n for n in schemas if f'"{SCHEMAS}{n}"' not in used and n != ENVELOPE]:
        del schemas[name]
    return doc


def _ref_name(ref: str) -> str:
    """The component a JSON pointer names (FastStream percent-encodes `*` and `>` in them)."""
    return unquote(ref.rsplit("/", 1)[1])


def _payload_for(address: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    for pattern, model in events.INBOUND.items():
        if pattern == address.replace("{platform_id}", "*").replace("{source}", "*"):
            example = _example(model)
            return (_inbound_schema(model, arrays=model is events.RegistryRecord),
                    [{"name": "bare", "payload": example}] if example else [])
    found = types_on(address)
    if not found:
        return None, []
    examples = []
    for event_type in found[:3]:
        example = _envelope_example(event_type, events.MODELS[event_type])
        if example is not None:
            examples.append({"name": event_type, "payload": example})
    if len(found) == 1:
        return {"$ref": SCHEMAS + schema_name(found[0])}, examples
    return {"oneOf": [{"$ref": SCHEMAS + schema_name(t)} for t in found]}, examples


def _add_outside_channels(doc: dict[str, Any]) -> None:
    """Subjects outside systems publish into or read from, which FastStream does not see."""
    servers = [{"$ref": f"#/servers/{name}"} for name in doc.get("servers", {})]
    outside = {
        "grid-tickets": ("grid.{platform_id}.tickets", "send", "routing",
                         "tickets for a grid platform of transport nats; the platform answers on "
                         "grid.<platform_id>.events, signed", {"platform_id": "the grid platform's id"}),
        "registry-records": ("registry.{source}.records", "receive", "identity-registry",
                             "registry records from a provincial system (stream "
                             f"{REGISTRY_STREAM.name}); a bad record is refused alone and dead-lettered",
                             {"source": "population, social_security or migrant"}),
    }
    for name, (address, action, who, description, parameters) in outside.items():
        doc["channels"][name] = {
            "address": address, "description": description, "servers": servers,
            "parameters": {p: {"description": text} for p, text in parameters.items()},
            "messages": {"Message": {"$ref": f"#/components/messages/{name}:Message"}},
        }
        doc["components"]["messages"][f"{name}:Message"] = {"title": f"{name}:Message"}
        operation: dict[str, Any] = {"action": action, "channel": {"$ref": f"#/channels/{name}"},
                                     "messages": [{"$ref": f"#/channels/{name}/messages/Message"}]}
        if action == "receive":
            operation["bindings"] = {"nats": {"queue": who, "bindingVersion": NATS_BINDING_VERSION}}
        doc.setdefault("operations", {})[name] = operation


# ---- docs/events.md ----------------------------------------------------------------------------------


def _type_text(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_text(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if kind == "string" and prop.get("format") in ("date-time", "date"):
        return "date" if prop["format"] == "date" else "time (RFC 3339)"
    return str(kind)


def _field_rows(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        text = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {_type_text(prop)} | {'yes' if name in required else 'no'} | {text} |")
    return rows


def catalogue(subscribers: Mapping[str, list[str]]) -> str:
    """docs/events.md: every event type, who publishes it, who consumes it, its fields and an example."""
    lines = [
        "# Event catalogue",
        "",
        "Generated by `minyi docs` from `shared/events.py`; do not edit by hand. Every event is a",
        "CloudEvents 1.0 envelope (see [integrators.md](integrators.md)) whose `data` is described here.",
        "Fields marked *no* may be absent or null; consumers must ignore fields they do not know.",
        "",
    ]
    specs = {spec.type: (service, spec.description) for service, group in EVENTS.items() for spec in group}
    by_model: dict[type[BaseModel], list[str]] = {}
    for event_type, model in events.MODELS.items():
        by_model.setdefault(model, []).append(event_type)
    for model, types in by_model.items():
        service = types[0].split(".")[0]
        stream = STREAMS[service].name if service in STREAMS else ""
        schema = model.model_json_schema(ref_template="{model}")
        title = f"`{types[0]}`" if len(types) == 1 else f"`{types[0].rsplit('.', 1)[0]}.*` ({model.__name__})"
        lines += [f"## {title}", "", f"Published by **{service}** on stream `{stream}`.", ""]
        if model.__doc__ and model.__doc__ != events.EventData.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += ["| type | when | consumed by |", "| --- | --- | --- |"]
        for event_type in types:
            consumers = subscribers.get(event_type, [])
            lines.append(f"| `{event_type}` | {specs.get(event_type, ('', ''))[1].replace('|', '/')} | "
                         f"{', '.join(consumers) if consumers else '—'} |")
        lines += ["", "| field | type | required | meaning |", "| --- | --- | --- | --- |", *_field_rows(schema), ""]
        example = _example(model)
        if example is not None:
            lines += ["```json", json.dumps(example, ensure_ascii=False, indent=2), "```", ""]
    lines += ["## From and to outside systems", ""]
    for pattern, model in events.INBOUND.items():
        stream = GRID_STREAM.name if pattern.startswith("grid.") else REGISTRY_STREAM.name
        schema = model.model_json_schema(ref_template="{model}")
        lines += [f"### `{pattern}` ({model.__name__}, stream `{stream}`)", "",
                  " ".join((model.__doc__ or "").split()), "",
                  "| field | type | required | meaning |", "| --- | --- | --- | --- |", *_field_rows(schema), ""]
    lines += ["## Nested objects", ""]
    seen: set[str] = set()
    for model in [*dict.fromkeys(events.MODELS.values()), *events.INBOUND.values()]:
        for name, sub in model.model_json_schema(ref_template="{model}").get("$defs", {}).items():
            if name in seen:
                continue
            seen.add(name)
            lines += [f"### {name}", "", "| field | type | required | meaning |", "| --- | --- | --- | --- |",
                      *_field_rows(sub), ""]
    return "\n".join(lines).rstrip() + "\n"
