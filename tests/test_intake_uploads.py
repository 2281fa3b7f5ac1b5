"""Attachments over HTTP: upload by content type, size limits, metadata stripping, claiming, download, sweeping."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Servers
from intakeutil import Intake, bearer, directory, intake_stack
from PIL import ExifTags, Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from test_intake_attachments_domain import (
    PDF,
    SERIAL,
    amr_bytes,
    encoded,
    exif_with_gps,
    id3_mp3_bytes,
    jpeg_bytes,
    m4a_bytes,
    mp3_bytes,
    opus_bytes,
    picture,
    png_bytes,
    safari_mp4_bytes,
    vp8_track,
    wav_bytes,
    webm_bytes,
    webm_opus_bytes,
    webp_bytes,
)

from services.intake import attachments_api
from services.intake.attachment_store import storage_key
from services.intake.attachments import MAX_BYTES

REGION = "340611"
OTHER_COUNTY = "340613"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-uploads"), flood_limit="1000/minute") as it:
        await directory(it, REGION, None, {"U1": ["US1"], "U2": []}, ["US1"])
        yield it


def is_chinese(text_: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text_)


async def upload(intake: Intake, data: bytes, name: str = "file.bin", content_type: str = "application/octet-stream",
                 headers: dict[str, str] | None = None) -> Any:
    return await intake.client.post("/v1/attachments", files={"file": (name, data, content_type)}, headers=headers)


async def uploaded(intake: Intake, data: bytes, name: str = "file.bin", content_type: str = "application/octet-stream"
                   ) -> dict[str, Any]:
    resp = await upload(intake, data, name, content_type)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def report(intake: Intake, **body: Any) -> Any:
    payload = {"channel": "miniprogram", "code": intake.codes["U1"], "content": "路面塌陷，附现场照片。",
               "anonymous": True, **body}
    return await intake.client.post("/v1/reports", json=payload)


async def total_reports(intake: Intake) -> int:
    resp = await intake.client.get("/v1/reports", headers=bearer("npc_staff", REGION))
    assert resp.status_code == 200, resp.text
    return int(resp.json()["total"])


STAFF = bearer("station_staff", REGION)


# --- accepted types -----------------------------------------------------------------------------------------------

SAMPLES = {
    "jpeg": (jpeg_bytes, "photo", "image/jpeg", "IMG_0001.jpg"),
    "png": (png_bytes, "photo", "image/png", "screenshot.png"),
    "webp": (webp_bytes, "photo", "image/webp", "photo.webp"),
    "wav": (wav_bytes, "voice", "audio/wav", "recording.wav"),
    "amr": (amr_bytes, "voice", "audio/amr", "voice.amr"),
    "ogg": (opus_bytes, "voice", "audio/ogg", "voice.ogg"),
    "mp3": (mp3_bytes, "voice", "audio/mpeg", "voice.mp3"),
    "m4a": (m4a_bytes, "voice", "audio/mp4", "memo.m4a"),
    "webm (Chromium's recorder)": (webm_opus_bytes, "voice", "audio/webm", "voice-note.webm"),
    "mp4 (Safari's recorder)": (safari_mp4_bytes, "voice", "audio/mp4", "voice-note.mp4"),
}


@pytest.mark.parametrize("name", list(SAMPLES))
async def test_every_accepted_type_uploads_with_its_kind_and_media_type(intake: Intake, name: str) -> None:
    make, kind, media_type, filename = SAMPLES[name]
    data = make()
    # The name and the declared type are whatever the sender typed; only the bytes count.
    resp = await upload(intake, data, filename, "application/octet-stream")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"id", "kind", "size", "media_type"}
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["kind"] == kind
    assert body["media_type"] == media_type
    assert body["size"] > 0
    if kind == "voice":
        # Recordings keep their sound byte for byte and lose only their metadata: of the samples, only the Ogg one
        # has any (its comment header names the vendor "minyi", 5 bytes). Photos are re-encoded, so theirs differ.
        assert body["size"] == len(data) - (5 if name == "ogg" else 0)
    assert await attachments_api.store(intake.runtime).exists(storage_key(body["id"]))


# --- refused uploads ----------------------------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><img src=x onerror=alert(1)></body></html>" * 4


@pytest.mark.parametrize(("data", "detail_part"), [
    pytest.param(PDF, "仅支持", id="pdf"),
    pytest.param(HTML, "仅支持", id="html"),
    pytest.param(b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"garbage" * 100, "图片", id="jpeg-magic-garbage"),
    pytest.param(webm_bytes(vp8_track(1)), "WebM", id="webm-video"),
    pytest.param(safari_mp4_bytes(b"vide"), "M4A", id="mp4-video"),
])
async def test_a_file_that_is_not_what_it_claims_is_refused_as_unsupported(
        intake: Intake, data: bytes, detail_part: str) -> None:
    resp = await upload(intake, data, "photo.jpg", "image/jpeg")
    assert resp.status_code == 415, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    problem = resp.json()
    assert problem["status"] == 415
    assert is_chinese(problem["detail"]) and detail_part in problem["detail"]


async def test_an_empty_file_is_invalid(intake: Intake) -> None:
    resp = await upload(intake, b"", "photo.jpg", "image/jpeg")
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert is_chinese(resp.json()["detail"])


async def test_a_file_just_over_ten_megabytes_is_too_large(intake: Intake) -> None:
    data = jpeg_bytes()
    data += bytes(MAX_BYTES + 1 - len(data))
    resp = await upload(intake, data, "photo.jpg", "image/jpeg")
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert is_chinese(resp.json()["detail"]) and "10 MB" in resp.json()["detail"]
    # Exactly the limit is still fine (a WAV padded with trailing bytes is still a WAV); what follows the RIFF
    # is no part of the recording and is not kept.
    wav = wav_bytes()
    resp = await upload(intake, wav + bytes(MAX_BYTES - len(wav)), "voice.wav", "audio/wav")
    assert resp.status_code == 201, resp.text
    assert resp.json()["size"] == len(wav)


async def test_a_declared_content_length_over_the_limit_is_refused_unread(intake: Intake) -> None:
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        chunk = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
        read.append(chunk)
        yield chunk

    resp = await intake.client.post("/v1/attachments", content=body(), headers={
        "Content-Length": str(attachments_api.UPLOAD_LIMIT + 1),
        "Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert is_chinese(resp.json()["detail"])
    assert read == [], "the body was read although its declared length was over the limit"


CHUNK = 64 * 1024


async def chunked_upload(intake: Intake) -> tuple[Any, int]:
    """An upload with no Content-Length (chunked), well over the limit; how much of it the service read."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        head = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                b"Content-Type: audio/wav\r\n\r\n")
        sent += len(head)
        yield head
        for _ in range(attachments_api.UPLOAD_LIMIT // CHUNK + 32):
            sent += CHUNK
            yield b"a" * CHUNK

    resp = await intake.client.post("/v1/attachments", content=body(),
                                    headers={"Content-Type": "multipart/form-data; boundary=x"})
    return resp, sent


async def test_a_chunked_upload_over_the_limit_is_cut_off_as_it_arrives(intake: Intake) -> None:
    resp, sent = await chunked_upload(intake)
    assert resp.status_code != 201, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert sent <= attachments_api.UPLOAD_LIMIT + 2 * CHUNK, "the service kept reading past the limit"


async def test_a_chunked_upload_over_the_limit_is_413(intake: Intake) -> None:
    resp, _ = await chunked_upload(intake)
    assert resp.status_code == 413, resp.text
    assert "过大" in resp.json()["detail"]


# --- photo metadata -----------------------------------------------------------------------------------------------


async def test_gps_and_device_data_are_gone_from_the_photo_staff_download(intake: Intake) -> None:
    original = encoded(picture((80, 60)), "JPEG", quality=95, exif=exif_with_gps())
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo), "the sample must carry GPS to begin with"
    assert SERIAL.encode() in original
    photo = await uploaded(intake, original, "IMG_2024.jpg", "image/jpeg")
    assert photo["kind"] == "photo" and photo["media_type"] == "image/jpeg"
    resp = await report(intake, attachment_ids=[photo["id"]])
    assert resp.status_code == 201, resp.text
    report_id = resp.json()["id"]
    detail = (await intake.client.get(f"/v1/reports/{report_id}", headers=STAFF)).json()
    assert [(a["id"], a["kind"], a["size"]) for a in detail["attachments"]] == [
        (photo["id"], "photo", photo["size"])]

    resp = await intake.client.get(f"/v1/reports/{report_id}/attachments/{photo['id']}", headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    assert "no-store" in resp.headers["cache-control"]
    data = resp.content
    assert len(data) == photo["size"]
    assert SERIAL.encode() not in data and b"Phone Maker" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.size == (80, 60)
        exif = image.getexif()
        assert len(exif) == 0, dict(exif)
        assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert "exif" not in image.info


async def test_a_recording_s_tags_are_gone_from_what_staff_download(intake: Intake) -> None:
    tagged = id3_mp3_bytes()
    assert b"voice note" in tagged
    voice = await uploaded(intake, tagged, "voice.mp3", "audio/mpeg")
    assert voice["size"] == len(mp3_bytes())
    resp = await report(intake, content="", attachment_ids=[voice["id"]])
    assert resp.status_code == 201, resp.text
    download = await intake.client.get(f"/v1/reports/{resp.json()['id']}/attachments/{voice['id']}", headers=STAFF)
    assert download.status_code == 200
    # The ID3 tag (a title here; an artist, a place or a cover picture elsewhere) is gone, the frames are all there.
    assert download.content == mp3_bytes()


# --- claiming attachments -----------------------------------------------------------------------------------------


async def test_a_voice_recording_alone_is_a_report_but_a_photo_alone_is_not(intake: Intake) -> None:
    wav = wav_bytes()
    voice = await uploaded(intake, wav, "voice.wav", "audio/wav")
    resp = await report(intake, content="", attachment_ids=[voice["id"]])
    assert resp.status_code == 201, resp.text
    report_id = resp.json()["id"]
    # The recording comes back byte for byte to those who handle the report.
    download = await intake.client.get(f"/v1/reports/{report_id}/attachments/{voice['id']}", headers=STAFF)
    assert download.status_code == 200 and download.content == wav
    assert download.headers["content-type"] == "audio/wav"

    photo = await uploaded(intake, png_bytes(), "photo.png", "image/png")
    before = await total_reports(intake)
    resp = await report(intake, content="", attachment_ids=[photo["id"]])
    assert resp.status_code == 422, resp.text
    assert "content" in [e["field"] for e in resp.json()["errors"]]
    assert await total_reports(intake) == before
    # The photo was not used up by the refused report: a complete report can still take it.
    resp = await report(intake, content="照片见附件：井盖缺失。", attachment_ids=[photo["id"]])
    assert resp.status_code == 201, resp.text


async def test_an_attachment_serves_one_report_only_and_a_refused_report_writes_nothing(intake: Intake) -> None:
    photo = await uploaded(intake, jpeg_bytes(), "photo.jpg", "image/jpeg")
    fresh = await uploaded(intake, amr_bytes(), "voice.amr", "audio/amr")
    first = await report(intake, attachment_ids=[photo["id"]])
    assert first.status_code == 201, first.text
    before = await total_reports(intake)
    second = await report(intake, content="第二条反映想用同一张照片。", attachment_ids=[photo["id"], fresh["id"]])
    assert second.status_code == 422, second.text
    assert second.headers["content-type"].startswith(PROBLEM_JSON)
    errors = second.json()["errors"]
    assert [e["field"] for e in errors] == ["attachment_ids[0]"]
    assert all(is_chinese(e["message"]) for e in errors)
    assert await total_reports(intake) == before
    page = (await intake.client.get("/v1/reports", params={"page_size": 100},
                                    headers=bearer("npc_staff", REGION))).json()
    assert not [item for item in page["items"] if item["excerpt"].startswith("第二条反映")]
    # The photo still belongs to the first report, and the other attachment was not claimed.
    detail = (await intake.client.get(f"/v1/reports/{first.json()['id']}", headers=STAFF)).json()
    assert [a["id"] for a in detail["attachments"]] == [photo["id"]]
    third = await report(intake, content="", attachment_ids=[fresh["id"]])
    assert third.status_code == 201, third.text


async def test_two_reports_racing_for_one_attachment_get_it_once(intake: Intake) -> None:
    photo = await uploaded(intake, webp_bytes(), "photo.webp", "image/webp")
    results = await asyncio.gather(*(report(intake, content=f"并发反映{i}", attachment_ids=[photo["id"]])
                                     for i in range(2)))
    assert sorted(r.status_code for r in results) == [201, 422], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 422)
    assert [e["field"] for e in loser.json()["errors"]] == ["attachment_ids[0]"]


