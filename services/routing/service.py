"""Wiring of the routing service: its schema, stream, routers and subscriptions."""

from __future__ import annotations

from services.routing import api, callbacks_api, categories_api, handlers, hotspots_api, warm_up
from services.routing.models import Base
from shared.contracts import EVENTS, GRID_STREAM, STREAMS
from shared.service import ServiceSpec, load_keyring

SPEC = ServiceSpec(
    name="routing",
    title="Minyi routing",
    description=(
        "Classification of reports, dispatch to grid-governance platforms (基层治理四平台,"
        " 12345) and hotspots (共性事项)."
    ),
    metadata=Base.metadata,
    stream=STREAMS["routing"],
    events=EVENTS["routing"],
    extra_streams=(GRID_STREAM,),
    routers=(api.router, callbacks_api.router, categories_api.router, hotspots_api.router,
             hotspots_api.public_router),
    subscriptions=handlers.subscriptions,
    workers=handlers.workers,
    uses_temporal=False,
    load_secrets=load_keyring,
    warm_up=warm_up.warm_up,
    default_body_limit=256 * 1024,
)
