"""The citizens' pages in a real Chromium against the real stack: scan → report → receipt → follow →
rate, with JavaScript on and off, at phone size; a forged code, the flood page, the kiosk's idle
reset, the receipt lookup, the region form. axe-core checks every page; screenshots of the main
pages land in docs/screenshots/ for the README."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import Servers
from missionutil import bearer
from webutil import (
    DESKTOP,
    FLOOD_LIMIT,
    PHONE,
    SCREENSHOTS,
    Site,
    chromium,
    phone_photo,
    site_stack,
    voice_wav,
)

pytestmark = pytest.mark.slow

COUNTY = "330151"
DEPUTY = "demo-dep-county"  # 王丽娟, the county deputy of the demo county
STATION = "demo-station"    # 北山街道人大代表联络站
RECEIPT = re.compile(r"/r/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


_address = iter(range(10, 250))


async def citizen(browser: Any, site: Site, *, js: bool = True, viewport: dict[str, int] = PHONE) -> Any:
    """A new phone: its own cookies, its own network address (as the ingress would name it)."""
    context = await browser.new_context(
        viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai", java_script_enabled=js,
        base_url=site.url, extra_http_headers={"X-Forwarded-For": f"10.77.0.{next(_address)}"},
        permissions=["microphone"] if js else [],
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors
    page.site = site
    page.js = js
    return page


async def no_serious_violations(page: Any) -> None:
    """axe-core on the page as shown. axe runs as a script, so a page shown without JavaScript is
    checked as a copy (its scripts taken out) in a page of its own that may run one."""
    from axe_playwright_python.async_playwright import Axe

    target = page
    if not page.js:
        html = re.sub(r"<script\b[^>]*>.*?</script>", "", await page.content(), flags=re.S)
        context = await page.context.browser.new_context(viewport=page.viewport_size, locale="zh-CN")
        target = await context.new_page()
        await target.goto(f"{page.site.url}/healthz")
        await target.set_content(html)
    try:
        result = await Axe().run(target)
    finally:
        if target is not page:
            await target.context.close()
    serious = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
               for v in result.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, f"axe on {page.url}:\n" + "\n".join(serious)


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def receipt_of(url: str) -> str:
    found = RECEIPT.search(url)
    assert found, f"not a receipt page: {url}"
    return found.group(1)


# ---- the whole path with JavaScript ------------------------------------------------------------


async def test_scan_report_follow_and_rate_with_javascript(site: Site, browser: Any, tmp_path: Path) -> None:
    page = await citizen(browser, site)
    code = site.code_of(DEPUTY)
    await page.goto(f"/q/{code}")
    assert await page.locator("h1").first.inner_text() == "王丽娟"
    await no_serious_violations(page)
    await shot(page, "scan-report-form")

    marker = "人行道地砖松动（网页测试一）"
    await page.fill("#content", f"小区门口{marker}，老人容易绊倒，已经一个多月了。")
    assert "已写" in await page.inner_text("#content-count")
    await page.click("label[for=category-municipal_facilities]")
    original = phone_photo()
    photo_file = tmp_path / "photo.jpg"
    photo_file.write_bytes(original)
    await page.set_input_files("#photos", str(photo_file))
    await page.wait_for_selector("#photo-previews img")

    # A voice note recorded in the page through MediaRecorder (Chromium's fake microphone plays a tone).
    await page.click("#record-start")
    await page.wait_for_selector("#record-stop:visible")
    await page.wait_for_timeout(1500)
    await page.click("#record-stop")
    await page.wait_for_selector("#record-playback:visible")
    assert "已录好" in await page.inner_text("#record-status")

    await page.click("label[for=identity-anonymous]")
    await page.click("#submit")
    await page.wait_for_url(RECEIPT)
    receipt = receipt_of(page.url)
    assert "提交成功" in await page.inner_text("main")
    assert receipt in await page.inner_text("#receipt-code")
    await no_serious_violations(page)
    await shot(page, "receipt-after-submit")

    report = await site.report_by_content(DEPUTY, marker)
    kinds = sorted((a["kind"], a["media_type"]) for a in report["attachments"])
    assert kinds == [("photo", "image/jpeg"), ("voice", "audio/webm")], kinds
    photo = next(a for a in report["attachments"] if a["kind"] == "photo")
    # Downscaled in the browser before upload: a 3000×2000 photo of several MB arrives far smaller.
    assert photo["size"] < len(original) / 3, (photo["size"], len(original))
    assert report["anonymous"] is True and report["reporter"] is None
    assert report["channel"] == "h5" and report["category"] == "municipal_facilities"

    await site.answer(DEPUTY, report["id"], "已联系物业，地砖本周内修好。")
    await page.goto(f"/r/{receipt}")
    assert "已联系物业" in await page.inner_text(".answer")
    assert await page.is_visible("#rating-form")
    await no_serious_violations(page)
    await shot(page, "receipt-answered")

    # One star without a reason is stopped in the page, next to the field.
    await page.click("label[for=stars-1]")
    await page.click("#rating-form button[type=submit]")
    assert "请写一下哪里不满意" in await page.inner_text("#comment-error")
    await page.fill("#comment", "地砖还是松的，没有人来修。")
    await page.click("#rating-form button[type=submit]")
    await page.wait_for_url(re.compile(r"rated=1"))
    text = await page.inner_text("main")
    assert "评价已提交" in text and "重新交给代表办理" in text
    again = (await site.services["intake"].client.get(
        f"/v1/reports/{report['id']}", headers=bearer("deputy", site.county_code, deputy_id=DEPUTY))).json()
    assert again["status"] in ("submitted", "acknowledged") and again["round"] == 2, again
    assert page.js_errors == [], page.js_errors


# ---- the same with JavaScript off ---------------------------------------------------------------


async def test_scan_report_follow_and_rate_without_javascript(site: Site, browser: Any, tmp_path: Path) -> None:
    page = await citizen(browser, site, js=False)
    await page.goto(f"/q/{site.code_of(DEPUTY)}")
    assert not await page.is_visible("#record-start")
    marker = "路灯不亮（无脚本测试）"
    # Real-name without consent and a bad phone number: the page comes back with both, words kept.
    await page.fill("#content", f"文新社区东门{marker}，晚上很黑。")
    await page.click("label[for=identity-real]")
    await page.fill("#name", "张三")
    await page.fill("#phone", "12345")
    photo_file, voice_file = tmp_path / "p.jpg", tmp_path / "v.wav"
    photo_file.write_bytes(phone_photo(1200, 900))
    voice_file.write_bytes(voice_wav())
    await page.set_input_files("#photos", str(photo_file))
    await page.set_input_files("#voice", str(voice_file))
    await page.click("#submit")
    assert "请修改以下" in await page.inner_text("#error-summary")
    assert "11 位手机号" in await page.inner_text("#phone-error")
    assert "同意" in await page.inner_text("#consent-error")
    assert marker in await page.input_value("#content")
    await no_serious_violations(page)
    await shot(page, "report-form-errors")

    await page.fill("#phone", "13900001111")
    await page.check("#consent")
    await page.set_input_files("#photos", str(photo_file))
    await page.set_input_files("#voice", str(voice_file))
    await page.click("#submit")
    await page.wait_for_url(RECEIPT)
    receipt = receipt_of(page.url)
    report = await site.report_by_content(DEPUTY, marker)
    assert sorted(a["kind"] for a in report["attachments"]) == ["photo", "voice"]
    assert report["anonymous"] is False and report["reporter"]["name"].startswith("张")
    assert report["reporter"]["phone"] != "13900001111", "the deputy's list shows the phone masked"

    await site.answer(DEPUTY, report["id"], "已报修，路灯明天修复。")
    await page.goto(f"/r/{receipt}")
    await page.click("label[for=stars-2]")
    await page.click("#rating-form button[type=submit]")
    assert "请写一下哪里不满意" in await page.inner_text("#error-summary")
    await page.click("label[for=stars-2]")
    await page.fill("#comment", "修了一半，另一盏还是不亮。")
    await page.click("#rating-form button[type=submit]")
    await page.wait_for_url(re.compile(r"rated=1"))
    assert "评价已提交" in await page.inner_text("main")
    assert "2 星" in await page.inner_text("main")


# ---- what goes wrong ----------------------------------------------------------------------------


async def test_a_forged_code_is_a_friendly_page_offering_the_region_form(site: Site, browser: Any) -> None:
    page = await citizen(browser, site)
    real = site.code_of(DEPUTY)
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    response = await page.goto(f"/q/{forged}")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "这个二维码无法识别" in await page.inner_text("h1")
    await no_serious_violations(page)
    await shot(page, "forged-code")
    await page.click("text=按地区反映问题")
    await page.wait_for_url(re.compile(r"/report$"))
    assert "问题发生在哪里" in await page.inner_text("h1")


async def test_flooding_reports_from_one_address_gets_the_429_page_and_others_go_on(site: Site, browser: Any
                                                                                     ) -> None:
    page = await citizen(browser, site, js=False)
    code = site.code_of(STATION)
    statuses = []
    for n in range(FLOOD_LIMIT + 1):
        await page.goto(f"/q/{code}")
        await page.fill("#content", f"连续提交测试第 {n} 条")
        async with page.expect_navigation() as navigation:
            await page.click("#submit")
        statuses.append((await navigation.value).status)
    assert statuses[:FLOOD_LIMIT] == [200] * FLOOD_LIMIT, statuses
    assert statuses[-1] == 429
    text = await page.inner_text("main")
    assert "操作太频繁" in text and re.search(r"请 \d+ 秒后再试", text)
    await no_serious_violations(page)
    # Another citizen behind the same web tier is not limited: intake counts each address on its own.
    other = await citizen(browser, site, js=False)
    await other.goto(f"/q/{code}")
    await other.fill("#content", "另一位群众的反映")
    await other.click("#submit")
    await other.wait_for_url(RECEIPT)


async def test_receipt_lookup_forgives_case_spaces_and_dashes_and_names_a_typo(site: Site, browser: Any) -> None:
    page = await citizen(browser, site)
    await page.goto(f"/q/{site.code_of(DEPUTY)}")
    await page.fill("#content", "查询测试：公交站牌被撞歪了")
    await page.click("#submit")
    await page.wait_for_url(RECEIPT)
    receipt = receipt_of(page.url)
    await page.goto("/r")
    await no_serious_violations(page)
    await page.fill("#code", " " + receipt.lower().replace("-", " ") + " ")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**/r/{receipt}")
    assert "反映进度" in await page.inner_text("h1")
    typo = receipt[:-1] + ("2" if receipt[-1] != "2" else "3")
    await page.goto("/r")
    await page.fill("#code", typo)
    await page.click("button[type=submit]")
    assert "回执码有误" in await page.inner_text("#error-summary")


async def test_the_region_form_without_a_code(site: Site, browser: Any) -> None:
    page = await citizen(browser, site, js=False, viewport=DESKTOP)
    await page.goto("/report")
    province, city = f"{COUNTY[:2]}0000", f"{COUNTY[:4]}00"
    await page.click(f"a[href='/report?region={province}']")
    await page.click(f"a[href='/report?region={city}']")
    # From a city on, the form is there; a more precise place is one fold-out away.
    await page.click("details.subregions summary")
    await page.click(f"a[href='/report?region={COUNTY}']")
    assert "演示区" in await page.inner_text("h1")
    await no_serious_violations(page)
    await page.fill("#content", "区政府门口的盲道被共享单车占满（地区表单）")
    await page.click("#submit")
    await page.wait_for_url(RECEIPT)
    assert "提交成功" in await page.inner_text("main")


async def test_the_kiosk_resets_itself_after_90_seconds_idle(site: Site, browser: Any) -> None:
    page = await citizen(browser, site, viewport={"width": 1080, "height": 1920})
    await page.clock.install()
    await page.goto(f"/kiosk/{site.code_of(STATION)}")
    assert await page.evaluate("document.body.classList.contains('kiosk')")
    await no_serious_violations(page)
    await shot(page, "kiosk")
    await page.fill("#content", "这段话不应该留给下一个人看到")
    await page.clock.run_for(60_000)
    assert await page.input_value("#content") != "", "still in use at 60 s"
    await page.clock.run_for(20_000)
    assert "秒后将清空" in await page.inner_text("#kiosk-idle")
    async with page.expect_navigation():
        await page.clock.run_for(12_000)
    assert await page.input_value("#content") == ""


async def test_pages_carry_security_headers_and_no_json_reaches_a_browser(site: Site, browser: Any) -> None:
    page = await citizen(browser, site)
    response = await page.goto(f"/q/{site.code_of(DEPUTY)}")
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    for path in ("/q/x", "/r/AAAA-BBBB-CCCC", "/nowhere", "/report?region=99"):
        response = await page.goto(path)
        assert response.headers["content-type"].startswith("text/html"), path
        assert response.status in (400, 404, 422), (path, response.status)
        body = await page.content()
        assert "Traceback" not in body and '"detail"' not in body, path


# ---- the public boards, with data the services published ------------------------------------------


async def test_public_boards_show_what_the_services_published(site: Site, browser: Any) -> None:
    from datetime import datetime

    from minyi.demo_county import UNITS

    year = datetime.now().year
    suggestions = site.services["suggestions"].client
    staff = bearer("npc_staff", COUNTY)
    lead = bearer("deputy", COUNTY, deputy_id=DEPUTY)
    created = await suggestions.post("/v1/suggestions", headers=lead, json={
        "title": "关于文新社区路灯改造的建议", "content": "文新社区多处路灯老化，夜间出行不便。",
        "lead_deputy_id": DEPUTY, "co_signer_ids": [], "year": year, "kind": "interim"})
    assert created.status_code == 201, created.text
    act = f"/v1/suggestions/{created.json()['id']}"
    unit_id = UNITS[1]
    unit = bearer("unit", COUNTY, unit_id=unit_id)
    assigned = await suggestions.post(f"{act}/assignment", headers=staff, json={"lead_unit_id": unit_id})
    assert assigned.status_code in (200, 201), assigned.text
    now = datetime.now().astimezone().isoformat()
    for stage in ("before", "during", "after"):
        met = await suggestions.post(f"{act}/meetings", headers=unit, json={"stage": stage, "at": now, "note": "见面"})
        assert met.status_code in (200, 201), met.text
    replied = await suggestions.post(f"{act}/replies", headers=unit, json={
        "unit_id": unit_id, "content": "已完成 42 盏路灯更换。\n夜间照明恢复正常。", "outcome": "A"})
    assert replied.status_code in (200, 201), replied.text
    published = await site.services["scoring"].client.post(
        "/v1/rankings/publications", headers=staff, json={"year": year, "region_code": COUNTY})
    assert published.status_code == 201, published.text

    page = await citizen(browser, site, viewport=DESKTOP)
    await page.goto(f"/public/deputies?region_code={COUNTY}&year={year}")
    text = await page.inner_text("main")
    assert "王丽娟" in text and "尚未公布" not in text
    await no_serious_violations(page)
    await shot(page, "public-deputies")

    # The page keeps a board a minute: it is first asked for once scoring holds the unit's reply.
    deadline = datetime.now().timestamp() + 60
    while True:
        board = await site.services["scoring"].client.get(
            "/v1/units/board", params={"year": year, "region_code": COUNTY}, headers=staff)
        if any(row["unit_id"] == unit_id for row in board.json()) or datetime.now().timestamp() > deadline:
            break
        await page.wait_for_timeout(500)
    await page.goto(f"/public/units?region_code={COUNTY}&year={year}")
    text = await page.inner_text("main")
    assert "演示区住房和城乡建设局" in text and "60%" in text, (board.text, text[:500])
    await no_serious_violations(page)

    await page.goto(f"/public/replies?region_code={COUNTY}&year={year}&q=路灯")
    text = await page.inner_text("main")
    assert "关于文新社区路灯改造的建议" in text and "42 盏路灯" in text
    await no_serious_violations(page)

    phone = await citizen(browser, site)
    await phone.goto(f"/public/stats?region_code={COUNTY}")
    text = await phone.inner_text("main")
    assert "统计口径" in text and "数据截至" in text
    assert await phone.locator("svg[role=img]").count() >= 1
    await no_serious_violations(phone)
    await shot(phone, "public-stats")


async def test_the_web_tier_logs_no_address_and_no_receipt_code(site: Site, browser: Any) -> None:
    import logging

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    level, root.level = root.level, logging.DEBUG
    root.addHandler(handler)
    try:
        page = await citizen(browser, site, js=False)
        await page.goto(f"/q/{site.code_of(DEPUTY)}")
        await page.fill("#content", "日志检查：垃圾桶满了没人清")
        await page.click("#submit")
        await page.wait_for_url(RECEIPT)
        receipt = receipt_of(page.url)
        await page.goto(f"/r/{receipt}")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    # Every citizen in these tests is named 10.77.0.x by the ingress header.
    web_lines = [line for line in lines if "10.77.0." in line or receipt in line or receipt.replace("-", "") in line]
    assert web_lines == [], web_lines
