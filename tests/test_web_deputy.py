"""The deputy's pages in a real Chromium against the real stack, at phone size: a citizen reports
through the deputy's code, the deputy finds it in the inbox, takes it up, answers with a template,
and the citizen's receipt shows the answer; the contact is shown once with a reason; the same
without JavaScript; another deputy's report is refused; the list exports; a suggestion is drafted
with a co-signer, submitted, replied to by a unit and evaluated; the year page shows the points.
axe-core checks every page; screenshots land in docs/screenshots/."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import Servers
from missionutil import bearer
from openpyxl import load_workbook
from test_web_browser import RECEIPT, citizen, no_serious_violations, receipt_of, shot
from webutil import PHONE, Site, chromium, phone_photo, site_stack, voice_wav

from minyi.demo_county import UNITS

pytestmark = pytest.mark.slow

COUNTY = "361127"
DEPUTY = "demo-dep-county-b"  # 陈志强, county deputy received at 西溪选区代表工作室
DEPUTY_NAME = "陈志强"
OTHER = "demo-dep-township"  # 李秀英: not this deputy's, nor at a station of theirs
REPORT_PAGE = re.compile(r"/work/reports/([0-9a-f-]{36})")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-deputy"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def deputy(browser: Any, site: Site, *, js: bool = True, deputy_id: str = DEPUTY) -> Any:
    """The deputy's phone, signed in."""
    context = await browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url)
    await context.add_cookies([site.session_cookie(["deputy"], deputy_id=deputy_id, name=DEPUTY_NAME)])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A form answered with its errors comes with a 4xx status, which Chromium reports on the console.
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.js_errors = errors
    page.site = site
    page.js = js
    return page


async def file_report(browser: Any, site: Site, marker: str, tmp_path: Path, *, phone: str) -> str:
    """A citizen reports through the deputy's code, real-name, with a photo and a voice note; the receipt code."""
    page = await citizen(browser, site, js=False)
    await page.goto(f"/q/{site.code_of(DEPUTY)}")
    await page.fill("#content", f"西溪街道{marker}，希望尽快处理。")
    await page.click("label[for=identity-real]")
    await page.fill("#name", "张三")
    await page.fill("#phone", phone)
    await page.check("#consent")
    photo, voice = tmp_path / "p.jpg", tmp_path / "v.wav"
    photo.write_bytes(phone_photo(1200, 900))
    voice.write_bytes(voice_wav())
    await page.set_input_files("#photos", str(photo))
    await page.set_input_files("#voice", str(voice))
    await page.click("#submit")
    await page.wait_for_url(RECEIPT)
    receipt = receipt_of(page.url)
    await page.context.close()
    return receipt


async def open_from_inbox(page: Any, marker: str) -> str:
    """Finds the report in the inbox by its words and opens it; its id."""
    await page.goto("/work/deputy")
    link = page.locator(".dep-title a", has_text=marker)
    await link.click()
    await page.wait_for_url(REPORT_PAGE)
    found = REPORT_PAGE.search(page.url)
    assert found
    return found.group(1)


# ---- the main path -------------------------------------------------------------------------------


