"""Flood control on scoring's routes open to anyone: the rankings, the units' board, the rules.

Counted per caller's pseudonym (shared/client_source.py) with the lookup limit
(`MINYI_LOOKUP_LIMIT`, 120 a minute by default), as intake counts its public statistics. Staff,
admins and integrations act under a token that names them, and are not counted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, current_principal, get_verifier
from shared.client_source import source_of
from shared.flood import FloodGuard
from shared.service import Runtime

UNLIMITED_ROLES = frozenset({"admin", "npc_staff", "station_staff", "integration"})
_STATE_KEY = "scoring.public_reads"


async def caller(request: Request) -> Principal | None:
    """The caller's token when there is one (a bad one is 401); no token is anyone. Without a token
    no verifier is looked up, so these routes answer anyone even where no key is configured."""
    if not request.headers.get("authorization"):
        return None
    return await current_principal(request, await get_verifier(request))


Caller = Annotated[Principal | None, Depends(caller)]


def guard(runtime: Runtime) -> FloodGuard:
    return runtime.kept(_STATE_KEY, lambda: FloodGuard(runtime.settings.lookup_limit))


async def check(request: Request, runtime: Runtime, who: Principal | None, bucket: str) -> None:
    """429 with Retry-After once this caller has asked too often."""
    if who is not None and who.roles & UNLIMITED_ROLES:
        return
    await guard(runtime).check(bucket, source_of(request))
