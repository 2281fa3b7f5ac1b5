"""The web tier in front of the five real services, and a real Chromium to use it as people do.

The services run in this process on the session's PostgreSQL, NATS and Temporal (as in the
mission test), with the demo county loaded through their APIs. The web tier is served over real
HTTP on a free port and talks to them only over HTTP. The browser is Debian's `chromium`, driven
by Playwright; where it is missing the browser tests are skipped with one line saying how to get
it, unless MINYI_REQUIRE_BROWSER is set (CI sets it), and then they fail.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import shutil
import struct
import time
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import Servers
from missionutil import bearer, token
from PIL import Image
from serviceutil import Served, all_served

from minyi import demo, demo_county
from minyi.servers import free_port
from services.web.service import build_app
from services.web.work_session import SESSION_COOKIE, SessionCodec, WorkSession
from shared.settings import Settings

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
# Reports per source and hour at intake: low, so that the flood page can be reached in a test. An
# hour, not a minute: the window is a sliding counter that weighs the previous window by how much of
# it is left, so a run crossing a minute's edge could slip one under the limit; an hour's edge
# lowers the count by less than one in the seconds a test takes.
FLOOD_LIMIT = 6
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # This machine has no network beyond loopback: Chromium's own background traffic only fails.
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
    # A microphone that plays a tone, and no permission prompt: MediaRecorder records for real.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
HOW_TO_ENABLE = ("browser tests need Debian's chromium (apt-get install chromium) and playwright "
                 "(pip install -e '.[test]'); .ci/run installs both")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """Chromium's path; skips the test (or, where the browser is required, fails it) without one."""
    path = chromium_path()
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("MINYI_REQUIRE_BROWSER"):
            pytest.fail(f"MINYI_REQUIRE_BROWSER is set but {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)
    return path


@dataclass
class Site:
    """The running stack as a browser test sees it."""

    url: str
    services: dict[str, Served]
    loaded: demo.Loaded
    county: demo_county.County
    web_log: Path
    web_home: Path

    @property
    def county_code(self) -> str:
        return self.county.code

    def session_cookie(self, roles: Sequence[str], *, region: str | None = None, deputy_id: str | None = None,
                       unit_id: str | None = None, name: str = "", ttl_seconds: int = 3600) -> dict[str, Any]:
        """A signed-in session for a browser context (`context.add_cookies([...])`): the cookie the web
        tier would have set after signing this person in, sealed with its own secret, carrying an
        access token the services accept. Page tests use it; the sign-in itself has tests of its own."""
        region = self.county.code if region is None else region
        access = token(roles, region, deputy_id=deputy_id, unit_id=unit_id)
        session = WorkSession(sub=deputy_id or unit_id or f"t-{roles[0]}", roles=tuple(roles), region=region,
                              access_token=access, expires_at=time.time() + ttl_seconds, deputy_id=deputy_id,
                              unit_id=unit_id, name=name)
        secret = (self.web_home / "keys" / "web-secret.bin").read_bytes()
        return {"name": SESSION_COOKIE, "value": SessionCodec(secret).seal(session), "url": self.url,
                "httpOnly": True, "sameSite": "Lax"}

    def code_of(self, owner: str) -> str:
        return self.loaded.codes[owner]

    async def reports_of_deputy(self, deputy_id: str) -> list[dict[str, Any]]:
        client = self.services["intake"].client
        # As this county's staff: the deputy's own list would also hold reports other test modules filed for
        # a deputy of the same id under keys of their own, which this intake cannot decrypt.
        response = await client.get("/v1/reports", params={"deputy_id": deputy_id, "page_size": 100,
                                                           "region_code": self.county_code},
                                    headers=bearer("npc_staff", self.county_code))
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def report_by_content(self, deputy_id: str, marker: str) -> dict[str, Any]:
        """The deputy's view of the report whose content holds `marker` (waiting for it to arrive)."""
        client = self.services["intake"].client
        headers = bearer("npc_staff", self.county_code)
        deadline = time.monotonic() + 20
        while True:
            for item in await self.reports_of_deputy(deputy_id):
                detail = (await client.get(f"/v1/reports/{item['id']}", headers=headers)).json()
                if marker in detail.get("content", ""):
                    return dict(detail)
            if time.monotonic() > deadline:
                raise AssertionError(f"no report of {deputy_id} holds {marker!r}")
            await asyncio.sleep(0.3)

    async def answer(self, deputy_id: str, report_id: str, reply: str) -> None:
        client = self.services["intake"].client
        headers = bearer("deputy", self.county_code, deputy_id=deputy_id)
        for path, body in ((f"/v1/reports/{report_id}/acknowledge", None),
                           (f"/v1/reports/{report_id}/reply", {"content": reply})):
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"


def _service_settings(name: str, servers: Servers, home: Path, port: int) -> Settings:
    values: dict[str, Any] = {
        "database_url": servers.database_url, "nats_url": servers.nats_url, "home": home / name,
        "outbox_poll_seconds": 0.1, "retry_base_seconds": 0.2, f"{name}_port": port,
    }
    if name == "suggestions":
        values["temporal_address"] = servers.temporal_address
    if name == "intake":
        values["flood_limit"] = f"{FLOOD_LIMIT}/hour"
    return Settings(**values)


@asynccontextmanager
async def web_served(settings: Settings, port: int) -> AsyncIterator[str]:
    app = build_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("the web tier stopped while starting")
            if time.monotonic() > deadline:
                raise AssertionError("the web tier did not start within 30 s")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, driven by Playwright, for one test module (skips or fails as `require_browser`)."""
    path = require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def site_stack(servers: Servers, home: Path, county_code: str,
                     web_options: dict[str, Any] | None = None) -> AsyncIterator[Site]:
    """The stack with the demo county; `web_options` are more settings of the web tier (sign-in's)."""
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(
            all_served(servers.nats_url, lambda spec, port: _service_settings(spec.name, servers, home, port)))
        county = demo_county.county(county_code)
        endpoints = demo.Endpoints(**{name: s.base_url for name, s in services.items()})
        loaded = await demo.load(county, endpoints, lambda roles, region: token(roles, region), say=lambda line: None)
        port = free_port()
        web_settings = Settings(
            home=home / "web", dev_secrets=True, web_port=port,
            # Intake made its development proxy secret under its own home; the web tier shows the same one.
            proxy_secret_file=home / "intake" / "keys" / "proxy-secret.txt",
            # Tests name the citizen's address in X-Forwarded-For, as an ingress would.
            trust_forwarded_for=True,
            **{f"{name}_url": s.base_url for name, s in services.items()},
            **(web_options or {}),
        )
        url = await stack.enter_async_context(web_served(web_settings, port))
        yield Site(url, services, loaded, county, home / "web.log", home / "web")


# ---- files a citizen attaches --------------------------------------------------------------------


def phone_photo(width: int = 3000, height: int = 2000) -> bytes:
    """A large JPEG with real detail (a flat colour would compress to nothing and prove nothing)."""
    image = Image.effect_noise((width // 4, height // 4), 64).convert("RGB").resize((width, height))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def voice_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    frames = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


async def fetch(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
        return await client.get(url, **kwargs)
