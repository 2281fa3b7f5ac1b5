"""`each`: a consumer's events applied one after another in the batch's transaction, each with the
trace context of the message that brought it current, so the events it stages continue that trace."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from shared.bus.consumer import Delivered, each
from shared.bus.envelope import new_event
from shared.bus.outbox import current_trace

tracer = TracerProvider().get_tracer("tests.bus_each")


def delivered(n: int) -> tuple[Delivered, int]:
    with tracer.start_as_current_span(f"producer {n}") as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    event = new_event("tests", "intake.report.supported", {"n": n}, subject=f"R-{n}")
    return Delivered(event, carrier), span.get_span_context().trace_id


async def test_each_event_is_handled_in_order_under_its_own_trace() -> None:
    batch = [delivered(n) for n in range(3)]
    seen: list[tuple[str, int]] = []
    session: Any = object()

    async def handler(event: Any, got: Any) -> None:
        assert got is session
        parent = trace.get_current_span().get_span_context()
        seen.append((event.subject, parent.trace_id))
        assert current_trace()["traceparent"].split("-")[1] == f"{parent.trace_id:032x}"

    await each(handler)([d for d, _ in batch], session)
    assert seen == [(f"R-{n}", trace_id) for n, (_, trace_id) in enumerate(batch)]
    assert not trace.get_current_span().get_span_context().is_valid  # nothing left attached


async def test_a_failing_event_stops_the_batch_and_leaves_no_context_behind() -> None:
    batch = [delivered(n) for n in range(3)]
    handled: list[str] = []

    async def handler(event: Any, _: Any) -> None:
        handled.append(event.subject)
        if event.subject == "R-1":
            raise ValueError("bad event")

    with pytest.raises(ValueError):
        await each(handler)([d for d, _ in batch], object())
    assert handled == ["R-0", "R-1"]
    assert not trace.get_current_span().get_span_context().is_valid
