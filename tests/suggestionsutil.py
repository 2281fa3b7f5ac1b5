"""The suggestions service on the real servers (PostgreSQL, NATS, a Temporal server of the test's
choosing), with what tests need to feed and drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from busutil import event_body, eventually, publish
from conftest import Servers
from identityutil import KEY
from serviceutil import served
from sqlalchemy import select
from temporalio.client import Client

from minyi.servers import free_port
from services.suggestions.models import DeputyView, TimelineEntry
from services.suggestions.service import SPEC
from shared.auth import sign_token
from shared.bus.streams import declare
from shared.contracts import STREAMS
from shared.ids import new_id
from shared.service import Runtime
from shared.settings import Settings


def bearer(role: str, region: str = "", *, deputy_id: str | None = None, unit_id: str | None = None,
           sub: str | None = None) -> dict[str, str]:
    tok = sign_token(KEY, issuer="minyi", audience="minyi", sub=sub or f"t-{role}-{region}-{deputy_id}-{unit_id}",
                     roles=[role], region=region, deputy_id=deputy_id, unit_id=unit_id)
    return {"Authorization": f"Bearer {tok}"}


# Congress staff of the province the suggestions tests' counties (34xxxx) lie in: a staff token
# always names its region.
STAFF = bearer("npc_staff", "34")


@dataclass
class Suggestions:
    client: httpx.AsyncClient
    runtime: Runtime
    nats_url: str

    async def deputy(self, deputy_id: str, region_code: str, name: str = "张代表", version: int = 1) -> None:
        data = {"id": deputy_id, "name": name, "level": "county", "region_code": region_code, "station_ids": [],
                "district_id": None, "groups": [], "version": version}
        await publish(self.nats_url, "identity.deputy.updated", event_body(new_id(), "identity.deputy.updated", data))

        async def known() -> bool:
            async with self.runtime.sessions()() as session:
                row = await session.get(DeputyView, deputy_id)
                return row is not None and row.version >= version

        await eventually(known, timeout=20, what=f"deputy {deputy_id} in the suggestions projection")

    async def unit(self, unit_id: str, region_code: str) -> None:
        resp = await self.client.put(f"/v1/units/{unit_id}", headers=STAFF,
                                     json={"name": f"{unit_id}局", "region_code": region_code})
        assert resp.status_code == 200, resp.text

    async def submit(self, deputy_id: str, *, title: str, content: str, year: int, **extra: Any) -> dict[str, Any]:
        """As the deputy, whose token names the region identity announced for them."""
        async with self.runtime.sessions()() as session:
            known = await session.get(DeputyView, deputy_id)
        region = known.region_code if known is not None else ""
        body = {"title": title, "content": content, "lead_deputy_id": deputy_id, "year": year, "kind": "session",
                **extra}
        resp = await self.client.post("/v1/suggestions", json=body,
                                      headers=bearer("deputy", region, deputy_id=deputy_id))
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def act(self, suggestion_id: str, action: str, body: dict[str, Any], headers: dict[str, str],
                  status: int = 200) -> dict[str, Any]:
        resp = await self.client.post(f"/v1/suggestions/{suggestion_id}/{action}", json=body, headers=headers)
        assert resp.status_code == status, f"{action}: {resp.status_code} {resp.text}"
        return dict(resp.json())

    async def get(self, suggestion_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        resp = await self.client.get(f"/v1/suggestions/{suggestion_id}", headers=headers or STAFF)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def recorded(self, suggestion_id: str, seq: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The suggestion once its projection has caught up with step `seq` (read as `headers`, by
        default staff of the 34xxxx counties)."""
        latest: dict[str, Any] = {}

        async def caught_up() -> bool:
            nonlocal latest
            resp = await self.client.get(f"/v1/suggestions/{suggestion_id}", headers=headers or STAFF)
            latest = dict(resp.json()) if resp.status_code == 200 else {}
            return bool(latest) and int(latest["seq"]) >= seq

        await eventually(caught_up, timeout=30, what=f"suggestion {suggestion_id} recorded up to step {seq}")
        return latest


async def declare_consumed_streams(nats_url: str) -> None:
    """Suggestions consumes identity's deputies and routing's hotspots; declare them where those do not run."""
    nc = await nats.connect(nats_url)
    try:
        for name in ("identity", "routing"):
            await declare(nc.jetstream(), STREAMS[name], replicas=1)
    finally:
        await nc.close()


@asynccontextmanager
async def suggestions_service(servers: Servers, home: Path, temporal: Client | None = None,
                              **overrides: Any) -> AsyncIterator[Suggestions]:
    """With `temporal`, the service uses that client (a time-skipping one) instead of the dev server;
    `overrides` are settings, `temporal_address` among them for a Temporal server of the test's own."""
    await declare_consumed_streams(servers.nats_url)
    port = free_port()
    settings = Settings(**{"database_url": servers.database_url, "nats_url": servers.nats_url,
                           "temporal_address": servers.temporal_address, "home": home, "suggestions_port": port,
                           "outbox_poll_seconds": 0.1, "retry_base_seconds": 0.2, **overrides})

    def use_client(runtime: Runtime) -> None:
        runtime.temporal = temporal

    async with served(SPEC, settings, port, use_client if temporal is not None else None) as service:
        yield Suggestions(service.client, service.runtime, servers.nats_url)


async def timeline_kinds(runtime: Runtime, suggestion_id: str) -> list[str]:
    async with runtime.sessions()() as session:
        return list((await session.scalars(select(TimelineEntry.kind).where(
            TimelineEntry.suggestion_id == suggestion_id).order_by(TimelineEntry.seq))).all())
