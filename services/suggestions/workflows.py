"""One Temporal workflow per suggestion, for as many years as it takes.

Human actions arrive as updates: the validator runs the rule on a copy (an invalid action never
enters the history), the handler applies it and records it before answering with the new state.
The clock wakes the workflow for the next deadline; each year-end carry-over (and any time the
server suggests it) starts a fresh run with the state, so the history stays bounded however many
years and terms the suggestion lasts.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from shared import temporal_data

with workflow.unsafe.imports_passed_through():
    from services.suggestions import lifecycle
    from services.suggestions.domain import RuleError, Status
    from services.suggestions.lifecycle import Happening, Start
    from services.suggestions.projection import RECORD_ACTIVITY, Record, view

TASK_QUEUE = "suggestions"
RULE_ERROR = "RuleError"

# The rules are pure (no clock, no I/O, no module state: the time is handed in), so the sandbox
# may share them instead of importing and compiling them afresh for every workflow it starts,
# which was half of the worker's CPU when many suggestions were started at once. The workflow's
# input lives there too: a class made afresh per run would defeat the converter's schema cache.
SANDBOX = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(
    "services.suggestions.domain", "services.suggestions.lifecycle", "services.suggestions.projection", "dateutil",
    temporal_data.MODULE,
))


def workflow_id(suggestion_id: str) -> str:
    return f"suggestion-{suggestion_id}"


def _refuse(exc: RuleError) -> ApplicationError:
    return ApplicationError(exc.message, exc.field or "", type=RULE_ERROR, non_retryable=True)


@workflow.defn(name="Suggestion")
class SuggestionWorkflow:
    @workflow.init
    def __init__(self, start: Start) -> None:
        self.s = start.suggestion
        self.lock = asyncio.Lock()
        self.woken = False

    @workflow.run
    async def run(self, start: Start) -> dict[str, Any]:
        if not start.continued:
            async with self.lock:
                await self._record(lifecycle.submitted(self.s))
        while self.s.status != Status.CLOSED:
            wake = lifecycle.next_wake(self.s)
            timeout = max(timedelta(seconds=1), wake - workflow.now()) if wake is not None else None
            try:
                await workflow.wait_condition(lambda: self.woken, timeout=timeout)
            except TimeoutError:
                pass
            self.woken = False
            carried = False
            async with self.lock:
                happened = lifecycle.on_clock(self.s, workflow.now())
                carried = any(h.kind == "carried_over" for h in happened)
                await self._record(happened)
            if self.s.status != Status.CLOSED and (carried or workflow.info().is_continue_as_new_suggested()):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(Start(self.s, continued=True))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return view(self.s)

    async def _record(self, happened: list[Happening]) -> None:
        if not happened:
            return
        first = self.s.seq + 1
        self.s.seq += len(happened)
        await workflow.execute_activity(
            RECORD_ACTIVITY,
            Record(view(self.s), happened, first, workflow.now()),
            # A few statements in one transaction: a worker that died mid-way is retried soon.
            start_to_close_timeout=timedelta(seconds=10),
            # The database may be away for a while; the workflow waits for it rather than losing a step.
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)),
        )

    async def _act(self, action: Any, payload: Any) -> dict[str, Any]:
        async with self.lock:
            before = copy.deepcopy(self.s)
            try:
                happened = action(self.s, payload, workflow.now())
            except RuleError as exc:
                self.s = before
                raise _refuse(exc) from None
            await self._record(happened)
            self.woken = True
            return view(self.s)

    def _validate(self, action: Any, payload: Any) -> None:
        try:
            action(copy.deepcopy(self.s), payload, workflow.now())
        except RuleError as exc:
            raise _refuse(exc) from None

    @workflow.query
    def state(self) -> dict[str, Any]:
        return view(self.s)

    @workflow.update
    async def assign(self, a: lifecycle.Assign) -> dict[str, Any]:
        return await self._act(lifecycle.assign, a)

    @assign.validator
    def _assign(self, a: lifecycle.Assign) -> None:
        self._validate(lifecycle.assign, a)

    @workflow.update
    async def extend(self, e: lifecycle.Extend) -> dict[str, Any]:
        return await self._act(lifecycle.extend, e)

    @extend.validator
    def _extend(self, e: lifecycle.Extend) -> None:
        self._validate(lifecycle.extend, e)

    @workflow.update
    async def request_extension(self, r: lifecycle.RequestExtension) -> dict[str, Any]:
        return await self._act(lifecycle.request_extension, r)

    @request_extension.validator
    def _request_extension(self, r: lifecycle.RequestExtension) -> None:
        self._validate(lifecycle.request_extension, r)

    @workflow.update
    async def meeting(self, m: lifecycle.Meeting) -> dict[str, Any]:
        return await self._act(lifecycle.meeting, m)

    @meeting.validator
    def _meeting(self, m: lifecycle.Meeting) -> None:
        self._validate(lifecycle.meeting, m)

    @workflow.update
    async def assisting_view(self, v: lifecycle.AssistingView) -> dict[str, Any]:
        return await self._act(lifecycle.assisting_view, v)

    @assisting_view.validator
    def _assisting_view(self, v: lifecycle.AssistingView) -> None:
        self._validate(lifecycle.assisting_view, v)

    @workflow.update
    async def reply(self, r: lifecycle.ReplyInput) -> dict[str, Any]:
        return await self._act(lifecycle.reply, r)

    @reply.validator
    def _reply(self, r: lifecycle.ReplyInput) -> None:
        self._validate(lifecycle.reply, r)

    @workflow.update
    async def evaluate(self, e: lifecycle.Evaluate) -> dict[str, Any]:
        return await self._act(lifecycle.evaluate, e)

    @evaluate.validator
    def _evaluate(self, e: lifecycle.Evaluate) -> None:
        self._validate(lifecycle.evaluate, e)

    @workflow.update
    async def progress(self, p: lifecycle.Progress) -> dict[str, Any]:
        return await self._act(lifecycle.progress, p)

    @progress.validator
    def _progress(self, p: lifecycle.Progress) -> None:
        self._validate(lifecycle.progress, p)

    @workflow.update
    async def decide(self, d: lifecycle.Decide) -> dict[str, Any]:
        return await self._act(lifecycle.decide, d)

    @decide.validator
    def _decide(self, d: lifecycle.Decide) -> None:
        self._validate(lifecycle.decide, d)
