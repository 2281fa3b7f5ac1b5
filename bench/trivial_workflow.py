"""The baseline workflow of bench/suggestions_workflows.py, alone in its module: the sandbox
re-imports a workflow's module for every run, as it does `services/suggestions/workflows.py`."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BenchTrivial")
class TrivialWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None
