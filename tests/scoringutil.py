"""The scoring service on the real servers, fed with the events its sources publish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from busutil import event_body, eventually, publish
from conftest import Servers
from serviceutil import served
from suggestionsutil import bearer

from minyi.servers import free_port
from services.scoring.domain import CHINA
from services.scoring.handlers import DEPUTIES, REPORTS, SUGGESTIONS
from services.scoring.service import SPEC
from shared.bus.streams import declare
from shared.contracts import STREAMS
from shared.ids import new_id
from shared.service import Runtime
from shared.settings import Settings

# Congress staff of the province the scoring tests' counties (35xxxx) lie in: a staff token always
# names its region.
STAFF = bearer("npc_staff", "35")


@dataclass
class Scoring:
    client: httpx.AsyncClient
    runtime: Runtime
    nats_url: str

    async def send(self, event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or new_id()
        await publish(self.nats_url, event_type, event_body(event_id, event_type, data), msg_id=event_id)
        return event_id

    async def deputy(self, deputy_id: str, region_code: str, *, level: str = "county", name: str = "代表",
                     version: int = 1) -> None:
        await self.send("identity.deputy.updated", {"id": deputy_id, "name": name, "level": level,
                                                    "region_code": region_code, "version": version})

        staff = bearer("npc_staff", region_code)

        async def known() -> bool:
            resp = await self.client.get(f"/v1/deputies/{deputy_id}/score",
                                         params={"year": datetime.now(CHINA).year}, headers=staff)
            return resp.status_code == 200

        await eventually(known, timeout=20, what=f"deputy {deputy_id} known to scoring")

    async def score(self, deputy_id: str, year: int, *, entries: int | None = None,
                    staff: dict[str, str] = STAFF) -> dict[str, Any]:
        """The deputy's year, once it holds `entries` entries (when given)."""
        latest: dict[str, Any] = {}

        async def ready() -> bool:
            nonlocal latest
            resp = await self.client.get(f"/v1/deputies/{deputy_id}/score", params={"year": year}, headers=staff)
            assert resp.status_code == 200, resp.text
            latest = dict(resp.json())
            return entries is None or len(latest["entries"]) >= entries

        await eventually(ready, timeout=20, what=f"{entries} entries for {deputy_id} in {year}")
        return latest


    async def caught_up(self) -> None:
        """Every source event so far handled: the live consumers have nothing pending."""
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()

            async def idle() -> bool:
                for stream, durable in ((STREAMS["identity"].name, DEPUTIES), (STREAMS["intake"].name, REPORTS),
                                        (STREAMS["suggestions"].name, SUGGESTIONS)):
                    info = await js.consumer_info(stream, durable)
                    if info.num_pending or info.num_ack_pending:
                        return False
                return True

            await eventually(idle, timeout=60, what="scoring's consumers caught up")
        finally:
            await nc.close()


def report_event(deputy_id: str, region_code: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"report_id": new_id(), "status": "acknowledged", "round": 1, "region_code": region_code,
            "target": {"kind": "deputy", "id": deputy_id}, "deputy_id": deputy_id, "station_id": None,
            "at": at.isoformat(), **extra}


def suggestion_event(kind: str, suggestion_id: str, lead: str, region_code: str, at: datetime, *,
                     co_signers: tuple[str, ...] = (), seq: int = 1, step_data: dict[str, Any] | None = None,
                     **state: Any) -> dict[str, Any]:
    """What suggestions publishes for a step: the state after it, and the step."""
    return {"id": suggestion_id, "lead_deputy_id": lead, "co_signer_ids": list(co_signers),
            "region_code": region_code, "key": False, "topic_id": None, "lead_unit_id": None, "seq": seq, **state,
            "step": {"seq": seq, "kind": kind, "actor": "test", "note": None, "at": at.isoformat(),
                     "data": step_data or {}}}


async def declare_sources(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        for name in ("identity", "intake", "suggestions"):
            await declare(nc.jetstream(), STREAMS[name], replicas=1)
    finally:
        await nc.close()


@asynccontextmanager
async def scoring_service(servers: Servers, home: Path, *, nats_url: str | None = None,
                          database_url: str | None = None, **overrides: Any) -> AsyncIterator[Scoring]:
    """The service with test settings, on the session's servers or on `nats_url` and `database_url`
    (a service on a NATS of its own keeps its data apart too: the session's streams cannot rebuild
    it); `overrides` are further Settings (a low flood limit …)."""
    nats_url = nats_url or servers.nats_url
    await declare_sources(nats_url)
    port = free_port()
    settings = Settings(database_url=database_url or servers.database_url, nats_url=nats_url, home=home,
                        scoring_port=port,
                        outbox_poll_seconds=0.1, retry_base_seconds=0.2, **overrides)
    async with served(SPEC, settings, port) as service:
        yield Scoring(service.client, service.runtime, nats_url)
