"""Rebuild the projection of suggestions and their timelines from the SUGGESTIONS stream.

Every step of every suggestion is published with the state after it, so the stream alone gives
back each timeline entry and the latest row. Writing is idempotent (a step already there is
skipped, an older state never overwrites a newer one), so a rebuild may run while the service
runs, and twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext

from services.suggestions.activities import row_values, write_row, write_step
from services.suggestions.lifecycle import Happening
from shared.bus.envelope import CloudEvent
from shared.bus.replay import Progress, Replayed, replay
from shared.contracts import STREAMS
from shared.db import Database

log = logging.getLogger("minyi.suggestions.rebuild")

PREFIX = "suggestions.suggestion."
STEP_FIELDS = ("seq", "kind", "actor", "note", "at")


def step_of(event: CloudEvent) -> tuple[dict[str, Any], int, Happening, datetime] | None:
    """The state, sequence number, step and time an event carries; None if it carries no step."""
    data = dict(event.data)
    step = data.pop("step", None)
    if not isinstance(step, dict) or "id" not in data or "seq" not in step:
        return None
    extra = step.get("data")
    if not isinstance(extra, dict):  # the flat shape of the first events
        extra = {k: v for k, v in step.items() if k not in STEP_FIELDS}
    happening = Happening(kind=step["kind"], actor=step["actor"], note=step.get("note"), data=extra)
    return data, int(step["seq"]), happening, datetime.fromisoformat(step["at"])


async def rebuild(db: Database, js: JetStreamContext, progress: Progress | None = None) -> Replayed:
    unusable = 0

    async def apply(events: list[CloudEvent]) -> None:
        nonlocal unusable
        latest: dict[str, dict[str, Any]] = {}
        async with db.transaction() as session:
            for event in events:
                try:
                    found = step_of(event)
                    if found is None:
                        raise ValueError("no step")
                    state, seq, step, at = found
                    row_values(state)  # a state that cannot make a row is not ours to write
                except (KeyError, TypeError, ValueError) as exc:
                    unusable += 1
                    log.warning("rebuild: %s %s skipped: %s: %s", event.type, event.id, type(exc).__name__, exc)
                    continue
                await write_step(session, state["id"], seq, step, at)
                if state["seq"] >= latest.get(state["id"], {}).get("seq", -1):
                    latest[state["id"]] = state
            for state in latest.values():
                await write_row(session, state)

    done = await replay(js, STREAMS["suggestions"].name, f"{PREFIX}>", apply, progress=progress)
    done.malformed += unusable
    return done
