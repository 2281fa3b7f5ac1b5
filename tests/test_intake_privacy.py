"""Anonymity and flood control: nothing links an anonymous report to its sender, and one source cannot flood."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from conftest import Servers
from fastapi import FastAPI
from identityutil import id_number
from intakeutil import Clock, Intake, bearer, intake_app, intake_events, intake_stack, wait_for
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake import domain
from shared.telemetry import setup_tracing

REGION = "340612"
# Reports of the flood tests go to a street of the county, so they can be counted apart.
FLOOD_REGION = "340612001"
PROBLEM_JSON = "application/problem+json"

CLIENT_ADDRESS = "203.0.113.7"  # what the harness's ASGI transport reports as the caller
FORWARDED_ADDRESS = "198.51.100.23"
OPENID = "wx-openid-123"
SECRETS = (CLIENT_ADDRESS, FORWARDED_ADDRESS, OPENID)

NAME = "欧阳明华"
PHONE = "13912345678"
ID_NUMBER = id_number(REGION, date(1980, 5, 17), 123)

FLOODED = "192.0.2.10"
NEIGHBOUR = "192.0.2.11"


def is_chinese(text_: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text_)


def leaks(blob: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    return [s for s in secrets if s in blob]


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the process finishes while this module runs (the provider is the process's one)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = setup_tracing("intake")
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    # A processor cannot be taken off a provider; a shut exporter drops what it is given.
    exporter.clear()
    exporter.shutdown()


@pytest.fixture(scope="module")
async def intake(servers: Servers, tmp_path_factory: pytest.TempPathFactory,
                 spans: InMemorySpanExporter) -> AsyncIterator[Intake]:
    async with intake_stack(servers, tmp_path_factory.mktemp("intake-privacy"), flood_limit="1000/minute") as it:
        yield it


async def fetch(servers: Servers, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def submitted_event(intake: Intake, report_id: str) -> dict[str, Any]:
    async def found() -> list[tuple[str, dict[str, Any]]]:
        return [e for e in await intake_events(intake.runtime.settings.nats_url, report_id)
                if e[0] == "intake.report.submitted"]

    events = await wait_for(found, what="intake.report.submitted")
    assert len(events) == 1
    return events[0][1]


def span_texts(span: ReadableSpan) -> list[str]:
    out = [span.name, *(str(v) for v in (span.attributes or {}).values())]
    for event in span.events:
        out += [event.name, *(str(v) for v in (event.attributes or {}).values())]
    for link in span.links:
        out += [str(v) for v in (link.attributes or {}).values()]
    return out


# --- anonymity ----------------------------------------------------------------------------------------------------


async def test_an_anonymous_report_leaves_no_trace_of_its_sender(
        intake: Intake, servers: Servers, spans: InMemorySpanExporter) -> None:
    spans.clear()
    key = f"anon-{uuid.uuid4()}"
    headers = {**bearer("citizen", "", sub=OPENID), "X-Forwarded-For": FORWARDED_ADDRESS,
               "X-Real-IP": FORWARDED_ADDRESS, "Idempotency-Key": key}
    resp = await intake.client.post("/v1/reports", headers=headers, json={
        "channel": "miniprogram", "region_code": REGION, "content": "村委会账目长期不公开。", "anonymous": True,
        "location": {"lat": 31.86, "lon": 117.28}})
    assert resp.status_code == 201, resp.text
    assert not leaks(resp.text)
    report_id = resp.json()["id"]

    event = await submitted_event(intake, report_id)
    assert event["anonymous"] is True
    assert not [k for k in event if k.startswith("reporter")], event
    assert not leaks(json.dumps(event, ensure_ascii=False))

    # Spans: the request's own span is there, and none of them names the sender.
    finished = spans.get_finished_spans()
    assert any((s.attributes or {}).get("http.route") == "/v1/reports" for s in finished), [s.name for s in finished]
    leaked = {(s.name, t) for s in finished for t in span_texts(s) if leaks(t)}
    assert not leaked, leaked

    # The row: no reporter, nobody registered it, and nothing in any column names the sender.
    row = (await fetch(servers, "SELECT r.*, r::text AS whole FROM intake.reports r WHERE id = :id", id=report_id))[0]
    assert row.anonymous is True
    assert (row.reporter_name, row.reporter_phone, row.reporter_id_number, row.reporter_phone_index) == (
        None, None, None, None)
    assert row.registered_by is None
    assert not leaks(row.whole), row.whole
    timeline = await fetch(servers, "SELECT t::text AS whole FROM intake.timeline t WHERE report_id = :id",
                           id=report_id)
    assert timeline and not [t.whole for t in timeline if leaks(t.whole)]
    outbox = await fetch(servers, "SELECT o::text AS whole FROM intake.outbox o WHERE o::text LIKE :like",
                         like=f"%{report_id}%")
    assert not [o.whole for o in outbox if leaks(o.whole)]
    # The idempotency key is kept where any anonymous sender's would be, not under the account.
    keys = await fetch(servers, "SELECT scope, k::text AS whole FROM intake.idempotency_keys k WHERE key = :key",
                       key=key)
    assert [k.scope for k in keys] == ["reports"]
    assert not leaks(keys[0].whole)

    # Staff see an anonymous report with no reporter at all.
    detail = await intake.client.get(f"/v1/reports/{report_id}", headers=bearer("station_staff", REGION))
    assert detail.status_code == 200 and detail.json()["reporter"] is None
    assert not leaks(detail.text)
    unmask = await intake.client.post(f"/v1/reports/{report_id}/reporter/unmask",
                                      headers=bearer("station_staff", REGION), json={"reason": "核实身份"})
    assert unmask.status_code == 404


WECHAT_AGENT = ("Mozilla/5.0 (Linux; Android 13; PGT-AN10 Build/HONORPGT-AN10; wv) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile Safari/537.36 XWEB/5169 "
                "MMWEBSDK/20230805 MicroMessenger/8.0.42.2460(0x28002A37) WeChat/arm64 NetType/4G")


async def test_an_anonymous_report_leaves_no_trace_of_the_device_it_came_from(
        intake: Intake, spans: InMemorySpanExporter) -> None:
    spans.clear()
    device = {"User-Agent": WECHAT_AGENT, "X-Requested-With": "com.tencent.mm",
              "Sec-CH-UA-Model": '"PGT-AN10"', "Sec-CH-UA-Platform-Version": '"13.0.0"'}
    resp = await intake.client.post("/v1/reports", headers={**bearer("citizen", "", sub=OPENID), **device,
                                                            "Idempotency-Key": f"ua-{uuid.uuid4()}"},
                                    json={"channel": "h5", "region_code": REGION, "content": "小区门口的井盖丢了。",
                                          "anonymous": True})
    assert resp.status_code == 201, resp.text
    event = await submitted_event(intake, resp.json()["id"])
    finished = spans.get_finished_spans()
    assert any((s.attributes or {}).get("http.route") == "/v1/reports" for s in finished)
    device_words = ("PGT-AN10", "MicroMessenger", "com.tencent.mm", "Android 13", "13.0.0")
    seen = {(s.name, t) for s in finished for t in span_texts(s) if any(w in t for w in device_words)}
    assert not seen, seen
    keys = {k for s in finished for k in (s.attributes or {})}
    assert not {k for k in keys if "user_agent" in k}, keys
    assert not any(w in json.dumps(event, ensure_ascii=False) for w in device_words)


async def test_an_anonymous_retry_from_another_account_is_not_told_apart(intake: Intake) -> None:
    # The key's scope holds no account, so the same key and body replay whoever sends them.
    key = {"Idempotency-Key": f"anon-{uuid.uuid4()}"}
    body = {"channel": "h5", "region_code": REGION, "content": "路口红绿灯时长太短。", "anonymous": True}
    first = await intake.client.post("/v1/reports", json=body, headers={**key, **bearer("citizen", sub="wx-a")})
    again = await intake.client.post("/v1/reports", json=body, headers={**key, **bearer("citizen", sub="wx-b")})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()


async def test_a_real_name_reporter_is_in_neither_the_event_nor_the_receipt(intake: Intake) -> None:
    resp = await intake.client.post("/v1/reports", headers=bearer("citizen", "", sub="wx-openid-456"), json={
        "channel": "miniprogram", "region_code": REGION, "content": "小区物业乱收费，请代表关注。", "anonymous": False,
        "reporter": {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    personal = (NAME, PHONE, ID_NUMBER, "wx-openid-456")
    assert not leaks(resp.text, personal)

    event = await submitted_event(intake, created["id"])
    assert event["anonymous"] is False
    assert not [k for k in event if k.startswith("reporter")], event
    assert not leaks(json.dumps(event, ensure_ascii=False), personal)

    receipt = await intake.client.get(f"/v1/receipts/{created['receipt_code']}")
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["status"] == "submitted"
    assert not leaks(receipt.text, (*personal, PHONE[-4:], ID_NUMBER[-4:]))
    # Staff see the reporter masked; the data really is on record.
    detail = (await intake.client.get(f"/v1/reports/{created['id']}", headers=bearer("station_staff", REGION))).json()
    assert detail["reporter"] == {"name": "欧***", "phone": "139****5678", "id_number": "已登记（已隐藏）"}


# --- receipts -----------------------------------------------------------------------------------------------------


async def test_receipt_codes_with_a_typo_are_invalid_and_unknown_ones_are_not_found(intake: Intake) -> None:
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "region_code": REGION, "content": "公交站台缺少遮雨棚。", "anonymous": True})
    assert resp.status_code == 201, resp.text
    shown = resp.json()["receipt_code"]
    code = shown.replace("-", "")
    assert domain.normalize_receipt_code(code) == code
    # As printed, in lower case, with spaces: all the same code.
    for typed in (shown, code.lower(), " ".join(code[i:i + 4] for i in range(0, len(code), 4))):
        found = await intake.client.get(f"/v1/receipts/{typed}")
        assert found.status_code == 200, (typed, found.text)

    wrong_check = code[:-1] + next(c for c in domain.RECEIPT_ALPHABET if c != code[-1])
    assert domain.normalize_receipt_code(wrong_check) is None
    typo = await intake.client.get(f"/v1/receipts/{wrong_check}")
    assert typo.status_code == 422, typo.text
    assert typo.headers["content-type"].startswith(PROBLEM_JSON)
    assert [e["field"] for e in typo.json()["errors"]] == ["receipt_code"]
    assert is_chinese(typo.json()["errors"][0]["message"])

    unknown = domain.new_receipt_code()
    assert domain.normalize_receipt_code(unknown) == unknown
    missing = await intake.client.get(f"/v1/receipts/{unknown}")
    assert missing.status_code == 404, missing.text
    assert is_chinese(missing.json()["detail"])


# --- flood control ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def flood_app(intake: Intake, servers: Servers, tmp_path_factory: pytest.TempPathFactory
                    ) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """A second intake with tight limits; its callers come from FLOODED. Reports go by region, so no identity.

    It depends on `intake`, whose stack has declared the streams intake consumes.
    """
    async with intake_app(servers, tmp_path_factory.mktemp("intake-flood"), Clock(), client_address=FLOODED,
                          flood_limit="3/minute", lookup_limit="5/minute") as (client, _runtime, app):
        yield client, app


def neighbour(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(NEIGHBOUR, 40001)),
                             base_url="http://intake", timeout=60)


def flood_report(content: str) -> dict[str, Any]:
    return {"channel": "h5", "region_code": FLOOD_REGION, "content": content, "anonymous": True}


async def flood_reports(intake: Intake) -> list[str]:
    resp = await intake.client.get("/v1/reports", params={"region_code": FLOOD_REGION, "page_size": 100},
                                   headers=bearer("npc_staff", REGION))
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == len(resp.json()["items"])
    return [item["excerpt"] for item in resp.json()["items"]]


def assert_too_many(resp: httpx.Response) -> int:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert resp.json()["status"] == 429
    assert is_chinese(resp.json()["detail"]) and str(retry_after) in resp.json()["detail"]
    return retry_after


async def test_a_flooding_source_is_stopped_while_others_go_on(
        intake: Intake, flood_app: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = flood_app
    before = await flood_reports(intake)
    for i in range(3):
        resp = await client.post("/v1/reports", json=flood_report(f"刷屏测试第{i + 1}条"))
        assert resp.status_code == 201, resp.text
    resp = await client.post("/v1/reports", json=flood_report("刷屏测试第4条"))
    assert_too_many(resp)
    # Claiming to be someone else through proxy headers does not help: they are not trusted (nor kept).
    spoofed = await client.post("/v1/reports", json=flood_report("刷屏测试第5条"),
                                headers={"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "203.0.113.99"})
    assert_too_many(spoofed)
    # A token of a fresh citizen account does not reset the count of the source either.
    with_token = await client.post("/v1/reports", json=flood_report("刷屏测试第6条"),
                                   headers=bearer("citizen", sub="wx-fresh"))
    assert_too_many(with_token)
    after = await flood_reports(intake)
    assert len(after) == len(before) + 3
    assert not [e for e in after if e in ("刷屏测试第4条", "刷屏测试第5条", "刷屏测试第6条")]

    async with neighbour(app) as other:
        resp = await other.post("/v1/reports", json=flood_report("隔壁来源的反映"))
        assert resp.status_code == 201, resp.text
    # Station staff at the flooded address register counter reports without limit.
    staff = bearer("station_staff", REGION)
    for i in range(4):
        resp = await client.post("/v1/reports", headers=staff, json={
            "channel": "paper", "region_code": FLOOD_REGION, "content": f"窗口登记第{i + 1}条", "anonymous": True})
        assert resp.status_code == 201, resp.text
    # …while the citizen at that address is still held back.
    assert_too_many(await client.post("/v1/reports", json=flood_report("刷屏测试第7条")))
    assert len(await flood_reports(intake)) == len(before) + 3 + 1 + 4


async def test_receipt_lookups_are_limited_per_source(
        intake: Intake, flood_app: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = flood_app
    async with neighbour(app) as other:
        resp = await other.post("/v1/reports", json=flood_report("查询限流用的反映"))
        assert resp.status_code == 201, resp.text
        code = resp.json()["receipt_code"]
        # The flooded source (reports) may still look receipts up: a separate, larger allowance.
        for _ in range(5):
            found = await client.get(f"/v1/receipts/{code}")
            assert found.status_code == 200, found.text
        assert_too_many(await client.get(f"/v1/receipts/{code}"))
        # Guessing is what the limit is for: wrong and unknown codes count, and are refused the same way.
        assert_too_many(await client.get(f"/v1/receipts/{domain.new_receipt_code()}"))
        found = await other.get(f"/v1/receipts/{code}")
        assert found.status_code == 200, found.text


# --- behind a trusted proxy ---------------------------------------------------------------------------------------

PROXY = "10.0.0.1"
PROXIED_REGION = "340612002"


@pytest.fixture(scope="module")
async def proxied_app(intake: Intake, servers: Servers, tmp_path_factory: pytest.TempPathFactory
                      ) -> AsyncIterator[httpx.AsyncClient]:
    """An intake behind an ingress (every connection comes from PROXY) that trusts X-Forwarded-For."""
    async with intake_app(servers, tmp_path_factory.mktemp("intake-proxied"), Clock(), client_address=PROXY,
                          flood_limit="3/minute", trust_forwarded_for=True) as (client, _runtime, _app):
        yield client


def proxied_report(content: str) -> dict[str, Any]:
    return {"channel": "h5", "region_code": PROXIED_REGION, "content": content, "anonymous": True}


async def test_behind_a_trusted_proxy_citizens_are_told_apart_by_their_forwarded_address(
        proxied_app: httpx.AsyncClient, servers: Servers) -> None:
    first = {"X-Forwarded-For": "192.0.2.30"}
    for i in range(3):
        resp = await proxied_app.post("/v1/reports", json=proxied_report(f"代理后第{i + 1}条"), headers=first)
        assert resp.status_code == 201, resp.text
    assert_too_many(await proxied_app.post("/v1/reports", json=proxied_report("代理后第4条"), headers=first))
    # Another citizen behind the same ingress is not held back with the first.
    resp = await proxied_app.post("/v1/reports", json=proxied_report("同一代理后的另一位群众"),
                                  headers={"X-Forwarded-For": "192.0.2.31"})
    assert resp.status_code == 201, resp.text
    # The forwarded address served for counting only; it is kept nowhere.
    rows = await fetch(servers, "SELECT r::text AS whole FROM intake.reports r WHERE region_code = :region",
                       region=PROXIED_REGION)
    assert len(rows) == 4
    assert not [r.whole for r in rows if leaks(r.whole, ("192.0.2.30", "192.0.2.31", PROXY))]


async def test_a_forged_first_forwarded_entry_does_not_escape_the_flood_limit(
        proxied_app: httpx.AsyncClient) -> None:
    statuses = []
    for i in range(5):
        # What the ingress passes on: the client's own (forged) header, then the address it really saw.
        forwarded = {"X-Forwarded-For": f"198.18.0.{i + 1}, 192.0.2.40"}
        resp = await proxied_app.post("/v1/reports", json=proxied_report(f"伪造转发地址第{i + 1}条"),
                                      headers=forwarded)
        statuses.append(resp.status_code)
    assert statuses == [201, 201, 201, 429, 429]


# --- behind the web tier, which names the citizen it calls for ------------------------------------------------------

WEB_TIER = "10.0.0.8"
WEB_REGION = "340612003"
PROXY_SECRET = "web-tier-secret-0123456789-abcdefghijklmnop"


@pytest.fixture(scope="module")
async def web_tier_app(intake: Intake, servers: Servers, tmp_path_factory: pytest.TempPathFactory
                       ) -> AsyncIterator[httpx.AsyncClient]:
    """An intake that every request reaches from the web tier's address, sharing the web tier's secret."""
    home = tmp_path_factory.mktemp("intake-web-tier")
    secret_file = home / "proxy-secret"
    secret_file.write_text(PROXY_SECRET + "\n", encoding="utf-8")
    async with intake_app(servers, home, Clock(), client_address=WEB_TIER, flood_limit="3/minute",
                          proxy_secret_file=secret_file) as (client, _runtime, _app):
        yield client


def web_report(content: str) -> dict[str, Any]:
    return {"channel": "h5", "region_code": WEB_REGION, "content": content, "anonymous": True}


def for_citizen(address: str, secret: str = PROXY_SECRET) -> dict[str, str]:
    return {"X-Minyi-Proxy-Secret": secret, "X-Minyi-Client-Address": address}


async def test_through_the_web_tier_each_citizen_has_a_flood_allowance_of_their_own(
        web_tier_app: httpx.AsyncClient, servers: Servers, spans: InMemorySpanExporter) -> None:
    spans.clear()
    first, second = for_citizen("192.0.2.60"), for_citizen("2001:db8::61")
    for i in range(3):
        resp = await web_tier_app.post("/v1/reports", json=web_report(f"网页代转第{i + 1}条"), headers=first)
        assert resp.status_code == 201, resp.text
    assert_too_many(await web_tier_app.post("/v1/reports", json=web_report("网页代转第4条"), headers=first))
    # Another citizen through the same web tier goes on, as does the web tier's own allowance.
    resp = await web_tier_app.post("/v1/reports", json=web_report("另一位群众经网页反映"), headers=second)
    assert resp.status_code == 201, resp.text
    resp = await web_tier_app.post("/v1/reports", json=web_report("网页自身的请求"))
    assert resp.status_code == 201, resp.text
    # Neither the secret nor any of the addresses is kept in the rows or shows in the spans.
    rows = await fetch(servers, "SELECT r::text AS whole FROM intake.reports r WHERE region_code = :region",
                       region=WEB_REGION)
    assert len(rows) == 5
    secrets = (PROXY_SECRET, "192.0.2.60", "2001:db8::61", WEB_TIER)
    assert not [r.whole for r in rows if leaks(r.whole, secrets)]
    assert not {(sp.name, t) for sp in spans.get_finished_spans() for t in span_texts(sp) if leaks(t, secrets)}


async def test_a_wrong_or_missing_proxy_secret_leaves_the_named_address_unheard(
        web_tier_app: httpx.AsyncClient) -> None:
    # The web tier's own address uses up its allowance (whatever the test above left of it)…
    for i in range(4):
        resp = await web_tier_app.post("/v1/reports", json=web_report(f"网页自身第{i + 1}条"))
        if resp.status_code == 429:
            break
        assert resp.status_code == 201, resp.text
    assert_too_many(await web_tier_app.post("/v1/reports", json=web_report("网页自身已超限")))
    # …so a fresh address named without the right secret, were it believed, would get through: it is not.
    attempts: list[dict[str, str]] = [
        for_citizen("192.0.2.70", secret="not-the-secret-0123456789-abcdefghijklmnop"),
        for_citizen("192.0.2.71", secret=PROXY_SECRET[:-1]),
        for_citizen("192.0.2.72", secret=PROXY_SECRET + "x"),
        {"X-Minyi-Client-Address": "192.0.2.73"},
        {"X-Minyi-Proxy-Secret": PROXY_SECRET},
    ]
    for i, headers in enumerate(attempts):
        assert_too_many(await web_tier_app.post("/v1/reports", json=web_report(f"冒充网页第{i + 1}条"),
                                                headers=headers))
    # Two secret headers, even with the right one among them, are not believed either.
    doubled = httpx.Headers([("X-Minyi-Proxy-Secret", PROXY_SECRET), ("X-Minyi-Proxy-Secret", "x" * 40),
                             ("X-Minyi-Client-Address", "192.0.2.75")])
    resp = await web_tier_app.post("/v1/reports", json=web_report("两个密钥头"), headers=doubled)
    assert_too_many(resp)
    # The right secret still works for a citizen not yet heard from.
    resp = await web_tier_app.post("/v1/reports", json=web_report("真正的网页代转"), headers=for_citizen("192.0.2.74"))
    assert resp.status_code == 201, resp.text


async def test_receipt_codes_stay_out_of_traces(intake: Intake, spans: InMemorySpanExporter) -> None:
    resp = await intake.client.post("/v1/reports", json={
        "channel": "h5", "region_code": REGION, "content": "路口信号灯时长太短。", "anonymous": True})
    code = resp.json()["receipt_code"]
    spans.clear()
    assert (await intake.client.get(f"/v1/receipts/{code}")).status_code == 200
    finished = spans.get_finished_spans()
    assert any("/v1/receipts/{redacted}" in text_ for s in finished for text_ in span_texts(s)), \
        "the request's span is there, with the code replaced"
    compact = code.replace("-", "")
    assert not [t for s in finished for t in span_texts(s) if code in t or compact in t]
