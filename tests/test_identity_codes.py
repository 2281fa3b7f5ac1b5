"""QR codes (亮码) over HTTP and NATS on real PostgreSQL and NATS: issue, resolve, revoke, print."""

from __future__ import annotations

import asyncio
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from conftest import Servers
from identityutil import bearer, identity_service
from PIL import Image

from services.identity.codes import ALPHABET, CodeSigner
from services.identity.codes_responder import SUBJECT
from shared.service import Runtime

BASE_URL = "https://minyi.example"
SVG = "{http://www.w3.org/2000/svg}"


ADMIN = bearer("admin")
STAFF = bearer("station_staff", "330102")


@dataclass
class Identity:
    client: httpx.AsyncClient
    runtime: Runtime


@pytest.fixture(scope="module")
async def identity(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Identity]:
    home = tmp_path_factory.mktemp("identity-codes-home")
    async with identity_service(servers, home, public_base_url=BASE_URL) as (client, runtime):
        for code, name, parent in (("330000", "浙江省", None), ("330100", "杭州市", "330000"),
                                   ("330102", "上城区", "330100"), ("330105", "拱墅区", "330100")):
            resp = await client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}, headers=ADMIN)
            assert resp.status_code in (200, 201), resp.text
        await asyncio.wait_for(runtime.bus_started.wait(), timeout=30)
        yield Identity(client, runtime)


async def _station(client: httpx.AsyncClient, station_id: str, name: str, region: str = "330102") -> None:
    resp = await client.put(f"/v1/stations/{station_id}", json={"name": name, "kind": "station",
                                                               "region_code": region}, headers=ADMIN)
    assert resp.status_code in (200, 201), resp.text


async def _deputy(client: httpx.AsyncClient, deputy_id: str, name: str, region: str = "330102") -> None:
    resp = await client.put(f"/v1/deputies/{deputy_id}", json={"name": name, "level": "county",
                                                               "region_code": region}, headers=ADMIN)
    assert resp.status_code in (200, 201), resp.text