async def test_inbox_take_up_answer_with_a_template_and_the_citizen_sees_it(site: Site, browser: Any,
                                                                            tmp_path: Path) -> None:
    marker = "公园健身器材损坏（代表页测试一）"
    receipt = await file_report(browser, site, marker, tmp_path, phone="13900002222")
    page = await deputy(browser, site)

    await page.goto("/work/deputy")
    main = await page.inner_text("main")
    assert "我的反映件" in main and marker in main
    item = page.locator(".dep-item", has_text=marker)
    assert await item.locator(".dep-badge").inner_text() == "正常"
    assert "张*" in await item.inner_text() and "13900002222" not in main
    assert re.search(r"待受理（[1-9]\d*条）", re.sub(r"\s", "", await page.inner_text(".dep-tabs")))
    await no_serious_violations(page)
    await shot(page, "deputy-inbox")

    report_id = await open_from_inbox(page, marker)
    assert marker in await page.inner_text("#report-content")
    # The photo and the voice note come through this site with the deputy's token, never from intake itself.
    img = page.locator(".dep-photos img").first
    await img.wait_for()
    assert (await img.get_attribute("src")).startswith(f"/work/reports/{report_id}/attachments/")
    assert await img.evaluate("i => i.complete && i.naturalWidth > 0")
    audio_src = await page.locator("audio").first.get_attribute("src")
    fetched = await page.request.get(audio_src)
    assert fetched.status == 200 and fetched.headers["content-type"].startswith("audio/")
    assert "no-store" in fetched.headers["cache-control"]
    # This county has no grid platform: the deputy handles the report.
    assert "未转交基层治理平台" in await page.inner_text("#ticket")

    await page.click("#acknowledge")
    await page.wait_for_url(re.compile(r"done=acknowledged"))
    assert "已受理" in await page.inner_text("#notice")
    assert not await page.locator("#acknowledge").count()

    # A template fills the answer box in place; the deputy changes the part in brackets.
    await page.click("a[data-template] >> text=已经解决")
    text = await page.input_value("#content")
    assert text.startswith("您好，您反映的问题已经联系")
    answer = text.replace("（部门）", "区园林局").replace("（处理情况）", "健身器材已在本周更换")
    await page.fill("#content", answer)
    await page.click("#reply-submit")
    await page.wait_for_url(re.compile(r"done=replied"))
    assert "健身器材已在本周更换" in await page.inner_text("#answer-text")
    await no_serious_violations(page)
    await shot(page, "deputy-report")

    receipt_page = await citizen(browser, site)
    await receipt_page.goto(f"/r/{receipt}")
    assert "健身器材已在本周更换" in await receipt_page.inner_text(".answer")

    # The contact: only with a reason, shown once, on an answer no cache keeps.
    await page.click("#unmask")
    assert "请写明为什么需要联系方式" in await page.inner_text("#reason-error")
    await page.fill("#reason", "电话核实器材位置")
    async with page.expect_navigation() as shown:
        await page.click("#unmask")
    response = await shown.value
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    assert "13900002222" in await page.inner_text("#contact") and "张三" in await page.inner_text("#contact")
    await page.goto(f"/work/reports/{report_id}")
    assert "13900002222" not in await page.inner_text("main")
    assert page.js_errors == [], page.js_errors


async def test_take_up_and_answer_without_javascript(site: Site, browser: Any, tmp_path: Path) -> None:
    marker = "楼道堆放杂物（无脚本代表页）"
    receipt = await file_report(browser, site, marker, tmp_path, phone="13900003333")
    page = await deputy(browser, site, js=False)
    await open_from_inbox(page, marker)
    await page.click("#acknowledge")
    await page.wait_for_url(re.compile(r"done=acknowledged"))

    # An empty answer comes back with the problem next to the box.
    await page.click("#reply-submit")
    assert "请填写答复内容" in await page.inner_text("#content-error")
    assert "请修改以下" in await page.inner_text("#error-summary")
    await no_serious_violations(page)

    # Without JavaScript a template is a link to the same page with the box filled.
    await page.click("a[data-template] >> text=正在办理")
    await page.wait_for_url(re.compile(r"template=handling"))
    assert (await page.input_value("#content")).startswith("您好，您反映的问题我已收到")
    await page.click("#reply-submit")
    await page.wait_for_url(re.compile(r"done=replied"))
    assert "正在联系有关部门" in await page.inner_text("#answer-text")
    receipt_page = await citizen(browser, site, js=False)
    await receipt_page.goto(f"/r/{receipt}")
    assert "正在联系有关部门" in await receipt_page.inner_text(".answer")


