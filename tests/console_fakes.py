"""What the console's page tests share: a staff member signed in to a web app whose services are fakes,
and reading the pages it answers as a browser would see them."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from services.web.service import build_app
from services.web.work_session import SESSION_COOKIE, SessionCodec, WorkSession
from shared.settings import Settings


@asynccontextmanager
async def staff_client(tmp_path: Path, transports: Mapping[str, httpx.AsyncBaseTransport], *, region: str,
                       token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app holding the sealed session of a member of congress staff of `region`."""
    app = build_app(Settings(home=tmp_path, dev_secrets=True), transports=transports)
    secret = (tmp_path / "keys" / "web-secret.bin").read_bytes()
    staff = WorkSession(sub="m-npc_staff", roles=("npc_staff",), region=region, access_token=token,
                        expires_at=time.time() + 3600, name="周敏")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver",
                                 cookies={SESSION_COOKIE: SessionCodec(secret).seal(staff)}) as http:
        yield http
    await app.state.web.upstreams.close()


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def page(response: httpx.Response, status: int = 200) -> str:
    """The page's HTML, once it is the page expected: no inline style or script, which the CSP would block."""
    assert response.status_code == status, response.text[:1500]
    assert response.headers["content-type"].startswith("text/html")
    assert "style=" not in response.text and not re.search(r"<script(?![^>]*\bsrc=)", response.text)
    return response.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page holds no form token"
    return found.group(1)
