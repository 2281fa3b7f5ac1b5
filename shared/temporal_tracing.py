"""The caller's trace through Temporal: a request that starts or updates a workflow, and the
activities that step runs, share one trace.

Only the W3C trace context travels, in a header, as a plain dict: no span is made inside workflow
code, so a replay can neither duplicate spans nor depend on the tracer. A workflow step (its start,
a signal or an update) remembers the context its caller sent; the activities that step starts carry
it on; the activity continues the trace. The ready-made interceptors of the SDK either keep a
workflow in the trace that started it (an update only links to its caller) or need a special global
tracer provider, which the rest of the service does not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context, propagate
from temporalio import client, worker
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadConverter

HEADER = "minyi-trace"
_PAYLOADS = PayloadConverter.default
# The trace context of the workflow step being handled (each handler runs in a task of its own).
_step: ContextVar[dict[str, str] | None] = ContextVar("minyi_trace_step", default=None)


def _with_carrier(headers: Mapping[str, Payload], carrier: dict[str, str] | None) -> Mapping[str, Payload]:
    if not carrier:
        return headers
    return {**headers, HEADER: _PAYLOADS.to_payloads([carrier])[0]}


def _carrier_of(headers: Mapping[str, Payload]) -> dict[str, str] | None:
    payload = headers.get(HEADER)
    if payload is None:
        return None
    value = _PAYLOADS.from_payloads([payload])[0]
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


def _current() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


class TraceInterceptor(client.Interceptor, worker.Interceptor):
    """On the client and on every worker made from it."""

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(self, next: worker.ActivityInboundInterceptor) -> worker.ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: worker.WorkflowInterceptorClassInput
    ) -> type[worker.WorkflowInboundInterceptor] | None:
        return _WorkflowInbound


class _ClientOutbound(client.OutboundInterceptor):
    async def start_workflow(self, input: client.StartWorkflowInput) -> Any:
        input.headers = _with_carrier(input.headers, _current())
        return await super().start_workflow(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        input.headers = _with_carrier(input.headers, _current())
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: client.StartWorkflowUpdateInput) -> Any:
        input.headers = _with_carrier(input.headers, _current())
        return await super().start_workflow_update(input)


class _WorkflowInbound(worker.WorkflowInboundInterceptor):
    def init(self, outbound: worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: worker.ExecuteWorkflowInput) -> Any:
        _step.set(_carrier_of(input.headers))
        return await super().execute_workflow(input)

    async def handle_signal(self, input: worker.HandleSignalInput) -> None:
        _step.set(_carrier_of(input.headers))
        await super().handle_signal(input)

    async def handle_update_handler(self, input: worker.HandleUpdateInput) -> Any:
        _step.set(_carrier_of(input.headers))
        return await super().handle_update_handler(input)


class _WorkflowOutbound(worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: worker.StartActivityInput) -> Any:
        input.headers = _with_carrier(input.headers, _step.get())
        return super().start_activity(input)

    def start_local_activity(self, input: worker.StartLocalActivityInput) -> Any:
        input.headers = _with_carrier(input.headers, _step.get())
        return super().start_local_activity(input)


class _ActivityInbound(worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: worker.ExecuteActivityInput) -> Any:
        carrier = _carrier_of(input.headers)
        if not carrier:
            return await super().execute_activity(input)
        token = context.attach(propagate.extract(carrier))
        try:
            return await super().execute_activity(input)
        finally:
            context.detach(token)
