"""Every service refuses an oversized body before reading it, token or not (413 problem+json).

The bodies are written by hand on a raw socket, so the test sees whether the service answered
while the client was still holding most of the body back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Servers
from serviceutil import all_served

from shared.settings import Settings

# One route per service that takes a JSON body, none of them with a token here.
ROUTES = {
    "identity": "/v1/regions/330521",
    "intake": "/v1/reports",
    "routing": "/v1/grid-platforms/limit-probe",
    "suggestions": "/v1/suggestions",
    "scoring": "/v1/activities",
}
METHOD = {"identity": "PUT", "routing": "PUT"}
FIFTY_MB = 50 * 1024 * 1024


def settings_for(servers: Servers, name: str, home: Path, port: int) -> Settings:
    values: dict[str, Any] = {
        "database_url": servers.database_url, "nats_url": servers.nats_url, "home": home,
        "temporal_address": servers.temporal_address, f"{name}_port": port, "outbox_poll_seconds": 0.2,
        "clock_poll_seconds": 3600, "grid_dispatch_poll_seconds": 5,
    }
    return Settings(**values)


@pytest.fixture(scope="module")
async def urls(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("limits")
    async with all_served(servers.nats_url,
                          lambda spec, port: settings_for(servers, spec.name, home / spec.name, port)) as running:
        yield {name: served.base_url for name, served in running.items()}


async def answer_while_holding_back(url: str, method: str, path: str, *,
                                    chunked: bool) -> tuple[int, dict[str, Any], int]:
    """Sends the headers of a 50 MB body and at most 1 MB of it; returns status, body and bytes sent."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {FIFTY_MB}"
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                 f"{length}\r\n\r\n".encode())
    sent = 0
    chunk = b'{"x":"' + b"a" * (64 * 1024 - 8) + b'",'
    status_line = b""
    try:
        while sent < 1024 * 1024:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
            try:
                status_line = await asyncio.wait_for(reader.readline(), timeout=0.05)
            except TimeoutError:
                continue
            if status_line:
                break
        if not status_line:
            status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    except (ConnectionResetError, BrokenPipeError):
        status_line = status_line or await asyncio.wait_for(reader.readline(), timeout=10)
    headers: dict[str, str] = {}
    while (line := await asyncio.wait_for(reader.readline(), timeout=10)) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout=10)
    writer.close()
    assert headers["content-type"].startswith("application/problem+json"), headers
    return int(status_line.split()[1]), json.loads(body), sent


@pytest.mark.parametrize("service", sorted(ROUTES))
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_an_oversized_body_is_refused_before_it_is_read(urls: dict[str, str], service: str,
                                                              chunked: bool) -> None:
    status, problem, sent = await answer_while_holding_back(urls[service], METHOD.get(service, "POST"),
                                                            ROUTES[service], chunked=chunked)
    assert status == 413, (service, problem)
    assert problem["detail"].startswith("提交的内容过大"), problem
    # The refusal came with at most the limit (256 KB) and what was in flight, never the 50 MB.
    assert sent <= 1024 * 1024


async def test_registry_batches_keep_their_larger_limit(urls: dict[str, str]) -> None:
    # 1 MB of records is refused for want of a token (401), not for its size: the batch limit is larger.
    status, problem, _ = await answer_while_holding_back(urls["identity"], "POST", "/v1/registry/population/records",
                                                         chunked=False)
    assert status == 401, problem
