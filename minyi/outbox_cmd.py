"""`minyi outbox`: the events a service's relay set aside because NATS would never take them.

The relay sets an event aside when it is larger than the server's `max_payload`, so the events
after it are not held up. Once the cause is fixed (the server's `max_payload` raised, say), an
operator puts the events back in line with `release`; the relay then publishes them in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData

from minyi.dead_letters import Refused, database_url
from shared.bus.outbox import release, set_aside_rows
from shared.bus.tables import outbox_table
from shared.db import Database
from shared.settings import SERVICES, Settings

Say = Callable[[str], None]


def _outbox(service: str) -> Any:
    if service not in SERVICES:
        raise Refused(f"unknown service {service!r}; known: {', '.join(SERVICES)}", exit_code=2)
    return outbox_table(MetaData(schema=service))


async def run_list(settings: Settings, services: Sequence[str], *, as_json: bool, say: Say) -> int:
    db = Database.connect(database_url(settings), application_name="minyi-outbox")
    found: list[dict[str, Any]] = []
    try:
        for service in services:
            async with db.sessions() as session:
                found += [{"service": service, **row} for row in await set_aside_rows(session, _outbox(service))]
    finally:
        await db.dispose()
    if as_json:
        say(json.dumps(found, ensure_ascii=False, indent=2, default=_iso))
        return 0
    if found:
        say(f"{'SERVICE':<12} {'EVENT':<38} {'SUBJECT':<34} {'BYTES':>9}  {'SET ASIDE (UTC)':<19}  REASON")
    for row in found:
        say(f"{row['service']:<12} {row['event_id']:<38} {row['subject']:<34} {row['payload_bytes']:>9}  "
            f"{row['set_aside_at']:%Y-%m-%d %H:%M:%S}  {row['last_error']}")
    say(f"{len(found)} event{'' if len(found) == 1 else 's'} set aside ({', '.join(services)})")
    return 0


async def run_release(settings: Settings, service: str, event_ids: Sequence[str], *, every: bool, say: Say) -> int:
    if not event_ids and not every:
        raise Refused("name the events to release, or --all", exit_code=2)
    db = Database.connect(database_url(settings), application_name="minyi-outbox")
    try:
        async with db.sessions() as session, session.begin():
            count = await release(session, _outbox(service), None if every else list(event_ids))
    finally:
        await db.dispose()
    say(f"{count} event{'' if count == 1 else 's'} of {service} back in line; its relay publishes them in order")
    return 0 if count or every else 1


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