async def _issue(client: httpx.AsyncClient, path: str, headers: dict[str, str] = ADMIN) -> str:
    resp = await client.post(f"/v1/{path}/code", headers=headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["url"] == f"{BASE_URL}/q/{body['code']}"
    return str(body["code"])


def _scanned(kind: str, target_id: str, name: str, region_code: str, region_name: str | None,
             **extra: Any) -> dict[str, Any]:
    """What `GET /v1/codes/{code}` answers: the owner, and the rest null or empty unless given."""
    return {"kind": kind, "id": target_id, "name": name, "region_code": region_code, "region_name": region_name,
            "level": None, "stations": [], "station_kind": None, "deputies": [], **extra}


def _assert_gone(resp: httpx.Response) -> None:
    assert resp.status_code == 404, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == "亮码无效或已失效。"


async def test_issue_resolve_reissue_and_revoke(identity: Identity) -> None:
    client = identity.client
    await _deputy(client, "QRD-1", "李秀英")
    first = await _issue(client, "deputies/QRD-1")
    resolved = await client.get(f"/v1/codes/{first}")  # no token: a citizen scanning the wall
    assert resolved.status_code == 200, resolved.text
    assert resolved.json() == _scanned("deputy", "QRD-1", "李秀英", "330102", "上城区", level="county")
    assert (await client.get(f"/v1/codes/{first.lower()}")).json()["id"] == "QRD-1"

    second = await _issue(client, "deputies/QRD-1")
    assert second != first
    _assert_gone(await client.get(f"/v1/codes/{first}"))
    assert (await client.get(f"/v1/codes/{second}")).json()["name"] == "李秀英"

    assert (await client.delete("/v1/deputies/QRD-1/code", headers=ADMIN)).status_code == 204
    _assert_gone(await client.get(f"/v1/codes/{second}"))
    again = await client.delete("/v1/deputies/QRD-1/code", headers=ADMIN)
    assert again.status_code == 404 and again.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/deputies/QRD-1/code.svg", headers=STAFF)).status_code == 404

    await _station(client, "QRS-1", "上城区人大代表联络站")
    station = await _issue(client, "stations/QRS-1")
    assert (await client.get(f"/v1/codes/{station}")).json() == _scanned(
        "station", "QRS-1", "上城区人大代表联络站", "330102", "上城区", station_kind="station")
    assert (await client.post("/v1/deputies/QRD-NOBODY/code", headers=ADMIN)).status_code == 404


async def test_forged_and_malformed_codes_are_refused_without_the_database(identity: Identity) -> None:
    client = identity.client
    await _station(client, "QRS-2", "望江街道联络站")
    code = await _issue(client, "stations/QRS-2")
    flipped = code[:5] + ALPHABET[(ALPHABET.index(code[5]) + 1) % 32] + code[6:]
    foreign = CodeSigner.from_secret(b"\x42" * 32).issue()
    db, identity.runtime.db = identity.runtime.db, None
    try:
        # With no database at all, only the HMAC check can be answering.
        for bad in (flipped, foreign, "hello", "1" * 500, "%E4%B8%AD"):
            _assert_gone(await client.get(f"/v1/codes/{bad}"))
    finally:
        identity.runtime.db = db
    assert (await client.get(f"/v1/codes/{code}")).status_code == 200


async def test_renaming_shows_through_the_code_at_once(identity: Identity) -> None:
    client = identity.client
    await _station(client, "QRS-3", "清波街道联络站")
    await _deputy(client, "QRD-3", "张伟")
    station = await _issue(client, "stations/QRS-3")
    deputy = await _issue(client, "deputies/QRD-3")
    # Read both once so the cache holds the old names.
    assert (await client.get(f"/v1/codes/{station}")).json()["name"] == "清波街道联络站"
    assert (await client.get(f"/v1/codes/{deputy}")).json()["name"] == "张伟"

    await _station(client, "QRS-3", "清波街道人大代表之家")
    await _deputy(client, "QRD-3", "张伟民", region="330105")
    assert (await client.get(f"/v1/codes/{station}")).json()["name"] == "清波街道人大代表之家"
    assert (await client.get(f"/v1/codes/{deputy}")).json() == _scanned(
        "deputy", "QRD-3", "张伟民", "330105", "拱墅区", level="county")


STATIONS = (("QRS-10", "湖滨街道代表之家", "home"), ("QRS-11", "上城区代表联络服务中心", "service_center"))
# Registered in no particular order; a scan lists them by level (national first), then by name.
DEPUTIES = (("QRD-10", "赵乡", "township", "330102"), ("QRD-11", "钱国", "national", "330000"),
            ("QRD-12", "孙区", "county", "330102"), ("QRD-13", "李区", "county", "330102"),
            ("QRD-14", "周省", "provincial", "330000"))


async def test_a_scan_shows_the_deputys_stations_and_the_stations_deputies(identity: Identity) -> None:
    client = identity.client
    for station_id, name, kind in STATIONS:
        resp = await client.put(f"/v1/stations/{station_id}", headers=ADMIN,
                                json={"name": name, "kind": kind, "region_code": "330102"})
        assert resp.status_code in (200, 201), resp.text
    for deputy_id, name, level, region in DEPUTIES:
        resp = await client.put(f"/v1/deputies/{deputy_id}", headers=ADMIN, json={
            "name": name, "level": level, "region_code": region, "station_ids": ["QRS-11", "QRS-10"],
            "phone": "13800138000"})
        assert resp.status_code in (200, 201), resp.text
    resp = await client.put("/v1/deputies/QRD-15", headers=ADMIN, json={
        "name": "吴别处", "level": "county", "region_code": "330105", "station_ids": ["QRS-11"]})
    assert resp.status_code in (200, 201), resp.text

    county = [{"id": i, "name": n, "level": "county"} for n, i in sorted([("孙区", "QRD-12"), ("李区", "QRD-13")])]
    home = (await client.get(f"/v1/codes/{await _issue(client, 'stations/QRS-10')}")).json()
    assert home == _scanned("station", "QRS-10", "湖滨街道代表之家", "330102", "上城区", station_kind="home", deputies=[
        {"id": "QRD-11", "name": "钱国", "level": "national"}, {"id": "QRD-14", "name": "周省", "level": "provincial"},
        *county, {"id": "QRD-10", "name": "赵乡", "level": "township"}])
    center = (await client.get(f"/v1/codes/{await _issue(client, 'stations/QRS-11')}")).json()
    by_name = sorted([("孙区", "QRD-12"), ("李区", "QRD-13"), ("吴别处", "QRD-15")])
    assert [d["id"] for d in center["deputies"]] == ["QRD-11", "QRD-14", *(i for _, i in by_name), "QRD-10"]

    deputy = await client.get(f"/v1/codes/{await _issue(client, 'deputies/QRD-11')}")
    assert deputy.json() == _scanned("deputy", "QRD-11", "钱国", "330000", "浙江省", level="national", stations=[
        {"id": "QRS-10", "name": "湖滨街道代表之家", "kind": "home"},
        {"id": "QRS-11", "name": "上城区代表联络服务中心", "kind": "service_center"}])
    assert "13800138000" not in deputy.text and "8000" not in deputy.text, "no phone, not even masked"

    # Leaving a station shows at the next scan of the station's code.
    resp = await client.put("/v1/deputies/QRD-10", headers=ADMIN, json={
        "name": "赵乡", "level": "township", "region_code": "330102", "station_ids": ["QRS-11"]})
    assert resp.status_code == 200, resp.text
    again = (await client.get(f"/v1/codes/{await _issue(client, 'stations/QRS-10')}")).json()
    assert "QRD-10" not in [d["id"] for d in again["deputies"]]


async def test_only_admins_of_the_region_issue_and_revoke(identity: Identity) -> None:
    client = identity.client
    await _deputy(client, "QRD-4", "王芳")
    other = bearer("admin", "330105")
    assert (await client.post("/v1/deputies/QRD-4/code", headers=other)).status_code == 403
    assert (await client.post("/v1/deputies/QRD-4/code", headers=bearer("npc_staff"))).status_code == 403
    assert (await client.post("/v1/deputies/QRD-4/code")).status_code == 401
    code = await _issue(client, "deputies/QRD-4", headers=bearer("admin", "330102"))
    assert (await client.delete("/v1/deputies/QRD-4/code", headers=other)).status_code == 403
    assert (await client.get(f"/v1/codes/{code}")).status_code == 200


async def test_a_retried_issue_with_the_same_idempotency_key_gets_the_same_code(identity: Identity) -> None:
    client = identity.client
    await _deputy(client, "QRD-5", "陈静")
    once = await client.post("/v1/deputies/QRD-5/code", headers={**ADMIN, "Idempotency-Key": "k-1"})
    twice = await client.post("/v1/deputies/QRD-5/code", headers={**ADMIN, "Idempotency-Key": "k-1"})
    assert once.status_code == twice.status_code == 201 and once.json() == twice.json()
    await _issue(client, "deputies/QRD-5")
    late = await client.post("/v1/deputies/QRD-5/code", headers={**ADMIN, "Idempotency-Key": "k-1"})
    assert late.status_code == 409


async def test_svg_is_printable_with_the_name_under_the_code(identity: Identity) -> None:
    client = identity.client
    name = "湖滨街道人大代表联络站 <东坡路>"
    await _station(client, "QRS-6", name)
    code = await _issue(client, "stations/QRS-6")
    resp = await client.get("/v1/stations/QRS-6/code.svg", headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(resp.content)
    assert root.tag == f"{SVG}svg"
    (label,) = root.iter(f"{SVG}text")
    assert label.text == name and "Noto Sans CJK SC" in label.attrib["font-family"]
    paths = [p.attrib["d"] for p in root.iter(f"{SVG}path")]
    assert paths and paths[0].startswith("M") and paths[0].count("h") > 50
    assert code in "".join(root.itertext())  # the URL, as the symbol's description
    assert (await client.get("/v1/stations/QRS-6/code.svg", headers=bearer("station_staff", "330105"))
            ).status_code == 404
    assert (await client.get("/v1/stations/QRS-6/code.svg", headers=bearer("citizen"))).status_code == 403


async def test_png_is_printable_with_the_name_under_the_code(identity: Identity) -> None:
    client = identity.client
    await _deputy(client, "QRD-7", "欧阳娜娜")
    await _issue(client, "deputies/QRD-7")
    resp = await client.get("/v1/deputies/QRD-7/code.png", headers=STAFF)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(resp.content))
    assert image.format == "PNG"
    image = image.convert("L")
    width, height = image.size
    assert width == 600 and height > width
    lo, hi = image.crop((0, width, width, height)).getextrema()
    assert lo < 64 and hi == 255, "the label band should hold dark text on white"
    assert image.crop((0, 0, width, width)).getextrema() == (0, 255)
    # Quiet zone: the outermost pixel rows and columns of the symbol area stay white.
    assert image.crop((0, 0, width, 40)).getextrema() == (255, 255)
    assert image.crop((0, 0, 40, width)).getextrema() == (255, 255)


async def test_other_services_resolve_codes_over_nats(identity: Identity, servers: Servers) -> None:
    client = identity.client
    await _station(client, "QRS-8", "四季青街道联络站")
    code = await _issue(client, "stations/QRS-8")
    forged = code[:-2] + ("00" if code[-2:] != "00" else "10")
    nc = await nats.connect(servers.nats_url)
    try:
        async def ask(body: bytes) -> dict[str, str]:
            reply = await nc.request(SUBJECT, body, timeout=5)
            return json.loads(reply.data)  # type: ignore[no-any-return]

        expected = {"kind": "station", "id": "QRS-8", "name": "四季青街道联络站", "region_code": "330102"}
        assert await ask(json.dumps({"code": code}).encode()) == expected
        assert await ask(code.encode()) == expected
        assert await ask(json.dumps({"code": forged}).encode()) == {"error": "not_found"}
        assert await ask(b'{"kode": 1}') == {"error": "bad_request"}
        assert await ask(b"") == {"error": "bad_request"}
        assert (await client.delete("/v1/stations/QRS-8/code", headers=ADMIN)).status_code == 204
        assert await ask(code.encode()) == {"error": "not_found"}
    finally:
        await nc.close()
