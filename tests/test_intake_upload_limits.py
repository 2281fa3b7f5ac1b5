"""Uploads against the limits that keep an intake pod and its volume whole: flood control before the body is read,
pixels and inflation checked before a photo is decoded, photos decoded a few at a time, and quotas on uploads no
report has claimed yet. Intake runs alone on a database of its own, so that the total of unclaimed uploads is this
module's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from busutil import fresh_database
from conftest import Servers
from fastapi import FastAPI
from intakeutil import Clock, bearer, declare_upstream_streams, intake_app
from PIL import Image
from sqlalchemy import text
from test_intake_attachments_domain import amr_bytes, encoded, picture

from services.intake import attachments, attachments_api
from services.intake.attachments import Detected

PROBLEM_JSON = "application/problem+json"
AMR_SIZE = len(amr_bytes())  # 646 bytes, stored as sent: AMR carries no metadata
PER_SOURCE = 3 * AMR_SIZE
REGION = "340611"


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, Any, FastAPI]]:
    database_url = await fresh_database(servers.database_url, "minyi_intake_upload_limits")
    await declare_upstream_streams(servers.nats_url)
    own = SimpleNamespace(database_url=database_url, nats_url=servers.nats_url)
    async with intake_app(own, tmp_path_factory.mktemp("intake-upload-limits"), Clock(),  # type: ignore[arg-type]
                          flood_limit="6/minute", unclaimed_upload_bytes_per_source=PER_SOURCE) as running:
        yield running


_addresses = iter(range(1, 250))


def client_of(intake: tuple[httpx.AsyncClient, Any, FastAPI]) -> httpx.AsyncClient:
    """A client from an address of its own: flood control and the per-source quota count it apart."""
    app = intake[2]
    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{next(_addresses)}", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=60)


async def upload(client: httpx.AsyncClient, data: bytes, name: str = "file.bin") -> httpx.Response:
    return await client.post("/v1/attachments", files={"file": (name, data, "application/octet-stream")})


STAFF = bearer("station_staff", REGION)


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# --- flood control before the body ----------------------------------------------------------------------------------


async def test_a_flooding_source_is_refused_before_its_body_is_read(
        intake: tuple[httpx.AsyncClient, Any, FastAPI]) -> None:
    async with client_of(intake) as client:
        # Every request counts, whatever its answer: six requests that are not even forms use the limit up.
        for _ in range(6):
            resp = await client.post("/v1/attachments", content=b"x", headers={"Content-Type": "text/plain"})
            assert resp.status_code == 422, resp.text
        read: list[bytes] = []

        async def body() -> AsyncIterator[bytes]:
            chunk = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.amr\"\r\n\r\n"
                     + amr_bytes() + b"\r\n--x--\r\n")
            read.append(chunk)
            yield chunk

        resp = await client.post("/v1/attachments", content=body(),
                                 headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert resp.status_code == 429, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM_JSON) and int(resp.headers["retry-after"]) >= 1
        assert is_chinese(resp.json()["detail"])
        assert read == [], "the body was read before flood control refused the upload"


async def test_what_is_not_a_form_with_a_file_is_refused_in_chinese(
        intake: tuple[httpx.AsyncClient, Any, FastAPI]) -> None:
    async with client_of(intake) as client:
        no_form = await client.post("/v1/attachments", content=amr_bytes(),
                                    headers={"Content-Type": "application/octet-stream"})
        assert no_form.status_code == 422, no_form.text
        assert "multipart/form-data" in no_form.json()["detail"]
        other_field = await client.post("/v1/attachments", files={"photo": ("a.amr", amr_bytes(), "audio/amr")})
        assert other_field.status_code == 422, other_field.text
        assert [e["field"] for e in other_field.json()["errors"]] == ["file"]
        broken = await client.post("/v1/attachments", content=b"--x\r\nno headers end here",
                                   headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert broken.status_code in (400, 422), broken.text
        assert is_chinese(broken.json()["detail"])


# --- photos that cost too much to decode ----------------------------------------------------------------------------


async def test_a_photo_over_sixteen_megapixels_is_413(intake: tuple[httpx.AsyncClient, Any, FastAPI]) -> None:
    # 4100 x 4000 = 16.4 MP of grey: a few kilobytes of PNG.
    data = encoded(Image.new("L", (4100, 4000)), "PNG", optimize=True)
    async with client_of(intake) as client:
        resp = await upload(client, data, "big.png")
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert "4100×4000" in resp.json()["detail"] and "16 百万像素" in resp.json()["detail"]


async def test_a_photo_that_inflates_hundreds_of_times_is_422(
        intake: tuple[httpx.AsyncClient, Any, FastAPI]) -> None:
    # 4000 x 3000 RGB decodes to 48,000,000 bytes from some 35 KB of PNG: over 1,000 times its size.
    data = encoded(Image.new("RGB", (4000, 3000)), "PNG", optimize=True)
    assert len(data) * 200 < 48_000_000
    async with client_of(intake) as client:
        resp = await upload(client, data, "flat.png")
    assert resp.status_code == 422, resp.text
    assert "解压后的体积" in resp.json()["detail"]


async def test_photos_are_decoded_two_at_a_time(intake: tuple[httpx.AsyncClient, Any, FastAPI],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    running = peak = 0

    def watched(data: bytes, detected: Detected) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            # Long enough that six uploads sent together would all be decoding at once without a bound.
            time.sleep(0.3)
            return attachments.strip_photo_metadata(data, detected)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(attachments_api, "strip_photo_metadata", watched)
    # Station staff's uploads are bound by neither flood control nor the quotas, only by the decoding bound.
    photo = encoded(picture((320, 240)), "JPEG")
    async with client_of(intake) as staff:
        answers = await asyncio.gather(*(
            staff.post("/v1/attachments", files={"file": ("a.jpg", photo, "image/jpeg")}, headers=STAFF)
            for _ in range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert peak == 2
    assert attachments_api.DECODES_AT_ONCE == 2


# --- quotas on unclaimed uploads ------------------------------------------------------------------------------------


async def claim(client: httpx.AsyncClient, attachment_id: str) -> None:
    resp = await client.post("/v1/reports", json={
        "channel": "h5", "region_code": REGION, "content": "", "anonymous": True, "attachment_ids": [attachment_id]})
    assert resp.status_code == 201, resp.text


async def test_unclaimed_uploads_are_bounded_per_source_and_in_total(
        intake: tuple[httpx.AsyncClient, Any, FastAPI], monkeypatch: pytest.MonkeyPatch) -> None:
    # The module's earlier uploads count against the total: room is made for six recordings beyond them.
    runtime = intake[1]
    async with runtime.database.sessions() as session:
        held = int(await session.scalar(text(
            "SELECT coalesce(sum(size), 0) FROM intake.attachments WHERE report_id IS NULL")) or 0)
    monkeypatch.setattr(runtime.settings, "unclaimed_upload_bytes_total", held + 6 * AMR_SIZE)

    async with client_of(intake) as first:
        # The web tier sends every upload with an Idempotency-Key.
        keys = [{"Idempotency-Key": f"quota-{n}"} for n in range(3)]
        ids = [(await first.post("/v1/attachments", files={"file": ("a.amr", amr_bytes(), "audio/amr")},
                                 headers=key)).json()["id"] for key in keys]
        # 3 x 646 = 1,938 bytes: the source's quota exactly. One byte more does not fit, and the body of a
        # new upload is not even read.
        read: list[bytes] = []

        async def body() -> AsyncIterator[bytes]:
            chunk = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.amr\"\r\n\r\n"
                     + amr_bytes() + b"\r\n--x--\r\n")
            read.append(chunk)
            yield chunk

        refused = await first.post("/v1/attachments", content=body(), headers={
            "Content-Type": "multipart/form-data; boundary=x", "Idempotency-Key": "quota-new"})
        assert refused.status_code == 429, refused.text
        assert read == [], "the body was read although the source was over its quota"
        # A retry of an upload that was taken still gets its answer.
        again = await first.post("/v1/attachments", files={"file": ("a.amr", amr_bytes(), "audio/amr")},
                                 headers=keys[2])
        assert again.status_code == 201 and again.json()["id"] == ids[2], again.text
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        # The oldest of them is forgotten a day after it came: 86,400 s, less the moments the test took.
        assert 86_000 < int(refused.headers["retry-after"]) <= 86_400
        assert refused.json()["detail"] == "您已上传但尚未提交的附件超过 1 KB。请先提交反映，或约 24 小时后再上传。"
        # A report claims one: its bytes belong to the report now, and there is room again.
        await claim(first, ids[0])
        assert (await upload(first, amr_bytes())).status_code == 201

    # Three other sources fill the rest of the total; the next upload finds it full, whoever sends it.
    for _ in range(3):
        async with client_of(intake) as other:
            resp = await upload(other, amr_bytes())
            assert resp.status_code == 201, resp.text
    async with client_of(intake) as late:
        full = await upload(late, amr_bytes())
    assert full.status_code == 507, full.text
    assert full.headers["content-type"].startswith(PROBLEM_JSON)
    # Space comes back when the oldest unclaimed upload is swept: a day and one sweeping round (10 minutes) on.
    assert 86_000 < int(full.headers["retry-after"]) <= 87_000
    assert full.json()["detail"] == "附件存储空间暂时已满，请约 25 小时后再上传。"
    # Station staff upload for the people at their counter: not bound by the quotas.
    async with client_of(intake) as staff:
        resp = await staff.post("/v1/attachments", files={"file": ("a.amr", amr_bytes(), "audio/amr")},
                                headers=STAFF)
    assert resp.status_code == 201, resp.text
