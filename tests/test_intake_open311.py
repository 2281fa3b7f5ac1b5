"""Open311 (GeoReport v2) inbound on intake, on real PostgreSQL and NATS with identity beside it: a city
system files reports form-encoded with an integration credential, by region or with a deputy's or
station's QR code, and follows them to the answer; reads show nothing about the reporter; errors come as
the spec's list, in JSON or XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Servers
from identityutil import KEY
from intakeutil import (
    ADMIN,
    Clock,
    Intake,
    bearer,
    declare_upstream_streams,
    directory,
    intake_app,
    intake_events,
    intake_stack,
    wait_for,
)
from sqlalchemy import func, select

from services.intake import open311
from services.intake.models import Report
from shared.auth import sign_token
from shared.service import Runtime

# Regions of this module's own: the session's database holds other modules' reports too.
COUNTY = "379921"
NEIGHBOUR = "379922"
CITY = "3799"
STAFF = bearer("station_staff", COUNTY)
BASE = "/open311/v2"
CJK = re.compile(r"[\u4e00-\u9fff]")
# Deputies and a station of this module's own, with QR codes: two in the county, one next door.
DEPUTY, OTHER_DEPUTY, STATION, AWAY_DEPUTY = "o311-D1", "o311-D2", "o311-S1", "o311-D9"


def api_key(region: str = COUNTY, role: str = "integration") -> str:
    return sign_token(KEY, issuer="minyi", audience="minyi", sub=f"city-12345-{region}", roles=[role], region=region)


@pytest.fixture(scope="module")
async def home(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    await declare_upstream_streams(servers.nats_url)
    yield tmp_path_factory.mktemp("intake-open311")


@pytest.fixture(scope="module")
async def stack(servers: Servers, home: Path) -> AsyncIterator[Intake]:
    async with intake_stack(servers, home / "main", client_address="198.51.100.31",
                            lookup_limit="10000/minute") as it:
        await directory(it, COUNTY, None, {DEPUTY: [], OTHER_DEPUTY: []}, [STATION])
        await directory(it, NEIGHBOUR, None, {AWAY_DEPUTY: []}, [])
        yield it


@pytest.fixture(scope="module")
def intake(stack: Intake) -> tuple[httpx.AsyncClient, Runtime]:
    return stack.client, stack.runtime


def form(**extra: Any) -> dict[str, Any]:
    return {"api_key": api_key(), "jurisdiction_id": COUNTY, "service_code": "roads_traffic",
            "description": "幸福路与建设路口有个大坑，电动车经过很危险。", **extra}


async def file(client: httpx.AsyncClient, fmt: str = "json", headers: dict[str, str] | None = None,
               **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"{BASE}/requests.{fmt}", data=form(**extra), headers=headers)
    assert resp.status_code == 201, resp.text
    if fmt == "xml":
        request = ET.fromstring(resp.content).find("request")
        assert request is not None
        return {child.tag: child.text for child in request}
    body = resp.json()
    assert isinstance(body, list) and len(body) == 1
    return dict(body[0])


async def one(client: httpx.AsyncClient, request_id: str, jurisdiction: str = COUNTY) -> dict[str, Any]:
    resp = await client.get(f"{BASE}/requests/{request_id}.json", params={"jurisdiction_id": jurisdiction})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()) == 1
    return dict(resp.json()[0])


async def search(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": COUNTY, **params})
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def spec_error(resp: httpx.Response, status: int) -> str:
    """The spec's error list with the HTTP status in it and a Chinese description; returns the description."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}
    assert body[0]["code"] == status and CJK.search(body[0]["description"]), body
    return str(body[0]["description"])


