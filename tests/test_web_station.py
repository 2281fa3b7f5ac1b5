"""The station clerk's pages in a real Chromium against the real stack: register a hotline report
with the time it really came in and a scanned letter, print the slip, find it on the citizen's
receipt page and in the region's open list with who it waits on, 催办 once and be refused the second
time within the hour; the same without JavaScript; a letter for a station picked from the region's
list; the exports; who may not open the pages."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from conftest import Servers
from missionutil import bearer
from openpyxl import load_workbook
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, PHONE, Site, chromium, phone_photo, site_stack

from services.web.words import SHANGHAI

pytestmark = pytest.mark.slow

COUNTY = "330163"
DEPUTY = "demo-dep-county"  # 王丽娟
SLIP = re.compile(r"/work/station/slips/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\?new=1")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-station"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def clerk(browser: Any, site: Site, *, js: bool = True, viewport: dict[str, int] = DESKTOP,
                roles: tuple[str, ...] = ("station_staff",), **claims: Any) -> Any:
    context = await browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url)
    await context.add_cookies([site.session_cookie(list(roles), name="刘芳", **claims)])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.site = site
    page.js = js
    return page


async def staff_view(site: Site, report_id: str) -> dict[str, Any]:
    response = await site.services["intake"].client.get(f"/v1/reports/{report_id}",
                                                        headers=bearer("station_staff", site.county_code))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def report_with(site: Site, marker: str) -> dict[str, Any]:
    response = await site.services["intake"].client.get(
        "/v1/reports", params={"page_size": 100, "region_code": site.county_code},
        headers=bearer("station_staff", site.county_code))
    assert response.status_code == 200, response.text
    for item in response.json()["items"]:
        if marker in item["excerpt"]:
            return await staff_view(site, item["id"])
    raise AssertionError(f"no report holds {marker!r}")


def local_input(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


async def test_register_a_hotline_report_print_the_slip_follow_it_and_urge_the_deputy(
        site: Site, browser: Any, tmp_path: Path) -> None:
    page = await clerk(browser, site)
    await page.goto("/work")
    assert page.url.endswith("/work/station")
    await page.click("text=登记反映")
    await page.wait_for_url(re.compile(r"/work/station/register$"))
    await no_serious_violations(page)

    marker = "楼道灯坏了（电话登记测试）"
    received = datetime.now(SHANGHAI).replace(second=0, microsecond=0) - timedelta(days=2, hours=3)
    await page.click("label[for=channel-hotline]")
    await page.fill("#received_at", local_input(received))
    await page.fill("#target_code", f"{site.url}/q/{site.code_of(DEPUTY)}")
    await page.fill("#content", f"来电反映：文新社区 3 幢{marker}，老人晚上下楼不安全。")
    scan = tmp_path / "letter.jpg"
    scan.write_bytes(phone_photo(1200, 1600))
    await page.set_input_files("#photos", str(scan))
    await page.click("label[for=identity-real]")
    await page.fill("#name", "李阿姨")
    await page.fill("#phone", "13900002222")
    # Without the citizen's consent the form comes back with the words kept and the problem at the box.
    await page.click("#submit")
    assert "取得同意后勾选" in await page.inner_text("#consent-error")
    assert marker in await page.input_value("#content")
    assert "将登记给：王丽娟" in await page.inner_text("#target-found")
    await no_serious_violations(page)
    await shot(page, "station-register-errors")
    await page.set_input_files("#photos", str(scan))
    await page.check("#consent")
    await page.click("#submit")
    await page.wait_for_url(SLIP)
    code = SLIP.search(page.url).group(1)  # type: ignore[union-attr]
    assert code in await page.inner_text("#receipt-code")
    assert f"/r/{code}" in await page.inner_text(".station-slip")
    assert await page.is_visible("#print-slip")
    await no_serious_violations(page)
    await shot(page, "station-slip")
    await page.emulate_media(media="print")
    assert not await page.is_visible("header.site") and await page.is_visible("#receipt-code")
    await page.emulate_media(media="screen")

    report = await report_with(site, marker)
    assert report["channel"] == "hotline" and report["target"]["kind"] == "deputy"
    assert report["target"]["id"] == DEPUTY
    assert datetime.fromisoformat(report["received_at"]) == received
    assert [a["kind"] for a in report["attachments"]] == ["photo"]
    assert report["anonymous"] is False and report["reporter"]["name"] == "李**"

    # The citizen's own receipt page finds it by the code on the slip.
    citizen = await browser.new_context(base_url=site.url, locale="zh-CN", viewport=PHONE)
    follow = await citizen.new_page()
    await follow.goto("/r")
    await follow.fill("#code", code.replace("-", "").lower())
    await follow.click("main form button[type=submit]")
    await follow.wait_for_url(re.compile(f"/r/{code}$"))
    assert "待受理" in await follow.inner_text("main")
    await citizen.close()

    # The open list shows it and who it waits on.
    await page.goto("/work/station")
    row = page.locator(f"#r-{report['id']}")
    assert "代表 王丽娟" in await row.locator(".waits-on").inner_text()
    assert re.search("正常|即将到期|超期", await row.locator(".due").inner_text())
    await no_serious_violations(page)

    await row.locator("input[name=note]").fill("请今天回电李阿姨")
    await row.locator("button.remind-button").click()
    await page.wait_for_url(re.compile(r"reminded="))
    assert "已催办" in await page.inner_text("#reminded-notice")
    await shot(page, "station-open-list")
    timeline = (await staff_view(site, report["id"]))["timeline"]
    notes = [(t["note"], t["public"]) for t in timeline]
    assert ("联络站已催促代表尽快办理。", True) in notes and ("催办说明：请今天回电李阿姨", False) in notes

    # A second 催办 within the hour is refused in Chinese next to the report, nothing written.
    row = page.locator(f"#r-{report['id']}")
    await row.locator("button.remind-button").click()
    await page.wait_for_selector(f"#note-{report['id']}-error")
    refusal = await page.inner_text(f"#note-{report['id']}-error")
    assert "一小时内只能催办一次" in refusal, refusal
    assert "催办没有成功" in await page.inner_text("#error-summary")
    await no_serious_violations(page)
    assert len([t for t in (await staff_view(site, report["id"]))["timeline"]
                if t["note"] == "联络站已催促代表尽快办理。"]) == 1
    assert page.js_errors == [], page.js_errors


async def test_register_and_urge_without_javascript_on_a_phone(site: Site, browser: Any) -> None:
    page = await clerk(browser, site, js=False, viewport=PHONE)
    await page.goto("/work/station/register")
    marker = "村道积水（纸质来信无脚本测试）"
    await page.click("label[for=channel-paper]")
    # A time in the future is refused next to the field.
    await page.fill("#received_at", local_input(datetime.now(SHANGHAI) + timedelta(days=1)))
    await page.select_option("#region_code", f"{site.county_code}001")
    await page.fill("#content", f"来信：{marker}，雨天出行困难。")
    await page.click("label[for=identity-anonymous]")
    await page.click("#submit")
    assert "不能晚于现在" in await page.inner_text("#received_at-error")
    await no_serious_violations(page)
    await page.fill("#received_at", local_input(datetime.now(SHANGHAI) - timedelta(hours=5)))
    await page.click("#submit")
    await page.wait_for_url(SLIP)
    assert not await page.is_visible("#print-slip")  # the print button needs JavaScript; the hint says Ctrl+P

    report = await report_with(site, marker)
    assert report["channel"] == "paper" and report["target"]["kind"] == "region" and report["anonymous"] is True
    await page.goto(f"/work/station?region={site.county_code}001")
    row = page.locator(f"#r-{report['id']}")
    assert "联络站工作人员" in await row.locator(".waits-on").inner_text()
    await row.locator("button.remind-button").click()
    await page.wait_for_url(re.compile(r"reminded="))
    assert f"region={site.county_code}001" in page.url
    assert "已催办" in await page.inner_text(f"#r-{report['id']}")
    await no_serious_violations(page)


async def test_a_letter_for_a_station_is_registered_by_picking_it_from_the_list(site: Site, browser: Any) -> None:
    """Without JavaScript, on a phone: the region's stations and deputies are a list to pick from."""
    page = await clerk(browser, site, js=False, viewport=PHONE)
    await page.goto("/work/station/register")
    picker = page.locator("#target_pick")
    stations = await picker.locator("optgroup[label=联络站] option").all_inner_texts()
    deputies = await picker.locator("optgroup[label=人大代表] option").all_inner_texts()
    assert "北山街道人大代表联络站" in stations and "三墩镇人大代表之家" in stations
    assert any(d.startswith("王丽娟（") and "北山街道人大代表联络站" in d for d in deputies), deputies
    # The county's clerk is offered the county's people: not the province's deputy above it, no phones.
    assert not any("周国华" in d for d in deputies) and not re.search(r"1[3-9]\d{9}", "".join(deputies))
    await no_serious_violations(page)
    await shot(page, "station-register-picker")

    marker = "菜场排水沟堵塞（选择联络站测试）"
    await page.click("label[for=channel-paper]")
    await page.fill("#received_at", local_input(datetime.now(SHANGHAI) - timedelta(hours=1)))
    await picker.select_option(label="北山街道人大代表联络站")
    await page.fill("#content", f"来信：{marker}，气味很大。")
    await page.click("label[for=identity-real]")
    await page.fill("#name", "周先生")
    await page.fill("#phone", "13900003333")
    # Sent back for the missing consent, the choice is kept and named.
    await page.click("#submit")
    assert "取得同意后勾选" in await page.inner_text("#consent-error")
    assert "将登记给：北山街道人大代表联络站" in await page.inner_text("#target-found")
    assert await picker.input_value() == site.code_of("demo-station")
    await page.check("#consent")
    await page.click("#submit")
    await page.wait_for_url(SLIP)
    report = await report_with(site, marker)
    assert report["target"] == {"kind": "station", "id": "demo-station", "region_code": report["region_code"]}
    assert report["channel"] == "paper"

    # A pasted link wins over the list: a letter naming a deputy the clerk scanned.
    await page.goto("/work/station/register")
    await page.select_option("#target_pick", label="北山街道人大代表联络站")
    await page.fill("#target_code", f"{site.url}/q/{site.code_of(DEPUTY)}")
    await page.fill("#content", "来信：路口红绿灯时间太短（粘贴优先测试），老人过马路来不及。")
    await page.click("label[for=identity-anonymous]")
    await page.click("#submit")
    await page.wait_for_url(SLIP)
    pasted = await report_with(site, "粘贴优先测试")
    assert pasted["target"]["kind"] == "deputy" and pasted["target"]["id"] == DEPUTY