# --- idempotency --------------------------------------------------------------------------------------------------


async def test_an_upload_retried_with_its_idempotency_key_gets_the_same_attachment(intake: Intake) -> None:
    key = {"Idempotency-Key": f"upload-{uuid.uuid4()}"}
    data = jpeg_bytes()
    first = await upload(intake, data, "photo.jpg", "image/jpeg", headers=key)
    again = await upload(intake, data, "photo.jpg", "image/jpeg", headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json() == again.json()
    other = await upload(intake, png_bytes(), "photo.png", "image/png", headers=key)
    assert other.status_code == 409, other.text
    assert other.headers["content-type"].startswith(PROBLEM_JSON)
    assert is_chinese(other.json()["detail"])
    # Without the key the same bytes make a new attachment.
    plain = await uploaded(intake, data, "photo.jpg", "image/jpeg")
    assert plain["id"] != first.json()["id"]


# --- download -----------------------------------------------------------------------------------------------------


async def test_only_those_concerned_may_download(intake: Intake) -> None:
    photo = await uploaded(intake, jpeg_bytes(), "photo.jpg", "image/jpeg")
    resp = await report(intake, attachment_ids=[photo["id"]])
    assert resp.status_code == 201, resp.text
    url = f"/v1/reports/{resp.json()['id']}/attachments/{photo['id']}"
    assert (await intake.client.get(url, headers=bearer("deputy", REGION, deputy_id="U1"))).status_code == 200
    assert (await intake.client.get(url, headers=bearer("npc_staff", REGION))).status_code == 200
    refused = await intake.client.get(url, headers=bearer("deputy", REGION, deputy_id="U2"))
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM_JSON) and is_chinese(refused.json()["detail"])
    assert (await intake.client.get(url, headers=bearer("npc_staff", OTHER_COUNTY))).status_code == 403
    assert (await intake.client.get(url, headers=bearer("station_staff", OTHER_COUNTY))).status_code == 403
    assert (await intake.client.get(url)).status_code == 401
    assert (await intake.client.get(url, headers=bearer("citizen", REGION))).status_code == 403
    # An attachment is only reachable through its own report.
    other = await report(intake, content="另一条反映。")
    assert other.status_code == 201, other.text
    wrong = await intake.client.get(f"/v1/reports/{other.json()['id']}/attachments/{photo['id']}", headers=STAFF)
    assert wrong.status_code == 404, wrong.text


