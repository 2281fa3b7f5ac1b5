"""Congress staff's console in a real Chromium against the real stack.

Deputies' suggestions are assigned from the list many at once with JavaScript off (a form sent
without a supervising leader for a key suggestion comes back with the ticks kept; one assigned
meanwhile from elsewhere is refused next to its row in the service's words); the unit answers
through the API and the reply shows on the console's page. Five similar reports in one township
become a hotspot and a supervision topic; staff read the reports side by side, convert it into a
suggestion and assign it as a key one; the list shows it as key and the audit log the conversion.
The overview's figures lead to the lists they count; the export parses. axe checks every page;
screenshots land in docs/screenshots/console-*.png."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from busutil import eventually
from conftest import Servers
from missionutil import bearer
from openpyxl import load_workbook
from test_mission import SIMILAR
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, Site, chromium, site_stack

from minyi.demo_county import UNITS
from services.web.words import SHANGHAI

pytestmark = pytest.mark.slow

COUNTY = "330194"  # used by no other test module: its hotspots and figures are this module's alone
DEPUTY = "demo-dep-county"  # 王丽娟
UNIT_A, UNIT_B = UNITS  # 演示区交通运输局, 演示区住房和城乡建设局
YEAR = datetime.now(SHANGHAI).year


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-console-staff"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def staff(browser: Any, site: Site, *, js: bool = True) -> Any:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url, accept_downloads=True)
    await context.add_cookies([site.session_cookie(["npc_staff"], region=site.county_code, name="周敏")])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.site = site
    page.js = js
    return page


async def submitted(site: Site, title: str) -> str:
    """A deputy's suggestion, waiting to be assigned."""
    response = await site.services["suggestions"].client.post(
        "/v1/suggestions", headers=bearer("deputy", site.county_code, deputy_id=DEPUTY), json={
            "title": title, "content": f"{title}：群众反映强烈，建议有关部门尽快研究解决，并向代表反馈办理情况。",
            "lead_deputy_id": DEPUTY, "year": YEAR, "kind": "interim"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def state_of(site: Site, suggestion_id: str) -> dict[str, Any]:
    response = await site.services["suggestions"].client.get(f"/v1/suggestions/{suggestion_id}",
                                                             headers=bearer("npc_staff", site.county_code))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def shown_after_reloads(page: Any, url: str, selector: str, *, timeout: float = 20) -> None:
    """Open `url` until `selector` is on it: lists read the services' projections, which follow a step by moments."""

    async def there() -> bool:
        await page.goto(url)
        return bool(await page.locator(selector).count())

    await eventually(there, timeout=timeout, what=f"{selector} on {url}", interval=0.5)


async def test_assign_many_without_javascript_and_see_the_units_reply(site: Site, browser: Any) -> None:
    marker = uuid.uuid4().hex[:6]
    first, second, third = [await submitted(site, f"{what}（交办测试 {marker}）")
                            for what in ("公交站台加装遮阳棚", "学校门口增设信号灯", "老旧小区雨污分流")]
    page = await staff(browser, site, js=False)
    await shown_after_reloads(page, "/console/suggestions?status=submitted", f"#s-{third}")
    assert "待交办" in await page.inner_text(f"#s-{first}")
    assert await page.locator("#f-status").input_value() == "submitted"
    await no_serious_violations(page)
    await shot(page, "console-suggestions")

    # Key without a supervising leader: the page says so next to the field, the ticks and choices kept.
    for suggestion_id in (first, second, third):
        await page.check(f"#pick-{suggestion_id}")
    await page.select_option("#bulk-lead_unit_id", UNIT_A)
    await page.check(f"#bulk-assisting_unit_ids input[value={UNIT_B}]")
    await page.check("#bulk-key")
    await page.click("#bulk button[type=submit]")
    assert "重点督办的建议须填写督办领导" in await page.inner_text("#bulk-supervisor-error")
    assert await page.is_checked(f"#pick-{second}") and await page.is_checked("#bulk-key")
    assert await page.locator("#bulk-lead_unit_id").input_value() == UNIT_A
    assert (await state_of(site, first))["status"] == "submitted"
    await no_serious_violations(page)
    await shot(page, "console-assign-error")

    # Meanwhile someone assigns the third elsewhere: the service refuses it alone, in its own words.
    elsewhere = await site.services["suggestions"].client.post(
        f"/v1/suggestions/{third}/assignment", headers=bearer("npc_staff", site.county_code),
        json={"lead_unit_id": UNIT_B})
    assert elsewhere.status_code == 200, elsewhere.text
    await page.fill("#bulk-supervisor", "王副主任")
    await page.click("#bulk button[type=submit]")
    assert "已交办 2 件，1 件没有交办" in await page.inner_text("#notice")
    assert "只有新提交的建议可以交办" in await page.inner_text(f"#refused-{third}")
    for suggestion_id in (first, second):
        state = await state_of(site, suggestion_id)
        assert (state["status"], state["lead_unit_id"], state["assisting_unit_ids"], state["key"],
                state["supervisor"]) == ("assigned", UNIT_A, [UNIT_B], True, "王副主任"), state
    assert (await state_of(site, third))["lead_unit_id"] == UNIT_B

    # The unit answers through the API: a key suggestion's three meetings, then the reply.
    unit = bearer("unit", site.county_code, unit_id=UNIT_A)
    client = site.services["suggestions"].client
    now = datetime.now(SHANGHAI).isoformat()
    for stage in ("before", "during", "after"):
        met = await client.post(f"/v1/suggestions/{first}/meetings", headers=unit,
                                json={"stage": stage, "at": now, "note": "与代表见面"})
        assert met.status_code == 200, met.text
    replied = await client.post(f"/v1/suggestions/{first}/replies", headers=unit, json={
        "unit_id": UNIT_A, "content": "三个站台的遮阳棚已于本月安装完毕。", "outcome": "A", "public": True})
    assert replied.status_code == 200, replied.text

    await page.goto(f"/console/suggestions/{first}")
    assert "三个站台的遮阳棚已于本月安装完毕" in await page.inner_text("#reply-text")
    assert await page.inner_text("#fact-status") == "已答复，待代表评价（A 类：已解决或当年解决）"
    assert "重点督办，督办领导：王副主任" in await page.inner_text("#fact-key")
    assert await page.inner_text("#fact-lead") == "演示区交通运输局"
    assert "答复" in await page.inner_text("#timeline")
    assert await page.locator("#assign").count() == 0
    await no_serious_violations(page)
    await shot(page, "console-suggestion-replied")

    # The export holds the filter's suggestions with Chinese headers.
    await page.goto("/console/suggestions?key=yes")
    async with page.expect_download() as xlsx_download:
        await page.click("#export-xlsx")
    data = await asyncio.to_thread(Path(await (await xlsx_download.value).path()).read_bytes)
    rows = [[c.value for c in r] for r in load_workbook(io.BytesIO(data)).active.iter_rows()]
    assert rows[0][:3] == ["建议编号", "标题", "年度"]
    exported = {r[0]: r for r in rows[1:]}
    assert {first, second} <= set(exported) and third not in exported
    assert exported[first][5] == "王丽娟" and exported[first][8] == "演示区交通运输局"
    await page.context.close()


async def test_a_referred_suggestion_gets_the_directors_decision(site: Site, browser: Any) -> None:
    """Twice dissatisfied, a suggestion goes to the director's meeting (主任会议); staff record its decision."""
    suggestion_id = await submitted(site, f"农贸市场排水改造（主任会议 {uuid.uuid4().hex[:6]}）")
    client = site.services["suggestions"].client
    unit = bearer("unit", site.county_code, unit_id=UNIT_A)
    deputy = bearer("deputy", site.county_code, deputy_id=DEPUTY)
    steps = [(bearer("npc_staff", site.county_code), "assignment", {"lead_unit_id": UNIT_A})]
    for answer in ("已列入明年计划。", "已再次研究，仍列入明年计划。"):
        steps += [(unit, "replies", {"unit_id": UNIT_A, "content": answer, "outcome": "A"}),
                  (deputy, "evaluation", {"result": "dissatisfied", "comment": "群众等不及。"})]
    for headers, action, body in steps:
        done = await client.post(f"/v1/suggestions/{suggestion_id}/{action}", headers=headers, json=body)
        assert done.status_code == 200, f"{action}: {done.text}"
    assert (await state_of(site, suggestion_id))["status"] == "referred"

    page = await staff(browser, site, js=False)
    await page.goto(f"/console/suggestions/{suggestion_id}")
    assert await page.inner_text("#fact-status") == "已提交主任会议（A 类：已解决或当年解决）"
    await page.fill("#decision-note", "主任会议决定：由交通运输局牵头，一个月内重新答复。")
    await page.click("#decision button[type=submit]")
    assert "请选择主任会议的决定" in await page.inner_text("#decision-decision-error")
    assert await page.input_value("#decision-note") == "主任会议决定：由交通运输局牵头，一个月内重新答复。"
    await no_serious_violations(page)
    await page.check("#decision input[value=reassign]")
    await page.click("#decision button[type=submit]")
    assert "主任会议的决定已登记" in await page.inner_text("#notice")
    assert await page.inner_text("#fact-status") == "二次交办，重新办理"
    assert "由交通运输局牵头" in await page.inner_text("#timeline")
    assert (await state_of(site, suggestion_id))["status"] == "reassigned"
    await shot(page, "console-director-decision")
    await page.context.close()


async def test_a_hotspot_becomes_a_key_suggestion_and_the_audit_log_shows_it(site: Site, browser: Any) -> None:
    town = f"{site.county_code}002"  # 西溪街道
    clerk = bearer("station_staff", site.county_code)
    ids = []
    for content in SIMILAR:
        # As the station's clerk registering them: a citizen's flood limit is not what this test is about.
        created = await site.services["intake"].client.post("/v1/reports", headers=clerk, json={
            "channel": "h5", "region_code": town, "anonymous": True, "content": content})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    staff_token = bearer("npc_staff", site.county_code)
    spot: dict[str, Any] = {}

    async def hotspot_and_topic() -> bool:
        found = (await site.services["routing"].client.get("/v1/hotspots", headers=staff_token)).json()
        spot.update(next((h for h in found if set(ids) <= set(h["report_ids"])), {}))
        if not spot:
            return False
        topics = (await site.services["suggestions"].client.get("/v1/supervision-topics", headers=staff_token)).json()
        return any(t["id"] == spot["id"] for t in topics)

    await eventually(hotspot_and_topic, timeout=40, what="five similar reports as a hotspot and a supervision topic",
                     interval=0.5)
    hotspot_id = spot["id"]
    page = await staff(browser, site)
    await page.goto("/console/hotspots")
    assert "5 件" in await page.inner_text(f"#h-{hotspot_id}")
    assert await page.locator(f"#t-{hotspot_id}").count() == 1
    await no_serious_violations(page)
    await shot(page, "console-hotspots")

    await page.click(f"#h-{hotspot_id} a")
    assert page.url.endswith(f"/console/hotspots/{hotspot_id}")
    cards = page.locator(".cs-member")
    assert await cards.count() == 5
    shown = " ".join(await cards.all_inner_texts())
    assert all(text[:20] in shown for text in SIMILAR), shown
    assert "匿名" in shown and await page.inner_text("#fact-topic") == "待处理"
    await no_serious_violations(page)
    await shot(page, "console-hotspot")

    # A conversion without a lead deputy comes back with the typed title kept.
    await page.fill("#conversion-title", "关于整治西溪街道菜市场周边占道经营的建议")
    await page.click("#conversion button[type=submit]")
    assert "请选择领衔代表" in await page.inner_text("#conversion-lead_deputy_id-error")
    assert await page.input_value("#conversion-title") == "关于整治西溪街道菜市场周边占道经营的建议"
    await page.select_option("#conversion-lead_deputy_id", DEPUTY)
    await page.click("#conversion button[type=submit]")
    await page.wait_for_url(re.compile(r"/console/suggestions/[\w-]+\?done=converted"))
    suggestion_id = page.url.split("/console/suggestions/")[1].split("?")[0]
    assert "已由监督议题转为建议" in await page.inner_text("#notice")
    assert await page.inner_text("#fact-key") == "拟重点督办（待交办）"
    assert await page.is_checked("#assign-key")  # the topic asked for a key suggestion
    await shot(page, "console-converted")

    # The list of key suggestions holds it; assigned as key with its leader, it stays there as 重点督办.
    await shown_after_reloads(page, f"/console/suggestions?year={YEAR}&key=yes", f"#s-{suggestion_id}")
    assert "拟重点督办（待交办）" in await page.inner_text(f"#s-{suggestion_id}")
    await page.goto(f"/console/suggestions/{suggestion_id}")
    await page.select_option("#assign-lead_unit_id", UNIT_A)
    await page.fill("#assign-supervisor", "李副主任")
    await page.click("#assign button[type=submit]")
    await page.wait_for_url(re.compile(r"done=assign"))
    assert "重点督办，督办领导：李副主任" in await page.inner_text("#fact-key")
    await page.goto(f"/console/suggestions?year={YEAR}&key=yes")
    row = await page.inner_text(f"#s-{suggestion_id}")
    assert "重点督办" in row and "拟重点督办" not in row and "演示区交通运输局" in row
    await page.goto(f"/console/hotspots/{hotspot_id}")
    assert "已转为重点督办建议" in await page.inner_text("#fact-topic")
    assert await page.locator("#conversion").count() == 0

    # The audit log: the conversion in suggestions' log, filtered, and among all services' entries.
    await page.goto("/console/audit?service=suggestions&action=topic.converted")
    audit = await page.inner_text("#audit")
    assert hotspot_id in audit and "监督议题转为建议" in audit and "m-npc_staff" in audit
    assert suggestion_id in audit  # the detail names the suggestion it became
    await no_serious_violations(page)
    await shot(page, "console-audit")
    await page.goto(f"/console/audit?subject_id={hotspot_id}")
    assert "监督议题转为建议" in await page.inner_text("#audit")
    await page.goto("/console/audit?since=2026-02-30")
    assert "请按 2026-03-05 的格式填写日期" in await page.inner_text("#error-summary")
    await page.context.close()


async def test_the_overview_leads_to_the_lists_it_counts(site: Site, browser: Any) -> None:
    page = await staff(browser, site)
    await page.goto("/console/overview")
    assert await page.inner_text("h1") == f"{YEAR}年概览"
    counts = (await site.services["suggestions"].client.get(
        "/v1/suggestion-counts", params={"year": YEAR}, headers=bearer("npc_staff", site.county_code))).json()
    assert counts["total"] >= 4
    figure = page.locator("#fig-suggestions strong")
    assert await figure.inner_text() == str(counts["total"])
    assert "演示区交通运输局" in await page.inner_text("#by-unit")
    # The seeded deputy's year: the demo's one sample report, not due yet, so no rate to show so far.
    assert " ".join((await page.inner_text(f"#t-deputy-{DEPUTY}")).split()) == "王丽娟 1 — 0/0 — 0/0 — 0/0 0"
    await no_serious_violations(page)
    await shot(page, "console-overview")

    await page.click("#fig-suggestions")
    assert page.url.endswith(f"/console/suggestions?year={YEAR}")
    assert await page.locator("#suggestions tbody tr").count() == min(counts["total"], 20)
    await page.goto("/console/overview")
    await page.click("#fig-received")
    assert page.url.endswith(f"/console/reports?year={YEAR}")
    # The five reports of the hotspot (and the demo's sample), excerpts shown, reporters masked.
    assert int(await page.inner_text("#reports-total")) >= 6
    assert SIMILAR[0][:20] in await page.inner_text("main")
    assert "13900000000" not in await page.content()
    await no_serious_violations(page)
    await shot(page, "console-reports")
    await page.context.close()


async def test_other_roles_are_refused_the_staff_pages(site: Site, browser: Any) -> None:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", base_url=site.url)
    await context.add_cookies([site.session_cookie(["unit"], unit_id=UNIT_A, name="交通运输局")])
    page = await context.new_page()
    for path in ("/console/overview", "/console/suggestions", "/console/hotspots", "/console/audit"):
        response = await page.goto(path)
        assert response.status == 403, path
        assert "没有权限打开这个页面" in await page.inner_text("main")
    await context.close()