async def test_services_list_every_category_in_json_and_xml(intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = intake
    resp = await client.get(f"{BASE}/services.json", params={"jurisdiction_id": COUNTY})
    assert resp.status_code == 200, resp.text
    listed = resp.json()
    assert [s["service_code"] for s in listed] == [s.code for s in open311.SERVICES]
    assert listed[1] == {"service_code": "roads_traffic", "service_name": "道路交通",
                         "description": "道路破损、交通信号、停车秩序、公共交通等问题", "metadata": True,
                         "type": "realtime", "keywords": "道路,坑洼,信号灯,停车,公交", "group": "城乡治理"}
    xml = await client.get(f"{BASE}/services.xml", params={"jurisdiction_id": COUNTY})
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "services"
    assert [(s.findtext("service_code"), s.findtext("service_name"), s.findtext("metadata")) for s in root][:2] == \
        [("municipal_facilities", "市政设施", "true"), ("roads_traffic", "道路交通", "true")]
    definition = await client.get(f"{BASE}/services/greenery.json", params={"jurisdiction_id": COUNTY})
    assert definition.status_code == 200, definition.text
    assert definition.json() == {"service_code": "greenery", "attributes": [{
        "variable": True, "code": "code", "datatype": "string", "required": False,
        "datatype_description": "21 位字母数字，即扫码打开的地址 …/q/{编码} 的最后一段", "order": 1,
        "description": "亮码：代表或联络站二维码上的编码；填写后反映直接交给该代表或联络站"}]}
    definition_xml = ET.fromstring((await client.get(f"{BASE}/services/greenery.xml",
                                                     params={"jurisdiction_id": COUNTY})).content)
    assert definition_xml.tag == "service_definition" and definition_xml.findtext("service_code") == "greenery"
    attribute = definition_xml.find("attributes/attribute")
    assert attribute is not None and len(definition_xml.findall("attributes/attribute")) == 1
    assert [(a.tag, a.text) for a in attribute][:6] == [
        ("variable", "true"), ("code", "code"), ("datatype", "string"), ("required", "false"),
        ("datatype_description", "21 位字母数字，即扫码打开的地址 …/q/{编码} 的最后一段"), ("order", "1")]
    assert attribute.findtext("description", "").startswith("亮码")


async def test_a_filed_report_is_followed_from_open_to_the_stations_answer(
        intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, runtime = intake
    created = await file(client, lat="31.86", long="117.28", address_string="幸福路与建设路口")
    request_id, token = created["service_request_id"], created["token"]
    assert created["account_id"] is None and "前答复" in created["service_notice"]

    # Filed like any report: by region (as the web form files one without a code), on the api channel,
    # with the deadlines and the event every report gets.
    staff_view = await client.get(f"/v1/reports/{request_id}", headers=STAFF)
    assert staff_view.status_code == 200, staff_view.text
    detail = staff_view.json()
    assert detail["channel"] == "api" and detail["anonymous"] is True and detail["reporter"] is None
    assert detail["target"] == {"kind": "region", "id": None, "region_code": COUNTY}
    assert detail["category"] == "roads_traffic" and detail["status"] == "submitted"
    assert detail["content"] == "幸福路与建设路口有个大坑，电动车经过很危险。"
    assert detail["location"] == {"lat": 31.86, "lon": 117.28, "address": "幸福路与建设路口"}
    assert created["expected_datetime"] == detail["reply_due"]
    events = await wait_for(lambda: intake_events(runtime.settings.nats_url, request_id),
                            what="intake.report.submitted")
    assert events[0][0] == "intake.report.submitted"
    assert events[0][1]["channel"] == "api" and events[0][1]["region_code"] == COUNTY

    shown = await one(client, request_id)
    assert shown["status"] == "open" and shown["status_notes"] == "已收到，等待代表受理。"
    assert shown["expected_datetime"] == detail["reply_due"]
    assert shown["requested_datetime"] == detail["received_at"]
    assert (shown["service_code"], shown["service_name"]) == ("roads_traffic", "道路交通")
    assert shown["agency_responsible"] == "人大代表联络站"
    assert shown["description"] is None and shown["lat"] is None and shown["address"] is None
    assert "大坑" not in str(shown) and "建设路口" not in str(shown)

    answer = "已联系市政部门，周五前完成修补。"
    replied = await client.post(f"/v1/reports/{request_id}/reply", headers=STAFF, json={"content": answer})
    assert replied.status_code == 200, replied.text
    shown = await one(client, request_id)
    assert shown["status"] == "closed" and shown["status_notes"] == answer
    assert shown["expected_datetime"] == detail["reply_due"]
    assert datetime.fromisoformat(shown["updated_datetime"]) >= datetime.fromisoformat(shown["requested_datetime"])

    xml = await client.get(f"{BASE}/requests/{request_id}.xml", params={"jurisdiction_id": COUNTY})
    assert xml.status_code == 200, xml.text
    request = ET.fromstring(xml.content).find("request")
    assert request is not None
    assert (request.findtext("status"), request.findtext("status_notes")) == ("closed", answer)
    assert request.findtext("expected_datetime") == detail["reply_due"]

    # The token stands for the request, in either format, to anyone; in another jurisdiction it is unknown.
    resp = await client.get(f"{BASE}/tokens/{token}.json", params={"jurisdiction_id": COUNTY})
    assert resp.status_code == 200 and resp.json() == [{"service_request_id": request_id, "token": token}]
    tokens = ET.fromstring((await client.get(f"{BASE}/tokens/{token}.xml",
                                             params={"jurisdiction_id": CITY})).content)
    assert tokens.findtext("request/service_request_id") == request_id
    spec_error(await client.get(f"{BASE}/tokens/{token}.json", params={"jurisdiction_id": NEIGHBOUR}), 404)


async def test_a_report_filed_with_a_deputys_code_is_the_deputys_to_take_up_and_answer(stack: Intake) -> None:
    client = stack.client
    deputy = bearer("deputy", COUNTY, deputy_id=DEPUTY)
    # Attributes of other services' definitions, and a malformed one, are ignored, as the spec allows.
    created = await file(client, description="代表您好：村口的桥栏杆松动了，孩子上学要经过。",
                         **{"attribute[code]": stack.codes[DEPUTY], "attribute[urgency]": "high", "attribute[]": "x",
                            "attribute": "y"})
    request_id = created["service_request_id"]

    detail = (await client.get(f"/v1/reports/{request_id}", headers=STAFF)).json()
    assert detail["target"] == {"kind": "deputy", "id": DEPUTY, "region_code": COUNTY}
    assert detail["channel"] == "api" and detail["content"] == "代表您好：村口的桥栏杆松动了，孩子上学要经过。"
    events = await wait_for(lambda: intake_events(stack.runtime.settings.nats_url, request_id),
                            what="intake.report.submitted")
    assert events[0][0] == "intake.report.submitted" and events[0][1]["deputy_id"] == DEPUTY
    shown = await one(client, request_id)
    assert (shown["status"], shown["agency_responsible"]) == ("open", "人大代表")

    # It is this deputy's report: another deputy of the county may not take it up.
    refused = await client.post(f"/v1/reports/{request_id}/acknowledge",
                                headers=bearer("deputy", COUNTY, deputy_id=OTHER_DEPUTY))
    assert refused.status_code == 403, refused.text
    acknowledged = await client.post(f"/v1/reports/{request_id}/acknowledge", headers=deputy)
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged"
    assert (await one(client, request_id))["status_notes"] == "代表已受理，正在办理。"

    answer = "已联系镇政府，本周内加固桥栏杆并设置警示牌。"
    replied = await client.post(f"/v1/reports/{request_id}/reply", headers=deputy, json={"content": answer})
    assert replied.status_code == 200, replied.text
    assert replied.json()["answered_by"] == "deputy"
    shown = await one(client, request_id)
    assert (shown["status"], shown["status_notes"], shown["agency_responsible"]) == ("closed", answer, "人大代表")
    xml = ET.fromstring((await client.get(f"{BASE}/requests/{request_id}.xml",
                                          params={"jurisdiction_id": CITY})).content)
    assert (xml.findtext("request/status"), xml.findtext("request/agency_responsible")) == ("closed", "人大代表")

    # Filed by region, the same report is the station staff's, not this deputy's.
    by_region = (await file(client, description="按地区提交的反映。"))["service_request_id"]
    resp = await client.post(f"/v1/reports/{by_region}/acknowledge", headers=deputy)
    assert resp.status_code == 403, resp.text


async def test_a_stations_code_files_to_the_station_and_a_street_keeps_its_place(stack: Intake) -> None:
    client = stack.client
    created = await file(client, "xml", description="联络站：小区电梯经常停运。",
                         **{"attribute[code]": stack.codes[STATION].lower()})
    request_id = created["service_request_id"]
    assert request_id
    detail = (await client.get(f"/v1/reports/{request_id}", headers=STAFF)).json()
    assert detail["target"] == {"kind": "station", "id": STATION, "region_code": COUNTY}
    assert (await one(client, request_id))["agency_responsible"] == "人大代表联络站"

    # A jurisdiction naming a street within the deputy's county keeps the street, and reads find it there.
    street = COUNTY + "003"
    on_street = (await file(client, jurisdiction_id=street, description="街道上的反映。",
                            **{"attribute[code]": stack.codes[DEPUTY]}))["service_request_id"]
    detail = (await client.get(f"/v1/reports/{on_street}", headers=STAFF)).json()
    assert detail["target"] == {"kind": "deputy", "id": DEPUTY, "region_code": street}
    assert (await one(client, on_street, street))["agency_responsible"] == "人大代表"


async def test_a_forged_revoked_or_foreign_code_is_a_bad_request_and_files_nothing(stack: Intake) -> None:
    client = stack.client
    post = f"{BASE}/requests.json"
    text = "带着无效二维码编码的反映。"
    forged = "1" + "0" * 20
    assert forged not in stack.codes.values()
    assert "attribute[code]" in spec_error(await client.post(post, data=form(
        description=text, **{"attribute[code]": forged})), 400)
    assert "attribute[code]" in spec_error(await client.post(post, data=form(
        description=text, **{"attribute[code]": "不是二维码"})), 400)
    # Issuing the deputy a new code revokes the printed one.
    old = stack.codes[OTHER_DEPUTY]
    reissued = await stack.identity.post(f"/v1/deputies/{OTHER_DEPUTY}/code", headers=ADMIN)
    assert reissued.status_code == 201, reissued.text
    stack.codes[OTHER_DEPUTY] = reissued.json()["code"]
    assert "无效" in spec_error(await client.post(post, data=form(description=text, **{"attribute[code]": old})),
                                400)
    # A deputy of the neighbouring county is not the county's to file to, whatever the credential covers.
    foreign = await client.post(post, data=form(api_key=api_key(CITY), description=text,
                                                **{"attribute[code]": stack.codes[AWAY_DEPUTY]}))
    assert "其他地区" in spec_error(foreign, 400)
    too_long = await client.post(post, data=form(description=text, **{"attribute[code]": "X" * 65}))
    assert "attribute[code]" in spec_error(too_long, 400)
    resp = await client.post(f"{BASE}/requests.xml", data=form(description=text, **{"attribute[code]": forged}))
    assert resp.status_code == 400 and ET.fromstring(resp.content).findtext("error/code") == "400"

    async with stack.runtime.database.sessions() as session:
        assert await session.scalar(select(func.count()).where(Report.content == text)) == 0
    # The new code files to that deputy.
    filed = await file(client, description="新二维码的反映。", **{"attribute[code]": stack.codes[OTHER_DEPUTY]})
    detail = (await client.get(f"/v1/reports/{filed['service_request_id']}", headers=STAFF)).json()
    assert detail["target"] == {"kind": "deputy", "id": OTHER_DEPUTY, "region_code": COUNTY}


async def test_a_real_name_report_shows_nobody_in_any_read(intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = intake
    # The credential in the Authorization header instead of the form; filed through the XML variant.
    data = form(first_name="三丰", last_name="张", phone="13800138000", service_code="sanitation_environment",
                description="小区垃圾三天没人清运。")
    del data["api_key"]
    resp = await client.post(f"{BASE}/requests.xml", data=data, headers={"Authorization": f"Bearer {api_key()}"})
    assert resp.status_code == 201 and resp.headers["content-type"].startswith("application/xml"), resp.text
    request_id = ET.fromstring(resp.content).findtext("request/service_request_id")
    assert request_id

    detail = (await client.get(f"/v1/reports/{request_id}", headers=STAFF)).json()
    assert detail["anonymous"] is False and detail["reporter"]["name"] == "张**"
    assert detail["reporter"]["phone"] == "138****8000"

    reads = [await client.get(f"{BASE}/requests/{request_id}.json", params={"jurisdiction_id": COUNTY}),
             await client.get(f"{BASE}/requests/{request_id}.xml", params={"jurisdiction_id": COUNTY}),
             await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": COUNTY,
                                                               "service_request_id": request_id}),
             await client.get(f"{BASE}/requests.xml", params={"jurisdiction_id": CITY})]
    for read in reads:
        assert read.status_code == 200, read.text
        assert request_id in read.text
        for personal in ("张三丰", "三丰", "13800138000", "138****", "张*", "垃圾三天"):
            assert personal not in read.text, (personal, read.request.url)


async def test_a_region_is_searched_by_date_status_category_and_id(intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = intake
    lamp = (await file(client, service_code="municipal_facilities", description="路灯坏了。"))["service_request_id"]
    noise = (await file(client, service_code="sanitation_environment", description="夜间施工噪声扰民。"))[
        "service_request_id"]
    away = (await file(client, api_key=api_key(CITY), jurisdiction_id=NEIGHBOUR, description="邻县的坑。"))[
        "service_request_id"]
    await client.post(f"/v1/reports/{noise}/reply", headers=STAFF, json={"content": "已责令夜间停工。"})

    everything = await search(client)
    ids = [r["service_request_id"] for r in everything]
    assert ids.index(noise) < ids.index(lamp), "newest first"
    assert away not in ids
    assert away in [r["service_request_id"] for r in await search(client, jurisdiction_id=CITY)]

    open_ids = [r["service_request_id"] for r in await search(client, status="open")]
    closed_ids = [r["service_request_id"] for r in await search(client, status="closed")]
    assert lamp in open_ids and noise not in open_ids and noise in closed_ids and lamp not in closed_ids
    assert {r["status"] for r in await search(client, status="open,closed")} == {"open", "closed"}
    by_code = await search(client, service_code="municipal_facilities,greenery")
    assert lamp in [r["service_request_id"] for r in by_code] and {r["service_code"] for r in by_code} == \
        {"municipal_facilities"}

    # Ids override every other filter, and stay within the jurisdiction.
    picked = await search(client, service_request_id=f"{lamp},{noise},{away}", status="closed",
                          start_date="2001-01-01T00:00:00Z")
    assert sorted(r["service_request_id"] for r in picked) == sorted([lamp, noise])

    now = datetime.now().astimezone()
    assert lamp in [r["service_request_id"] for r in await search(
        client, start_date=(now - timedelta(hours=1)).isoformat(), end_date=(now + timedelta(hours=1)).isoformat())]
    yesterday = [r["service_request_id"] for r in await search(client, end_date=(now - timedelta(days=1)).isoformat())]
    assert lamp not in yesterday and noise not in yesterday
    too_long = await client.get(f"{BASE}/requests.json", params={
        "jurisdiction_id": COUNTY, "start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-05-01T00:00:00+08:00"})
    assert "90 天" in spec_error(too_long, 400)
    naive = await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": COUNTY,
                                                              "start_date": "2026-01-01T00:00:00"})
    assert "start_date" in spec_error(naive, 400)
    spec_error(await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": COUNTY, "status": "pending"}),
               400)


