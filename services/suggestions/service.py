"""Wiring of the suggestions service: its schema, stream, routers, subscriptions and Temporal worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from temporalio.worker import Worker

from services.suggestions import api, counts_api, funds_api, handlers, public_api, queries, topics_api
from services.suggestions.activities import Recorder
from services.suggestions.models import Base
from services.suggestions.workflows import SANDBOX, TASK_QUEUE, SuggestionWorkflow
from shared.contracts import EVENTS, STREAMS
from shared.service import Runtime, ServiceSpec


def workers(runtime: Runtime) -> Sequence[Callable[[], Awaitable[None]]]:
    async def suggestion_worker() -> None:
        # Every process polls the same task queue: replicas share the workflows and the recording.
        worker = Worker(runtime.temporal, task_queue=TASK_QUEUE, workflows=[SuggestionWorkflow],
                        activities=[Recorder(runtime).record], workflow_runner=SANDBOX)
        await worker.run()

    return (suggestion_worker,)


SPEC = ServiceSpec(
    name="suggestions",
    title="Minyi suggestions",
    description="Deputies' suggestions (代表建议) through assignment, reply, evaluation and yearly look-back.",
    metadata=Base.metadata,
    stream=STREAMS["suggestions"],
    events=EVENTS["suggestions"],
    routers=(api.router, counts_api.router, topics_api.router, funds_api.router, public_api.router),
    subscriptions=handlers.subscriptions,
    workers=workers,
    uses_temporal=True,
    overdue=queries.overdue,
)
