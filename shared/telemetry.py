"""OpenTelemetry from the standard OTEL_* variables, and logging for every process."""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

_provider: TracerProvider | None = None


def _exporter_from_env() -> SpanExporter | None:
    """`OTEL_TRACES_EXPORTER` decides (otlp, console, none); without it, OTLP only when an endpoint is set."""
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not choice:
        has_endpoint = any(
            os.environ.get(k) for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        choice = "otlp" if has_endpoint else "none"
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r} is not supported (otlp, console, none)")


def setup_tracing(service: str) -> TracerProvider:
    """One provider per process; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are honoured."""
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or f"minyi-{service}"})
    provider = TracerProvider(resource=resource)
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        # Someone (a test with an in-memory exporter) installed one first: use theirs.
        _provider = existing
        return existing
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def setup_logging(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_minyi_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines belong to the proxy in front; ours stay readable.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    root._minyi_configured = True  # type: ignore[attr-defined]
