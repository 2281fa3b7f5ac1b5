"""The handling unit's pages in a real Chromium against the real stack, with JavaScript off (every
action is a plain form): a deputy's suggestion assigned by congress staff to unit A with unit B
assisting → A's list shows it with its colour → A records the three meetings → B gives its view →
A replies with an outcome and the public flag → the deputy can now evaluate it. A refused reply
comes back with the service's words next to the field; another unit's suggestion is a 403 page;
the lead unit asks for the one extension and sees the new due date once staff grant it; the reply
offers the region's own outcome classes; the fund's balance shows before spending; the exports
parse. axe checks every page; screenshots land in docs/screenshots/."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import Servers
from missionutil import bearer
from openpyxl import load_workbook
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, PHONE, Site, chromium, site_stack

from minyi.demo_county import UNITS
from services.web.words import date_cn

pytestmark = pytest.mark.slow

COUNTY = "330163"
DEPUTY = "demo-dep-county"
UNIT_A, UNIT_B = UNITS  # 演示区交通运输局 (lead), 演示区住房和城乡建设局 (assisting)
YEAR = 2026


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-unit"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def unit_page(browser: Any, site: Site, unit_id: str, *, viewport: dict[str, int] = DESKTOP) -> Any:
    """A unit's desk: signed in as that unit, JavaScript off (every action must work as a plain form)."""
    context = await browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=False, base_url=site.url, accept_downloads=True)
    await context.add_cookies([site.session_cookie(["unit"], unit_id=unit_id, name=f"{unit_id} 办理员")])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.site = site
    page.js = False
    return page


async def suggestion(site: Site, title: str, *, micro: bool = False, assisting: tuple[str, ...] = (UNIT_B,),
                     lead: str = UNIT_A) -> str:
    """A deputy's suggestion, assigned by congress staff through the API."""
    client = site.services["suggestions"].client
    deputy = bearer("deputy", site.county_code, deputy_id=DEPUTY)
    staff = bearer("npc_staff", site.county_code)
    created = await client.post("/v1/suggestions", headers=deputy, json={
        "title": title, "content": f"{title}：群众反映强烈，建议有关部门尽快研究解决，并向代表反馈办理情况。",
        "lead_deputy_id": DEPUTY, "year": YEAR, "kind": "interim", "micro": micro})
    assert created.status_code == 201, created.text
    suggestion_id = created.json()["id"]
    assigned = await client.post(f"/v1/suggestions/{suggestion_id}/assignment", headers=staff,
                                 json={"lead_unit_id": lead, "assisting_unit_ids": list(assisting)})
    assert assigned.status_code == 200, assigned.text
    return str(suggestion_id)


