"""Wiring of the intake service: its schema, stream, routers, subscriptions and clock scanner."""

from __future__ import annotations

from services.intake import (
    api,
    attachments_api,
    calendar_api,
    handlers,
    open311_api,
    receipts_api,
    reminders_api,
    scan_api,
    stats_api,
    supports_api,
    target_stats_api,
    timers,
)
from services.intake.models import Base
from shared.contracts import EVENTS, STREAMS
from shared.service import ServiceSpec, load_keyring

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
    routers=(api.router, receipts_api.router, attachments_api.router, calendar_api.router, stats_api.router,
             scan_api.router, reminders_api.router, supports_api.router, target_stats_api.router,
             open311_api.router),
    subscriptions=handlers.subscriptions,
    workers=handlers.workers,
    uses_temporal=False,
    load_secrets=load_keyring,
    # An Open311 client may send its credential in the query string (`api_key`).
    secret_paths=(r"(?<=/v1/receipts/)[^/?]+", r"(?<=api_key=)[^&]+"),
    # A report is at most 5,000 characters; only uploads need more.
    body_limits={"/v1/attachments": attachments_api.UPLOAD_LIMIT},
    default_body_limit=256 * 1024,
    overdue=timers.overdue,
)
