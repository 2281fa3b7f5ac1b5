"""Wiring of the identity service: its schema, stream, routers and subscriptions."""

from __future__ import annotations

from services.identity import api, handlers
from services.identity.models import Base
from shared.contracts import EVENTS, REGISTRY_STREAM, STREAMS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="identity",
    title="Minyi identity",
    description=(
        "Directory of regions, stations and deputies, QR codes (亮码), registry feeds and"
        " voter-roll reconciliation."
    ),
    metadata=Base.metadata,
    stream=STREAMS["identity"],
    events=EVENTS["identity"],
    extra_streams=(REGISTRY_STREAM,),
    routers=(api.router,),
    subscriptions=handlers.subscriptions,
    uses_temporal=False,
)
