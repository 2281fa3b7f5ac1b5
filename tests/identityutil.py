"""An identity service in-process on the real servers, and what tests need to talk to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from conftest import Servers
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from services.identity.registry import SOURCES
from services.identity.service import SPEC
from shared import idnumber
from shared.auth import TokenVerifier, public_pem, sign_token
from shared.service import Runtime, build_app
from shared.settings import Settings

KEY = ec.generate_private_key(ec.SECP256R1())


def bearer(role: str, region: str = "", *, sources: Iterable[str] | None = None, sub: str | None = None
           ) -> dict[str, str]:
    """A token of one role; an integration may write every registry source unless `sources` says less."""
    if sources is None:
        sources = SOURCES if role == "integration" else ()
    tok = sign_token(KEY, issuer="minyi", audience="minyi", sub=sub or f"t-{role}", roles=[role], region=region,
                     sources=sources)
    return {"Authorization": f"Bearer {tok}"}


@asynccontextmanager
async def identity_service(servers: Servers, home: Path, **settings_overrides: Any
                           ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    settings = Settings(database_url=servers.database_url, nats_url=servers.nats_url, home=home,
                        outbox_poll_seconds=0.1, retry_base_seconds=0.2, **settings_overrides)
    app: FastAPI = build_app(SPEC, settings)
    app.state.token_verifier = TokenVerifier(issuer="minyi", audience="minyi", public_key_pem=public_pem(KEY))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://identity", timeout=60
    ) as client:
        yield client, app.state.runtime


def id_number(region: str, born: date, seq: int) -> str:
    """A valid 18-character ID number (correct check character) for test people."""
    first17 = f"{region[:6]}{born:%Y%m%d}{seq % 1000:03d}"
    return first17 + idnumber.check_character(first17)


def registry_record(region: str, record_id: str, seq: int, *, born: date = date(1980, 1, 1), called: str = "测试",
                    **over: Any) -> dict[str, Any]:
    """A population registry record of someone born and living in `region`; `over` replaces fields."""
    body: dict[str, Any] = {
        "record_id": record_id,
        "id_number": id_number(region, born, seq),
        "name": f"{called}{seq}",
        "hukou_region_code": f"{region}001",
        "residence_region_code": f"{region}001",
        "status": "active",
        "political_rights": True,
        "updated_at": "2026-10-01T08:00:00+08:00",
    }
    body.update(over)
    return body


def with_wrong_check(number: str) -> str:
    """The same number with a check character that does not match."""
    return number[:-1] + ("1" if number[-1] != "1" else "2")
