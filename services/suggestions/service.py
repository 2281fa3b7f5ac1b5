"""Wiring of the suggestions service: its schema, stream, routers and subscriptions."""

from __future__ import annotations

from services.suggestions import api, handlers
from services.suggestions.models import Base
from shared.contracts import EVENTS, STREAMS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="suggestions",
    title="Minyi suggestions",
    description="Deputies' suggestions (代表建议) through assignment, reply, evaluation and yearly look-back.",
    metadata=Base.metadata,
    stream=STREAMS["suggestions"],
    events=EVENTS["suggestions"],

    routers=(api.router,),
    subscriptions=handlers.subscriptions,
    uses_temporal=True,
)