async def state_of(site: Site, suggestion_id: str, *, as_deputy: bool = True) -> dict[str, Any]:
    headers = (bearer("deputy", site.county_code, deputy_id=DEPUTY) if as_deputy
               else bearer("npc_staff", site.county_code))
    response = await site.services["suggestions"].client.get(f"/v1/suggestions/{suggestion_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_unit_handles_a_suggestion_from_list_to_reply(site: Site, browser: Any) -> None:
    title = f"公交站台加装遮阳棚（承办测试 {uuid.uuid4().hex[:6]}）"
    suggestion_id = await suggestion(site, title)
    lead = await unit_page(browser, site, UNIT_A)

    # The list: the suggestion with its colour in words, our part in it, its due date; filters in the URL.
    await lead.goto("/work/unit?status=assigned")
    row = lead.locator(f"#s-{suggestion_id}")
    assert title in await row.inner_text()
    assert await row.locator(".unit-color-green").inner_text() == "正常"
    assert "主办" in await row.inner_text() and "演示区住房和城乡建设局" in await row.inner_text()
    assert await lead.locator("#status").input_value() == "assigned"
    await no_serious_violations(lead)
    await shot(lead, "unit-list")
    await lead.goto("/work/unit?status=closed")
    assert await lead.locator(f"#s-{suggestion_id}").count() == 0

    # The three meetings, each a plain form answered 303 back to the page with the record shown.
    await lead.goto(f"/work/unit/suggestions/{suggestion_id}")
    assert await lead.locator("h1").inner_text() == title
    for stage, note in (("before", "办理前与王丽娟代表见面，说明办理打算。"),
                        ("during", "办理中陪同代表察看三个站台。"),
                        ("after", "办理后向代表通报遮阳棚安装结果。")):
        await lead.check(f"#meeting input[name=stage][value={stage}]")
        await lead.fill("#meeting-at", "2026-01-05T10:30" if stage == "before" else "")
        if stage != "before":
            await lead.fill("#meeting-at", await lead.get_attribute("#meeting-at", "max") or "")
        await lead.fill("#meeting-note", note)
        await lead.click("#meeting button[type=submit]")
        await lead.wait_for_url(re.compile(r"done=meeting"))
        assert "已登记" in await lead.inner_text(".unit-done")
        assert note in await lead.inner_text(".unit-meetings")
    state = await state_of(site, suggestion_id)
    assert sorted(state["meetings"]) == ["after", "before", "during"], state["meetings"]
    assert "2026年1月5日 10:30" in await lead.inner_text(".unit-meetings")

    # B without a planned year is stopped by the page; a year too far off is refused by the service, whose
    # words come back next to the field, what was typed kept, and nothing recorded.
    await lead.check("#reply-outcome input[value=B]")
    await lead.fill("#reply-content", "已列入明年公交设施改造计划。")
    await lead.click("#reply button[type=submit]")
    assert "须写明计划在哪一年解决" in await lead.inner_text("#reply-planned_year-error")
    await lead.fill("#reply-planned_year", "2040")
    await lead.click("#reply button[type=submit]")
    assert "计划解决年度应在" in await lead.inner_text("#reply-planned_year-error")
    assert await lead.locator("#reply-planned_year").input_value() == "2040"
    assert await lead.locator("#reply-content").input_value() == "已列入明年公交设施改造计划。"
    assert (await state_of(site, suggestion_id))["status"] == "assigned"
    await no_serious_violations(lead)
    await shot(lead, "unit-reply-error")

    # Unit B, assisting, sees what it must answer and gives its view; it gets no reply form.
    assisting_page = await unit_page(browser, site, UNIT_B, viewport=PHONE)
    await assisting_page.goto("/work/unit")
    assert "协办" in await assisting_page.locator(f"#s-{suggestion_id}").inner_text()
    await assisting_page.goto(f"/work/unit/suggestions/{suggestion_id}")
    assert await assisting_page.locator("#reply").count() == 0
    assert await assisting_page.locator("#meeting form").count() == 0
    await assisting_page.fill("#view-content", "站台用地属城市道路，我局同意配合办理。")
    await assisting_page.click("#view button[type=submit]")
    await assisting_page.wait_for_url(re.compile(r"done=view"))
    assert "站台用地属城市道路" in await assisting_page.inner_text(".unit-views")
    await no_serious_violations(assisting_page)
    await shot(assisting_page, "unit-assisting-view")
    await assisting_page.context.close()

    # Unit A sees the view and replies: class A, not public.
    await lead.goto(f"/work/unit/suggestions/{suggestion_id}")
    assert "站台用地属城市道路" in await lead.inner_text("#view")
    await lead.check("#reply-outcome input[value=A]")
    await lead.fill("#reply-content", "三个站台的遮阳棚已于本月安装完毕。")
    await lead.check("#reply-public input[value=no]")
    await lead.click("#reply button[type=submit]")
    await lead.wait_for_url(re.compile(r"done=reply"))
    text = await lead.inner_text("main")
    assert "三个站台的遮阳棚已于本月安装完毕" in text and "不公开" in text
    assert await lead.locator("#reply form").count() == 0
    await no_serious_violations(lead)
    await shot(lead, "unit-suggestion-replied")

    # The reply reached the deputy: the suggestion now waits for the deputy's evaluation.
    state = await state_of(site, suggestion_id)
    assert state["status"] == "replied" and state["outcome"] == "A", state
    assert state["reply"]["public"] is False
    evaluated = await site.services["suggestions"].client.post(
        f"/v1/suggestions/{suggestion_id}/evaluation", headers=bearer("deputy", site.county_code, deputy_id=DEPUTY),
        json={"result": "satisfied"})
    assert evaluated.status_code == 200, evaluated.text
    await lead.goto(f"/work/unit/suggestions/{suggestion_id}")
    assert "已办结" in await lead.inner_text(".unit-facts")
    await lead.context.close()


async def test_a_unit_cannot_open_another_units_suggestion(site: Site, browser: Any) -> None:
    other = await suggestion(site, f"住宅小区加装电梯（他单位 {uuid.uuid4().hex[:6]}）", lead=UNIT_B, assisting=())
    page = await unit_page(browser, site, UNIT_A)
    response = await page.goto(f"/work/unit/suggestions/{other}")
    assert response.status == 403
    assert "没有权限" in await page.inner_text("h1")
    assert "加装电梯" not in await page.content()
    await no_serious_violations(page)
    # Nor can it act on one: the POST is refused by the service, and nothing is recorded.
    await page.goto("/work/unit")
    assert await page.locator(f"#s-{other}").count() == 0
    await page.context.close()


async def test_the_lead_unit_asks_for_the_extension_and_sees_it_granted(site: Site, browser: Any) -> None:
    client = site.services["suggestions"].client
    staff = bearer("npc_staff", site.county_code)
    # The county's own classes (A/B/C and D): new suggestions are replied to in them.
    scheme = await client.put(f"/v1/outcome-schemes/{site.county_code}", headers=staff, json={"classes": [
        {"code": "A", "label": "已解决或当年解决", "solved": True},
        {"code": "B", "label": "列入计划，三年内解决", "needs_planned_year": True},
        {"code": "C", "label": "留作参考", "reference": True},
        {"code": "D", "label": "因条件限制暂缓办理", "reference": True}]})
    assert scheme.status_code == 200, scheme.text
    suggestion_id = await suggestion(site, f"老旧小区雨污分流改造（延期 {uuid.uuid4().hex[:6]}）")
    due_before = (await state_of(site, suggestion_id))["due_at"]
    page = await unit_page(browser, site, UNIT_A, viewport=PHONE)
    await page.goto(f"/work/unit/suggestions/{suggestion_id}")
    assert "因条件限制暂缓办理" in await page.inner_text("#reply-outcome")
    assert "D 类" in await page.inner_text("#reply-outcome")

    # The lead unit asks; the page answers 303 with the request pending and the reason, and no form.
    await page.select_option("#extension-months", "2")
    await page.fill("#extension-reason", "改造涉及三个部门的管线迁移，需要统一规划后答复。")
    await page.click("#extension button[type=submit]")
    await page.wait_for_url(re.compile(r"done=extension"))
    section = await page.inner_text("#extension")
    assert "已申请延期，等待人大常委会审批" in section and "管线迁移" in section and "2 个月" in section
    assert await page.locator("#extension form").count() == 0
    assert "申请延期" in await page.inner_text(".unit-timeline")
    state = await state_of(site, suggestion_id, as_deputy=False)
    assert state["extension_request"]["months"] == 2 and state["extended"] is False
    await no_serious_violations(page)
    await shot(page, "unit-extension-requested")

    # Staff grant it through their extension: the page shows the new due date, and the request is settled.
    granted = await client.post(f"/v1/suggestions/{suggestion_id}/extension", headers=staff,
                                json={"reason": "同意延期两个月。", "months": 2})
    assert granted.status_code == 200, granted.text
    due_after = granted.json()["due_at"]
    assert due_after > due_before and granted.json()["extension_request"] is None
    await page.goto(f"/work/unit/suggestions/{suggestion_id}")
    section = await page.inner_text("#extension")
    assert "已经延期过一次" in section and date_cn(due_after) in section, section
    assert "等待人大常委会审批" not in section
    assert date_cn(due_after) in await page.inner_text(".unit-facts")
    await page.context.close()


async def test_a_second_extension_request_is_refused_next_to_the_form(site: Site, browser: Any) -> None:
    """The page was opened before a colleague asked: the service's 409 comes back in words, nothing asked twice."""
    suggestion_id = await suggestion(site, f"学校门口增设信号灯（重复申请 {uuid.uuid4().hex[:6]}）")
    page = await unit_page(browser, site, UNIT_A)
    await page.goto(f"/work/unit/suggestions/{suggestion_id}")
    asked = await site.services["suggestions"].client.post(
        f"/v1/suggestions/{suggestion_id}/extension-request", json={"reason": "同事已经申请。"},
        headers=bearer("unit", site.county_code, unit_id=UNIT_A))
    assert asked.status_code == 200, asked.text
    await page.fill("#extension-reason", "需要与交警部门协调。")
    await page.click("#extension button[type=submit]")
    # The refusal is summarised at the top, and the section now shows the colleague's request, not a form.
    assert "等待人大常委会审批" in await page.inner_text("#error-summary")
    assert "同事已经申请" in await page.inner_text("#extension")
    assert await page.locator("#extension form").count() == 0
    state = await state_of(site, suggestion_id, as_deputy=False)
    assert state["extension_request"]["reason"] == "同事已经申请。"
    assert [e["kind"] for e in state["timeline"]].count("extension_requested") == 1
    await no_serious_violations(page)
    await page.context.close()


async def test_micro_spending_shows_the_balance_and_refuses_an_overdraft(site: Site, browser: Any) -> None:
    staff = bearer("npc_staff", site.county_code)
    fund = await site.services["suggestions"].client.put(f"/v1/micro-funds/{site.county_code}/{YEAR}",
                                                         headers=staff, json={"amount": "5000"})
    assert fund.status_code == 200, fund.text
    suggestion_id = await suggestion(site, f"路口盲道修补（急难小 {uuid.uuid4().hex[:6]}）", micro=True)
    page = await unit_page(browser, site, UNIT_A, viewport=PHONE)
    await page.goto(f"/work/unit/suggestions/{suggestion_id}")
    # The balance shows before spending, above the form.
    shown = await page.inner_text("#fund")
    assert f"{fund.json()['balance']} 元" in shown and "5000.00 元" in shown, shown
    assert await page.locator("#fund ~ form").count() == 1
    await page.fill("#spending-amount", "1,200.50")
    await page.fill("#spending-note", "修补盲道材料费")
    await page.click("#spending button[type=submit]")
    await page.wait_for_url(re.compile(r"done=spending"))
    notice = await page.inner_text(".unit-done")
    assert "1200.50" in notice and "余额" in notice, notice
    left = f"{float(fund.json()['balance']) - 1200.50:.2f}"
    assert f"余额 {left} 元" in notice and f"{left} 元" in await page.inner_text("#fund"), notice
    await shot(page, "unit-micro-spending")
    # More than is left: the service's words next to the amount, nothing spent.
    await page.fill("#spending-amount", "999999")
    await page.fill("#spending-note", "超出余额的一笔")
    await page.click("#spending button[type=submit]")
    assert "余额不足" in await page.inner_text("#spending-form-error")
    after = (await site.services["suggestions"].client.get(f"/v1/micro-funds/{site.county_code}/{YEAR}",
                                                           headers=staff)).json()
    assert [i["amount"] for i in after["items"] if i["suggestion_id"] == suggestion_id] == ["1200.50"]
    await no_serious_violations(page)
    await page.context.close()


async def test_exports_parse_with_chinese_headers(site: Site, browser: Any) -> None:
    title = f"非机动车道隔离护栏（导出 {uuid.uuid4().hex[:6]}）"
    suggestion_id = await suggestion(site, title)
    page = await unit_page(browser, site, UNIT_A)
    await page.goto("/work/unit?year=2026")
    async with page.expect_download() as xlsx_download:
        await page.click("text=Excel 表格（.xlsx）")
    download = await xlsx_download.value
    assert download.suggested_filename.endswith(".xlsx"), download.suggested_filename
    xlsx = await asyncio.to_thread(Path(await download.path()).read_bytes)
    sheet = load_workbook(io.BytesIO(xlsx)).active
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    assert rows[0][:3] == ["建议编号", "标题", "年度"]
    mine = next(r for r in rows if r[0] == suggestion_id)
    assert mine[1] == title and mine[4] == "主办" and mine[8] == "正常"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", mine[10] or ""), mine

    async with page.expect_download() as csv_download:
        await page.click("text=CSV 文件")
    data = await asyncio.to_thread(Path(await (await csv_download.value).path()).read_bytes)
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][:3] == ["建议编号", "标题", "年度"]
    assert any(r[0] == suggestion_id and r[1] == title for r in table[1:])
    await page.context.close()