async def test_exports_hold_the_open_reports_with_chinese_headers(site: Site) -> None:
    cookie = site.session_cookie(["station_staff"])
    async with httpx.AsyncClient(base_url=site.url, cookies={cookie["name"]: cookie["value"]}) as client:
        csv_answer = await client.get("/work/station/export.csv")
        assert csv_answer.status_code == 200, csv_answer.text[:300]
        assert csv_answer.content.startswith(b"\xef\xbb\xbf")
        text = csv_answer.content.decode("utf-8-sig")
        assert text.splitlines()[0].startswith("反映编号,收到时间,渠道,状态,等待谁办理")
        assert "电话" in text or "纸质来信" in text
        xlsx = await client.get("/work/station/export.xlsx", params={"overdue": "no"})
        assert xlsx.status_code == 200
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        assert [c.value for c in sheet[1]][:3] == ["反映编号", "收到时间", "渠道"]
        assert sheet.max_row >= 2


async def test_only_station_staff_open_the_pages(site: Site, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        answer = await client.get("/work/station")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=/work/station")
    page = await clerk(browser, site, roles=("deputy",), deputy_id=DEPUTY)
    answer = await page.goto("/work/station/register")
    assert answer.status == 403
    assert "联络站工作人员" in await page.inner_text("main")
