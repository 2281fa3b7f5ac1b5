"""The pages about common matters over stand-in service answers (httpx.MockTransport): the report
form's search for repeats without JavaScript and as the script's fragment, a matter's public page
(merged, unknown, closed), the me-too form and each refusal intake may give, and the receipt's
lineage. The same pages against the real services: tests/test_web_matters.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.web.service import build_app
from shared.proxy import ADDRESS_HEADER
from shared.settings import Settings

TOWN = "330151109"
PATHS = {"330151": [("330000", "演示省"), ("330100", "演示市"), ("330151", "演示区")]}
PATHS[TOWN] = [*PATHS["330151"], (TOWN, "三墩镇")]
MATTER = "0190a0b2-0000-7000-8000-000000000001"
MERGED = "0190a0b2-0000-7000-8000-000000000002"
REPORT = "0190a0b2-0000-7000-8000-0000000000aa"
RECEIPT = "ABCD-EFGH-JKLM"
CONTENT = "长山路淮海路路口那个下水道又堵住了，脏水漫到路上"


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"type": "about:blank", "title": "error", "status": status, "detail": detail,
                                        **extra}, headers={"content-type": "application/problem+json"})


def hotspot(hotspot_id: str = MATTER, **over: Any) -> dict[str, Any]:
    return {"id": hotspot_id, "category": "municipal_facilities", "category_label": "市政设施", "region_code": TOWN,
            "places": ["淮海路与长山路交叉口"], "keywords": ["下水道", "堵塞", "污水"], "count": 6, "supporters": 2,
            "state": "open", "topic_title": None, "suggestion_id": None, "first_at": "2026-03-01T08:00:00+08:00",
            "last_at": "2026-03-05T09:30:00+08:00", "report_id": REPORT, "merged_into": None, **over}


@dataclass
class Services:
    calls: list[httpx.Request] = field(default_factory=list)
    hotspots: dict[str, dict[str, Any]] = field(default_factory=lambda: {MATTER: hotspot()})
    matches: list[dict[str, Any]] = field(default_factory=list)
    similar_answer: httpx.Response | None = None
    hotspot_answer: httpx.Response | None = None
    support_answer: httpx.Response | None = None
    receipt: dict[str, Any] = field(default_factory=dict)

    def called(self, method: str, path: str) -> list[httpx.Request]:
        return [c for c in self.calls if c.method == method and c.url.path == path]

    def identity(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path == "/v1/public/regions":
            return httpx.Response(200, json=[])
        code = request.url.path.rsplit("/", 1)[-1]
        if code not in PATHS:
            return problem(404, "地区不存在。")
        steps = PATHS[code]
        return httpx.Response(200, json={"code": code, "name": steps[-1][1], "parent_code": steps[-2][0],
                                         "path": [{"code": c, "name": n} for c, n in steps]})

    def routing(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        if path == "/v1/categories":
            return httpx.Response(200, json=[{"code": "municipal_facilities", "label": "市政设施"}])
        if path == "/v1/public/hotspots/similar":
            if self.similar_answer is not None:
                return self.similar_answer
            return httpx.Response(200, json={"matches": self.matches})
        if path.startswith("/v1/public/hotspots/"):
            if self.hotspot_answer is not None:
                return self.hotspot_answer
            found = self.hotspots.get(path.rsplit("/", 1)[-1])
            return httpx.Response(200, json=found) if found else problem(404, "没有找到这个共性事项。")
        return problem(404, "no such path")

    def intake(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path == f"/v1/reports/{REPORT}/supports":
            return self.support_answer or httpx.Response(201, json={"report_id": REPORT, "supporters": 3})
        if request.url.path.startswith("/v1/receipts/"):
            return httpx.Response(200, json=self.receipt)
        return problem(404, "no such path")


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def client(tmp_path: Path, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    # The citizen's address as an ingress names it, to see it passed on.
    app = build_app(Settings(home=tmp_path, dev_secrets=True, trust_forwarded_for=True), transports={
        "identity": httpx.MockTransport(services.identity), "routing": httpx.MockTransport(services.routing),
        "intake": httpx.MockTransport(services.intake),
        "scoring": httpx.MockTransport(lambda r: httpx.Response(404)),
        "suggestions": httpx.MockTransport(lambda r: httpx.Response(404))})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver",
                                 headers={"X-Forwarded-For": "10.9.8.7"}) as http:
        yield http
    await app.state.web.upstreams.close()


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page holds no form token"
    return found.group(1)


def value_of(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html)
    assert found, name
    return found.group(1)


def page(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text[:800]
    assert response.headers["content-type"].startswith("text/html")
    assert "style=" not in response.text and not re.search(r"<script(?![^>]*\bsrc=)", response.text)
    return response.text


def similar_body(services: Services) -> dict[str, Any]:
    sent = services.called("POST", "/v1/public/hotspots/similar")
    assert len(sent) == 1, sent
    return dict(json.loads(sent[0].content))


def match(**over: Any) -> dict[str, Any]:
    found = hotspot()
    return {"hotspot_id": found["id"], "score": 0.7, **{k: v for k, v in found.items()
                                                          if k not in ("id", "topic_title", "suggestion_id",
                                                                       "merged_into")}, **over}


# ---- the report form's "先看看有没有人反映过", without JavaScript ----------------------------------------


async def check(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = page(await client.get(f"/report?region={TOWN}"))
    data = {"csrf": csrf_of(form), "idem": value_of(form, "idem"), "content": CONTENT, "identity": "real",
            "name": "赵六", "phone": "13900002222", "address": "淮海路口", "action": "check", **fields}
    # Sent as the browser sends the form: multipart, an empty file field included.
    return await client.post(f"/report?region={TOWN}", data=data,
                             files={"photos": ("", b"", "application/octet-stream")})


async def test_the_form_comes_back_with_its_words_and_the_likely_repeats(client: httpx.AsyncClient,
                                                                         services: Services) -> None:
    form = page(await client.get(f"/report?region={TOWN}"))
    assert "先看看有没有人反映过" in form
    assert f'data-similar-region="{TOWN}"' in form
    services.matches = [match(supporters=2)]
    html = page(await check(client))
    text = text_of(html)
    assert "这些事可能已经有人反映过" in text
    assert "淮海路与长山路交叉口" in text and "市政设施" in text
    assert "已有 6 人反映 · 2 人附议" in text and "处理中" in text and "最近一次 2026年3月5日" in text
    assert f'href="/matters/{MATTER}"' in html and "我也遇到（附议）" in text
    # Everything typed is kept, and nothing was filed.
    assert CONTENT in html and value_of(html, "name") == "赵六" and value_of(html, "phone") == "13900002222"
    assert value_of(html, "address") == "淮海路口"
    assert not services.called("POST", "/v1/reports")
    # The list is above the submit button.
    assert html.index("这些事可能已经有人反映过") < html.index('id="submit"')
    sent = similar_body(services)
    assert sent == {"region_code": TOWN, "content": f"{CONTENT}\n地点：淮海路口"}
    # Routing counts searches per citizen, as intake counts reports: it is told whose search it is.
    assert services.called("POST", "/v1/public/hotspots/similar")[0].headers.get(ADDRESS_HEADER) == "10.9.8.7"


async def test_none_found_is_said_and_the_position_goes_along(client: httpx.AsyncClient,
                                                                services: Services) -> None:
    html = page(await check(client, lat="30.25", lon="120.1"))
    assert "暂未发现相同的反映" in text_of(html)
    assert similar_body(services)["lat"] == 30.25 and similar_body(services)["lon"] == 120.1


@pytest.mark.parametrize(("answer", "said"), [
    (problem(429, "查询太频繁。"), "查找太频繁了"),
    (httpx.Response(503, text="down"), "暂时无法查找相同的反映"),
])
async def test_a_refused_search_leaves_the_form_to_be_sent(client: httpx.AsyncClient, services: Services,
                                                           answer: httpx.Response, said: str) -> None:
    services.similar_answer = answer
    html = page(await check(client))
    assert said in text_of(html)
    assert 'id="submit"' in html and CONTENT in html


async def test_chosen_files_are_not_uploaded_by_a_search_and_the_page_says_to_choose_them_again(
        client: httpx.AsyncClient, services: Services) -> None:
    form = page(await client.get(f"/report?region={TOWN}"))
    sent = await client.post(f"/report?region={TOWN}", data={"csrf": csrf_of(form), "content": CONTENT,
                                                              "action": "check"},
                             files={"photos": ("p.jpg", b"\xff\xd8\xff\xe0 a photo", "image/jpeg")})
    html = page(sent)
    assert 'id="files-again"' in html and "重新选择" in text_of(html)
    assert not [c for c in services.calls if c.url.path.startswith(("/v1/attachments", "/v1/reports"))]
    without = page(await check(client))
    assert 'id="files-again"' not in without


async def test_too_few_words_are_not_searched(client: httpx.AsyncClient, services: Services) -> None:
    html = page(await check(client, content="下水道", address=""))
    assert "至少 6 个字" in text_of(html)
    assert not services.called("POST", "/v1/public/hotspots/similar")


async def test_a_code_form_searches_in_the_codes_region(tmp_path: Path) -> None:
    codes = {"/v1/codes/K1234": {"kind": "station", "id": "s1", "name": "三墩镇人大代表之家", "region_code": TOWN}}
    seen: list[dict[str, Any]] = []

    def identity(request: httpx.Request) -> httpx.Response:
        found = codes.get(request.url.path)
        return httpx.Response(200, json=found) if found else problem(404, "无")

    def routing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/public/hotspots/similar":
            seen.append(json.loads(request.content))
            return httpx.Response(200, json={"matches": [match()]})
        return httpx.Response(200, json=[])

    app = build_app(Settings(home=tmp_path, dev_secrets=True), transports={
        "identity": httpx.MockTransport(identity), "routing": httpx.MockTransport(routing)})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http:
        kiosk = page(await http.get("/kiosk/K1234"))
        assert 'data-kiosk-code="K1234"' in kiosk
        html = page(await http.post("/kiosk/K1234", data={"content": CONTENT, "action": "check"}))
        # From a kiosk the matter's page stays a kiosk page.
        assert f'href="/matters/{MATTER}?kiosk=K1234"' in html
    await app.state.web.upstreams.close()
    assert seen[0]["region_code"] == TOWN


# ---- the same list as the script's fragment --------------------------------------------------------


async def fragment(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = page(await client.get(f"/report?region={TOWN}"))
    return await client.post("/matters/similar", data={"csrf": csrf_of(form), "region": TOWN, "content": CONTENT,
                                                       **fields})


async def test_the_fragment_lists_the_same_matches(client: httpx.AsyncClient, services: Services) -> None:
    services.matches = [match()]
    response = await fragment(client, auto="1")
    html = page(response)
    assert "<html" not in html and "<main" not in html
    assert "淮海路与长山路交叉口" in html and f'href="/matters/{MATTER}"' in html
    assert response.headers["cache-control"] == "no-store"


async def test_while_typing_none_found_is_not_said_but_asked_it_is(client: httpx.AsyncClient,
                                                                     services: Services) -> None:
    assert page(await fragment(client, auto="1")).strip() == ""
    assert "暂未发现相同的反映" in page(await fragment(client, auto="0"))
    assert page(await fragment(client, auto="1", content="下水道")).strip() == ""
    # The short one was not even asked.
    assert len(services.called("POST", "/v1/public/hotspots/similar")) == 2


async def test_the_fragment_wants_the_forms_token(client: httpx.AsyncClient, services: Services) -> None:
    refused = await client.post("/matters/similar", data={"csrf": "1.x", "region": TOWN, "content": CONTENT})
    assert "刷新页面" in page(refused, 400)
    assert not services.called("POST", "/v1/public/hotspots/similar")


# ---- a matter's page ---------------------------------------------------------------------------------


async def test_a_matter_says_what_where_and_how_many_and_no_more(client: httpx.AsyncClient) -> None:
    html = page(await client.get(f"/matters/{MATTER}"))
    text = text_of(html)
    assert "<h1" in html and "淮海路与长山路交叉口" in text and "演示区三墩镇" in text
    assert "市政设施" in text and "6 人" in text and "2 人" in text and "处理中" in text
    assert "下水道" in text and "2026年3月1日" in text and "2026年3月5日" in text
    assert "我也遇到，附议" in text and csrf_of(html)
    assert 'value="anonymous" checked' in html
    # No one's report, no one's name, no internal ids.
    assert REPORT not in html and "reporter" not in html


async def test_a_matters_lookups_are_counted_per_citizen(client: httpx.AsyncClient, services: Services) -> None:
    page(await client.get(f"/matters/{MATTER}"))
    asked = services.called("GET", f"/v1/public/hotspots/{MATTER}")
    assert asked and asked[0].headers.get(ADDRESS_HEADER) == "10.9.8.7"


async def test_too_many_lookups_is_the_flood_page(client: httpx.AsyncClient, services: Services) -> None:
    services.hotspot_answer = problem(429, "太频繁。")
    assert "操作太频繁了" in text_of(page(await client.get(f"/matters/{MATTER}"), 429))


async def test_a_converted_matter_names_its_topic(client: httpx.AsyncClient, services: Services) -> None:
    services.hotspots[MATTER] = hotspot(state="converted", topic_title="淮海路片区排水改造")
    text = text_of(page(await client.get(f"/matters/{MATTER}")))
    assert "已列为监督议题" in text and "淮海路片区排水改造" in text and "我也遇到，附议" in text


async def test_a_merged_matter_sends_to_the_one_it_was_merged_into(client: httpx.AsyncClient,
                                                                   services: Services) -> None:
    services.hotspots[MERGED] = hotspot(MERGED, merged_into=MATTER)
    response = await client.get(f"/matters/{MERGED}?kiosk=K1234")
    assert response.status_code == 303
    assert response.headers["location"] == f"/matters/{MATTER}?kiosk=K1234"


@pytest.mark.parametrize("hotspot_id", ["0190a0b2-0000-7000-8000-00000000ffff", "no%20such", "x" * 80])
async def test_an_unknown_matter_is_the_friendly_404(client: httpx.AsyncClient, hotspot_id: str) -> None:
    html = page(await client.get(f"/matters/{hotspot_id}"), 404)
    assert "没有找到这个共性事项" in text_of(html)


async def test_a_closed_matter_takes_no_support(client: httpx.AsyncClient, services: Services) -> None:
    services.hotspots[MATTER] = hotspot(state="closed")
    html = page(await client.get(f"/matters/{MATTER}"))
    assert "已办结" in text_of(html) and 'id="support-form"' not in html


# ---- the me-too form --------------------------------------------------------------------------------


async def support(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    html = page(await client.get(f"/matters/{MATTER}"))
    data = {"csrf": csrf_of(html), "idem": value_of(html, "idem"), "identity": "anonymous", **fields}
    return await client.post(f"/matters/{MATTER}/support", data=data)


async def test_an_anonymous_me_too_thanks_with_intakes_count(client: httpx.AsyncClient,
                                                             services: Services) -> None:
    response = await support(client)
    assert response.status_code == 303
    location = response.headers["location"]
    assert urlsplit(location).path == f"/matters/{MATTER}"
    sent = services.called("POST", f"/v1/reports/{REPORT}/supports")
    assert len(sent) == 1
    assert json.loads(sent[0].content) == {"anonymous": True, "channel": "h5"}
    assert re.fullmatch(r"web-support-[0-9a-f]{32}", sent[0].headers["idempotency-key"])
    assert sent[0].headers.get(ADDRESS_HEADER) == "10.9.8.7"
    thanked = page(await client.get(location))
    assert "感谢您的附议，已有 3 人附议" in text_of(thanked)
    # Routing still says 2 (it hears of the support later): the page does not say fewer than the thanks.
    assert re.search(r'id="matter-supporters">3 人<', thanked)
    # The count cannot be typed into the address bar.
    forged = page(await client.get(f"/matters/{MATTER}?thanks=999"))
    assert "感谢您的附议" not in forged
    sealed = parse_qs(urlsplit(location).query)["thanks"][0]
    services.hotspots[MERGED] = hotspot(MERGED)
    assert "感谢您的附议" not in page(await client.get(f"/matters/{MERGED}?thanks={sealed}"))


async def test_a_real_name_me_too_sends_name_and_phone(client: httpx.AsyncClient, services: Services) -> None:
    response = await support(client, identity="real", name="李四", phone="139 0000 1111", consent="yes")
    assert response.status_code == 303
    sent = services.called("POST", f"/v1/reports/{REPORT}/supports")
    assert json.loads(sent[0].content) == {"anonymous": False, "channel": "h5",
                                           "reporter": {"name": "李四", "phone": "13900001111"}}


async def test_from_a_kiosk_the_matter_stays_a_kiosk_page(client: httpx.AsyncClient, services: Services) -> None:
    html = page(await client.get(f"/matters/{MATTER}?kiosk=K1234"))
    assert '<body class="kiosk">' in html and 'href="/kiosk/K1234"' in html and 'id="kiosk-idle"' in html
    assert f'action="/matters/{MATTER}/support?kiosk=K1234"' in html
    response = await client.post(f"/matters/{MATTER}/support?kiosk=K1234",
                                 data={"csrf": csrf_of(html), "identity": "anonymous", "kiosk": "K1234"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["kiosk"] == ["K1234"]
    sent = services.called("POST", f"/v1/reports/{REPORT}/supports")
    assert json.loads(sent[0].content)["channel"] == "kiosk"


async def test_a_real_name_me_too_is_checked_before_anything_is_sent(client: httpx.AsyncClient,
                                                                       services: Services) -> None:
    html = page(await support(client, identity="real", name="李四", phone="12345"), 422)
    text = text_of(html)
    assert "11 位手机号" in text and "同意" in text
    assert value_of(html, "name") == "李四" and value_of(html, "phone") == "12345"
    assert 'value="real" checked' in html
    assert not services.called("POST", f"/v1/reports/{REPORT}/supports")


async def test_a_me_too_without_the_forms_token_is_not_sent(client: httpx.AsyncClient,
                                                              services: Services) -> None:
    html = page(await client.post(f"/matters/{MATTER}/support", data={"identity": "anonymous"}), 400)
    assert "再点一次附议" in text_of(html)
    assert not services.called("POST", f"/v1/reports/{REPORT}/supports")


@pytest.mark.parametrize(("answer", "status", "said"), [
    (problem(409, "您已经附议过这条反映。"), 409, "您已经附议过这条反映。"),
    (problem(409, "这条反映已经办结，如问题仍在，请重新反映。"), 409, "已经办结"),
    (problem(429, "提交太频繁。"), 429, "操作太频繁了"),
    (problem(422, "提交的附议有误", errors=[{"field": "reporter.phone", "message": "实名附议请填写联系电话"}]), 422,
     "实名附议请填写联系电话"),
])
async def test_intakes_refusals_come_back_on_the_page_with_what_was_typed(
        client: httpx.AsyncClient, services: Services, answer: httpx.Response, status: int, said: str) -> None:
    services.support_answer = answer
    html = page(await support(client, identity="real", name="李四", phone="13900001111", consent="yes"), status)
    assert said in text_of(html)
    assert value_of(html, "name") == "李四" and value_of(html, "phone") == "13900001111"
    assert 'id="error-summary"' in html
    if status == 422:
        assert 'id="phone-error"' in html


async def test_a_closed_matter_refuses_a_me_too_without_asking_intake(client: httpx.AsyncClient,
                                                                       services: Services) -> None:
    html = page(await client.get(f"/matters/{MATTER}"))
    services.hotspots[MATTER] = hotspot(state="closed")
    response = await client.post(f"/matters/{MATTER}/support", data={"csrf": csrf_of(html), "identity": "anonymous"})
    assert "不再接受附议" in text_of(page(response, 409))
    assert not services.called("POST", f"/v1/reports/{REPORT}/supports")


# ---- the receipt --------------------------------------------------------------------------------------


def receipt(**over: Any) -> dict[str, Any]:
    return {"status": "acknowledged", "category": "municipal_facilities", "received_at": "2026-03-01T08:00:00+08:00",
            "ack_due": "2026-03-03T08:00:00+08:00", "reply_due": "2026-03-10T08:00:00+08:00", "can_rate": False,
            "timeline": [
                {"at": "2026-03-01T08:00:00+08:00", "status": "submitted", "note": "已收到您的反映。",
                 "kind": "report"},
                {"at": "2026-03-02T08:00:00+08:00", "status": "acknowledged",
                 "note": "您反映的问题与其他群众反映的同一问题已归为共性事项，目前共 6 人反映。", "kind": "lineage"},
            ], "supporters": 0, "hotspot_id": None, **over}


async def test_the_receipt_tells_of_the_matter_and_its_supporters(client: httpx.AsyncClient,
                                                                  services: Services) -> None:
    services.receipt = receipt(supporters=2, hotspot_id=MATTER)
    html = page(await client.get(f"/r/{RECEIPT}"))
    text = text_of(html)
    assert "另有 2 人附议" in text
    assert f'href="/matters/{MATTER}"' in html and "查看这个共性事项" in text
    lineage = re.search(r'<li class="timeline-lineage">.*?</li>', html, re.S)
    assert lineage and "共性事项" in lineage.group(0) and "已归为共性事项" in lineage.group(0)
    assert html.count('class="timeline-lineage"') == 1


async def test_a_receipt_without_a_matter_says_nothing_of_one(client: httpx.AsyncClient,
                                                               services: Services) -> None:
    services.receipt = receipt(timeline=receipt()["timeline"][:1])
    text = text_of(page(await client.get(f"/r/{RECEIPT}")))
    assert "附议" not in text and "共性事项" not in text
