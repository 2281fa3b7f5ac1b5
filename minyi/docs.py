"""Generated contracts: each service's OpenAPI and one AsyncAPI document, from the code."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import yaml
from faststream.specification import AsyncAPI

from minyi import event_docs
from shared.service import ServiceSpec, build_app
from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _spec(service: str) -> ServiceSpec:
    return importlib.import_module(f"services.{service}.service").SPEC  # type: ignore[no-any-return]


def render() -> dict[Path, str]:
    """Every generated document by path; nothing is connected, so it runs anywhere."""
    settings = Settings(database_url="postgresql+asyncpg://docs@localhost/docs", nats_url="nats://localhost:4222")
    out: dict[Path, str] = {}
    brokers = []
    subscribers: dict[str, list[str]] = {}
    for service in SERVICES:
        app = build_app(_spec(service), settings)
        out[DOCS / "openapi" / f"{service}.json"] = (
            json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
        brokers.append(app.state.runtime.broker)
        for sub in app.state.runtime.subscriptions:
            for event_type in event_docs.types_on(sub.subject):
                subscribers.setdefault(event_type, []).append(f"{service} ({sub.durable})")
        if app.state.runtime.batch_consumers:
            brokers.append(app.state.runtime.described)
    asyncapi = AsyncAPI(
        *brokers,
        title="Minyi events",
        version="1.0.0",
        description="JetStream subjects Minyi publishes and consumes (CloudEvents 1.0 structured JSON).",
        schema_version="3.0.0",
    )
    # FastStream orders channels by hash; sorted keys keep the document stable between runs.
    out[DOCS / "asyncapi.yaml"] = yaml.safe_dump(
        event_docs.enrich(asyncapi.to_specification().to_jsonable()), sort_keys=True, allow_unicode=True, width=110
    )
    out[DOCS / "events.md"] = event_docs.catalogue(subscribers)
    return out


def write() -> list[Path]:
    written = []
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def check() -> list[str]:
    """Lines describing each document that differs from what the code generates."""
    drift = []
    for path, text in render().items():
        rel = path.relative_to(ROOT)
        if not path.exists():
            drift.append(f"{rel} is missing; run `minyi docs`")
        elif path.read_text() != text:
            drift.append(f"{rel} differs from the code; run `minyi docs` and commit the result")
    return drift
