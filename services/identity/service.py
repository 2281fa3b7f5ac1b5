"""Wiring of the identity service: its schema, stream, routers, subscriptions and responders."""

from __future__ import annotations

from services.identity import (
    api,
    code_store,
    codes_api,
    codes_responder,
    directory_api,
    elections_api,
    handlers,
    public_api,
    registry_api,
    registry_loads_api,
)
from services.identity.models import Base
from services.identity.registry import SOURCES
from shared.contracts import EVENTS, REGISTRY_STREAM, STREAMS
from shared.service import Runtime, ServiceSpec, load_keyring


def load_secrets(runtime: Runtime) -> None:
    """The keyring for registry and deputy data, and the secret QR codes are signed with."""
    load_keyring(runtime)
    code_store.codebook(runtime)

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
    routers=(api.router, directory_api.router, codes_api.router, public_api.router, registry_api.router,
             registry_loads_api.router, elections_api.router),
    subscriptions=handlers.subscriptions,
    responders=codes_responder.register,
    workers=handlers.workers,
    uses_temporal=False,
    load_secrets=load_secrets,
    # Registry batches stream record by record after the token is checked; voters and districts come
    # as one JSON document each. Every other route keeps the default.
    # A registry load is a whole province's file, committed in chunks as it streams.
    body_limits={"/v1/registry/": 64 * 1024 * 1024, "/v1/elections/": 16 * 1024 * 1024,
                 **{f"/v1/registry/{source}/loads": registry_loads_api.BODY_LIMIT for source in SOURCES}},
)