async def test_another_deputys_report_is_refused_and_other_roles_are_kept_out(site: Site, browser: Any) -> None:
    filed = await site.services["intake"].client.post("/v1/reports", json={
        "channel": "h5", "code": site.code_of(OTHER), "anonymous": True, "content": "三墩镇菜场门口积水（他人的反映）"})
    assert filed.status_code == 201, filed.text
    page = await deputy(browser, site)
    response = await page.goto(f"/work/reports/{filed.json()['id']}")
    assert response.status in (403, 404)
    assert response.headers["content-type"].startswith("text/html")
    assert "没有" in await page.inner_text("h1")
    assert "三墩镇菜场" not in await page.inner_text("main")
    await no_serious_violations(page)
    attachment = await page.request.get(f"/work/reports/{filed.json()['id']}/attachments/{filed.json()['id']}")
    assert attachment.status in (403, 404)
    assert (await page.goto("/work/reports/not-an-id")).status == 404

    unit = await browser.new_context(viewport=PHONE, locale="zh-CN", base_url=site.url)
    await unit.add_cookies([site.session_cookie(["unit"], unit_id=UNITS[0])])
    unit_page = await unit.new_page()
    assert (await unit_page.goto("/work/deputy")).status == 403
    assert "人大代表" in await unit_page.inner_text("main")
    await unit.close()


async def test_the_inbox_filters_pages_and_exports(site: Site, browser: Any) -> None:
    page = await deputy(browser, site)
    await page.goto("/work/deputy?status=answered")
    current = await page.locator(".dep-tabs a[aria-current=page]").inner_text()
    assert re.sub(r"\s", "", current) == "已答复（2条）", current
    answered = await page.inner_text(".dep-inbox")
    assert "健身器材损坏" in answered and "楼道堆放杂物" in answered
    await page.goto("/work/deputy?status=submitted&overdue=1")
    assert "正在只看超期" in await page.inner_text("main")

    csv_answer = await page.request.get("/work/deputy/reports.csv?status=answered")
    assert csv_answer.status == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    body = await csv_answer.body()
    assert body.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert table[0][:3] == ["编号", "状态", "期限情况"]
    assert any("健身器材损坏" in row[-1] and row[1] == "已答复" for row in table[1:])
    xlsx = await page.request.get("/work/deputy/reports.xlsx?status=answered")
    sheet = load_workbook(io.BytesIO(await xlsx.body())).active
    assert sheet["A1"].value == "编号" and sheet.max_row == len(table)
    assert "attachment" in xlsx.headers["content-disposition"]


# ---- suggestions and the year ---------------------------------------------------------------------


async def test_co_signers_are_found_by_name_without_javascript(site: Site, browser: Any) -> None:
    """The search asks identity's list of the county's deputies: any part of a name, the deputy left out,
    the draft and earlier choices kept across searches."""
    page = await deputy(browser, site, js=False)
    await page.goto("/work/deputy/suggestions/new")
    # Before any search: the county's deputies, by name, never the deputy themself.
    offered = await page.locator(".dep-cosigners label").all_inner_texts()
    assert "王丽娟" in offered and "李秀英" in offered and DEPUTY_NAME not in offered
    # The province's deputy is listed to the province, not to a county deputy.
    assert "周国华" not in offered
    await page.fill("#title", "关于三墩镇增设公交站点的建议")
    await page.fill("#q", "秀英")
    await page.click("#search")
    assert await page.locator(".dep-cosigners label").all_inner_texts() == ["李秀英"]
    await page.check("label:has-text('李秀英')")
    await page.fill("#q", "陈")
    await page.click("#search")
    # Only the deputy bears that name: nobody to offer, and the choice made before is kept.
    assert "没有找到姓名包含“陈”的代表" in await page.inner_text("#co")
    assert await page.locator("#co input[name=co]:checked").count() == 1
    assert "李秀英" in await page.inner_text("#co")
    assert await page.input_value("#title") == "关于三墩镇增设公交站点的建议"
    await no_serious_violations(page)


