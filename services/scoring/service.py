"""Wiring of the scoring service: its schema, stream, routers and subscriptions."""

from __future__ import annotations

from services.scoring import api, handlers, rankings_api
from services.scoring.models import Base
from shared.contracts import EVENTS, STREAMS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="scoring",
    title="Minyi scoring",
    description="Deputies' performance points (履职积分), stars and rankings; the handling units' board (红黄黑榜).",
    metadata=Base.metadata,
    stream=STREAMS["scoring"],
    events=EVENTS["scoring"],
    routers=(api.router, rankings_api.router),
    subscriptions=handlers.subscriptions,
    uses_temporal=False,
)