async def test_a_retried_post_gets_its_first_answer_and_files_nothing_new(
        intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = intake
    key = {"Idempotency-Key": "city-12345-ticket-88231"}
    data = form(description="重试的反映：桥下积水。")
    first = await client.post(f"{BASE}/requests.json", data=data, headers=key)
    again = await client.post(f"{BASE}/requests.json", data={**data, "api_key": api_key()}, headers=key)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    # The same answer in XML, for a client that switched formats between tries.
    as_xml = await client.post(f"{BASE}/requests.xml", data=data, headers=key)
    assert ET.fromstring(as_xml.content).findtext("request/token") == first.json()[0]["token"]
    staff_list = (await client.get("/v1/reports", params={"region_code": COUNTY, "page_size": 100},
                                   headers=STAFF)).json()
    assert sum(1 for item in staff_list["items"] if item["excerpt"] == "重试的反映：桥下积水。") == 1
    other = await client.post(f"{BASE}/requests.json", data=form(description="另一条"), headers=key)
    assert "幂等键" in spec_error(other, 409)


async def test_errors_come_as_the_specs_list_with_the_http_status(intake: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = intake
    post = f"{BASE}/requests.json"
    without_key = form()
    del without_key["api_key"]
    spec_error(await client.post(post, data=without_key), 401)
    assert (await client.post(post, data=without_key)).headers["www-authenticate"].startswith("Bearer")
    spec_error(await client.post(post, data=form(api_key="not-a-jwt")), 401)
    assert "接入凭证" in spec_error(await client.post(post, data=form(api_key=api_key(role="citizen"))), 403)
    assert "范围" in spec_error(await client.post(post, data=form(api_key=api_key(NEIGHBOUR))), 403)
    assert "potholes" in spec_error(await client.post(post, data=form(service_code="potholes")), 400)
    missing = form()
    del missing["jurisdiction_id"]
    assert "jurisdiction_id" in spec_error(await client.post(post, data=missing), 400)
    assert "同时" in spec_error(await client.post(post, data=form(lat="31.8")), 400)
    spec_error(await client.post(post, data=form(description="路灯\x00坏了")), 400)
    assert "电话" in spec_error(await client.post(post, data=form(first_name="三", last_name="张")), 400)

    spec_error(await client.get(f"{BASE}/requests.json"), 400)
    spec_error(await client.get(f"{BASE}/services.json"), 400)
    unknown = "0193a1b2-0000-7000-8000-000000000000"
    spec_error(await client.get(f"{BASE}/requests/{unknown}.json", params={"jurisdiction_id": COUNTY}), 404)
    spec_error(await client.get(f"{BASE}/tokens/{unknown}.json", params={"jurisdiction_id": COUNTY}), 404)
    spec_error(await client.get(f"{BASE}/services/potholes.json", params={"jurisdiction_id": COUNTY}), 404)
    spec_error(await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": COUNTY, "api_key": "x"}), 401)
    elsewhere = (await file(client))["service_request_id"]
    spec_error(await client.get(f"{BASE}/requests/{elsewhere}.json", params={"jurisdiction_id": NEIGHBOUR}), 404)

    # In XML for the XML variants.
    resp = await client.post(f"{BASE}/requests.xml", data=form(api_key=api_key(NEIGHBOUR)))
    assert resp.status_code == 403 and resp.headers["content-type"].startswith("application/xml")
    errors = ET.fromstring(resp.content)
    assert errors.tag == "errors" and errors.findtext("error/code") == "403"
    assert CJK.search(errors.findtext("error/description") or "")

    # Minyi's own clients may ask for problem+json, as on its other APIs.
    resp = await client.post(post, data=missing, headers={"Accept": "application/problem+json"})
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    assert "jurisdiction_id" in [e["field"] for e in resp.json()["errors"]]


async def test_reads_are_limited_per_source_unless_an_integration_polls(servers: Servers, home: Path) -> None:
    async with intake_app(servers, home / "limited", Clock(), client_address="198.51.100.32",
                          lookup_limit="3/minute") as (client, _, _):
        params = {"jurisdiction_id": COUNTY}
        for _ in range(3):
            assert (await client.get(f"{BASE}/requests.json", params=params)).status_code == 200
        limited = await client.get(f"{BASE}/requests.json", params=params)
        spec_error(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        polled = await client.get(f"{BASE}/requests.json", params={**params, "api_key": api_key()})
        assert polled.status_code == 200, polled.text
        header = await client.get(f"{BASE}/requests.json", params=params,
                                  headers={"Authorization": f"Bearer {api_key()}"})
        assert header.status_code == 200, header.text
        # A credential of another role is a caller like any other.
        spec_error(await client.get(f"{BASE}/requests.json", params={**params, "api_key": api_key(role="citizen")}),
                   429)