async def test_a_suggestion_with_a_co_signer_is_replied_to_and_evaluated_and_the_year_shows_points(
        site: Site, browser: Any) -> None:
    page = await deputy(browser, site)
    await page.goto("/work/deputy/suggestions/new")
    title = "关于西溪街道增设公共充电设施的建议"
    await page.fill("#title", title)
    await page.fill("#content", "西溪街道老旧小区电动自行车充电难，飞线充电隐患大，建议增设集中充电设施。")
    await page.fill("#q", "王丽")
    await page.click("#search")
    await page.check("label:has-text('王丽娟')")
    # The draft and the choice survive the search and a second one.
    assert await page.input_value("#title") == title
    await page.fill("#q", "不存在的人")
    await page.click("#search")
    assert "没有找到" in await page.inner_text("#co")
    assert await page.locator("#co input[name=co]:checked").count() == 1
    await no_serious_violations(page)
    await shot(page, "deputy-suggestion-new")
    await page.click("#submit")
    await page.wait_for_url(re.compile(r"/work/deputy/suggestions/[A-Za-z0-9_-]+\?done=submitted"))
    suggestion_id = page.url.split("/")[-1].split("?")[0]
    assert "王丽娟" in await page.inner_text("#co-signers")
    assert "建议已提交" in await page.inner_text("#notice")

    # The list reads the service's projection, which follows the workflow within moments.
    for _ in range(40):
        await page.goto("/work/deputy/suggestions")
        if title in await page.inner_text("main"):
            break
        await page.wait_for_timeout(250)
    else:
        raise AssertionError("the suggestion did not appear in the list")
    assert "领衔" in await page.locator(".dep-item", has_text=title).inner_text()
    await no_serious_violations(page)
    await shot(page, "deputy-suggestions")

    suggestions = site.services["suggestions"].client
    act = f"/v1/suggestions/{suggestion_id}"
    assigned = await suggestions.post(f"{act}/assignment", headers=bearer("npc_staff", COUNTY),
                                      json={"lead_unit_id": UNITS[1]})
    assert assigned.status_code == 200, assigned.text
    replied = await suggestions.post(f"{act}/replies", headers=bearer("unit", COUNTY, unit_id=UNITS[1]), json={
        "unit_id": UNITS[1], "content": "已在两个小区增设充电车棚，共 120 个充电位。", "outcome": "A"})
    assert replied.status_code == 200, replied.text

    await page.goto(f"/work/deputy/suggestions/{suggestion_id}")
    assert "120 个充电位" in await page.inner_text("#s-reply")
    await page.click("label[for=result-dissatisfied]")
    await page.click("#evaluate")
    assert "请写明哪里不满意" in await page.inner_text("#comment-error")
    await page.click("label[for=result-satisfied]")
    await page.fill("#comment", "办理及时，群众满意。")
    await page.click("#evaluate")
    await page.wait_for_url(re.compile(r"done=evaluated"))
    assert "代表评价：满意" in await page.inner_text("#s-timeline")
    assert not await page.locator("#evaluation-form").count()
    await no_serious_violations(page)
    await shot(page, "deputy-suggestion")

    # Points follow the events: the suggestion led (4) and the reports taken up and answered on time.
    for _ in range(60):
        await page.goto(f"/work/deputy/year?year={datetime.now().year}")
        text = await page.inner_text("#entries-title") if await page.locator("#entries").count() else ""
        entries = await page.inner_text("#entries") if text else ""
        if "领衔提出代表建议" in entries and "按时答复群众意见" in entries:
            break
        await page.wait_for_timeout(500)
    else:
        raise AssertionError("the year page did not show the points")
    assert float(await page.inner_text("#total strong")) >= 4
    assert "规则 suggestion_led" in entries and "提出代表建议" in entries
    assert "解忧" in await page.inner_text("main") and "星" in await page.inner_text("#stars")
    await no_serious_violations(page)
    await shot(page, "deputy-year")
