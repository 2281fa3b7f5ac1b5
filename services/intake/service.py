"""Wiring of the intake service: its schema, stream, routers and subscriptions."""

from __future__ import annotations

from services.intake import api, handlers
from services.intake.models import Base
from shared.contracts import EVENTS, STREAMS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="intake",
    title="Minyi intake",
    description=(
        "Citizens' reports (群众意见) from every channel: receipts, the 2/7 working-day"
        " clocks, replies and ratings."
    ),
    metadata=Base.metadata,
    stream=STREAMS["intake"],
    events=EVENTS["intake"],

    routers=(api.router,),
    subscriptions=handlers.subscriptions,
    uses_temporal=False,
)