# --- sweeping (keep last: it forgets every unclaimed upload of the module) -----------------------------------------


async def attachment_rows(servers: Servers, *ids: str) -> set[str]:
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id FROM intake.attachments WHERE id = ANY(:ids)"),
                                       {"ids": list(ids)})).all()
    finally:
        await engine.dispose()
    return {r.id for r in rows}


async def test_uploads_nobody_claimed_are_forgotten_after_a_day(intake: Intake, servers: Servers) -> None:
    store = attachments_api.store(intake.runtime)
    orphan = await uploaded(intake, png_bytes(), "photo.png", "image/png")
    kept = await uploaded(intake, wav_bytes(), "voice.wav", "audio/wav")
    resp = await report(intake, content="", attachment_ids=[kept["id"]])
    assert resp.status_code == 201, resp.text
    report_id = resp.json()["id"]

    # Not yet: the citizen may still be filling in the report.
    await attachments_api.sweep_unclaimed(intake.runtime)
    assert await attachment_rows(servers, orphan["id"], kept["id"]) == {orphan["id"], kept["id"]}
    assert await store.exists(storage_key(orphan["id"]))

    intake.clock.at = datetime.now(UTC) + timedelta(hours=25)
    try:
        removed = await attachments_api.sweep_unclaimed(intake.runtime)
    finally:
        intake.clock.at = None
    assert removed >= 1
    assert await attachment_rows(servers, orphan["id"], kept["id"]) == {kept["id"]}
    assert not await store.exists(storage_key(orphan["id"]))
    assert await store.exists(storage_key(kept["id"]))
    download = await intake.client.get(f"/v1/reports/{report_id}/attachments/{kept['id']}", headers=STAFF)
    assert download.status_code == 200 and download.content == wav_bytes()
    # A report naming the forgotten upload is told to upload it again.
    resp = await report(intake, attachment_ids=[orphan["id"]])
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["attachment_ids[0]"]
