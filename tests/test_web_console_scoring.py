"""The console's scoring and election pages in a real Chromium against the real stack.

Points are recorded through scoring's own API (staff-recorded activities, one of them last year, so
one deputy is at the bottom two years running). Congress staff, with JavaScript off, see the year's
ranking as a preview, publish it after the confirmation page, and citizens then find it on the
public board; the talk list flags the deputy at the bottom again; each name opens the deputy's
year. A small voter roll and its registries are loaded through identity's API; staff start its
reconciliation with JavaScript off (the page reloads itself until done) and again with it on (the
script polls), page the findings by kind, and export the committee's list, which opens in openpyxl
with Chinese headers. Identity records each page of names shown. Rules are changed through the
form: the difference is shown, and only the second press saves a version. axe checks every page;
screenshots land in docs/screenshots/.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from busutil import eventually
from conftest import Servers
from identityutil import id_number
from missionutil import bearer
from openpyxl import load_workbook
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, Site, chromium, site_stack

from services.web.words import SHANGHAI

pytestmark = pytest.mark.slow

COUNTY = "330175"  # used by no other test module
YEAR = datetime.now(SHANGHAI).year
# Points are kept per deputy and year, and every module's stack loads the demo county's deputies
# under the same ids: in a year no other test scores, these totals are this module's own.
SCORING_YEAR = YEAR - 3
TOWN = f"{COUNTY}109"  # 三墩镇: none of the demo county's people live there
ELECTION = f"cs-{COUNTY}-small"
STAFF = bearer("npc_staff", COUNTY)
# The county's deputies (the national and provincial ones sit above it) and this year's points.
POINTS = {"demo-dep-county": ("王丽娟", ("survey", "report_back")), "demo-dep-county-b": ("陈志强", ("inspection",)),
          "demo-dep-township": ("李秀英", ("training",)), "demo-dep-municipal": ("郑建平", ())}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-console-scoring"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def staff_page(browser: Any, site: Site, *, js: bool) -> Any:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url, accept_downloads=True)
    await context.add_cookies([site.session_cookie(["npc_staff"], name="周敏")])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.site = site
    page.js = js
    return page


async def table(page: Any, rows: str) -> list[list[str]]:
    """The cells of each row, as read."""
    return [[c.strip() for c in await row.locator("th, td").all_inner_texts()]
            for row in await page.locator(rows).all()]


async def activity(site: Site, deputy_id: str, kind: str, on: date) -> None:
    response = await site.services["scoring"].client.post("/v1/activities", headers=STAFF, json={
        "deputy_id": deputy_id, "kind": kind, "on": on.isoformat(), "evidence": {"sheet": f"签到表-{kind}"}})
    assert response.status_code == 201, response.text


async def seed_points(site: Site) -> None:
    """This year's points, and last year's that leave all but 王丽娟 at the bottom then."""
    scoring = site.services["scoring"].client

    async def known() -> bool:
        answers = [await scoring.get(f"/v1/deputies/{d}/score", params={"year": SCORING_YEAR}, headers=STAFF)
                   for d in POINTS]
        return all(a.status_code == 200 for a in answers)

    await eventually(known, timeout=30, what="scoring knows the county's deputies")
    for deputy_id, (_, kinds) in POINTS.items():
        for kind in kinds:
            await activity(site, deputy_id, kind, date(SCORING_YEAR, 6, 1))
    await activity(site, "demo-dep-county", "survey", date(SCORING_YEAR - 1, 12, 1))


async def test_staff_publish_the_ranking_and_citizens_see_it(site: Site, browser: Any) -> None:
    await seed_points(site)
    staff = await staff_page(browser, site, js=False)
    await staff.goto(f"/console/scoring?region_code={COUNTY}&year={SCORING_YEAR}")
    assert "预览，尚未发布" in await staff.inner_text("#ranking-state")
    ranked = [["1", "王丽娟", "8"], ["2", "陈志强", "3"], ["3", "李秀英", "2"], ["4", "郑建平", "0"]]
    assert [r[:3] for r in await table(staff, "#ranking tbody tr")] == ranked
    talks = await staff.inner_text("#talks")
    assert "郑建平" in talks and "连续两年末位" in talks and "王丽娟" not in talks
    await no_serious_violations(staff)
    await shot(staff, "console-scoring")

    # The button leads to a confirmation; only its form publishes.
    await staff.click("#publish-link")
    assert "将发布 4 名代表" in await staff.inner_text("main")
    await no_serious_violations(staff)
    await shot(staff, "console-scoring-publish")
    await staff.click("#publish-confirm")
    await staff.wait_for_url(re.compile(r"done=published"))
    assert "排名已发布并冻结" in await staff.inner_text(".cs-done")
    assert "已发布" in await staff.inner_text("#ranking-state")
    assert await staff.locator("#publish-link").count() == 0

    # Frozen: points recorded after publishing change the preview no more, and a second publish is refused.
    await activity(site, "demo-dep-municipal", "report_back", date(SCORING_YEAR, 6, 2))
    await staff.goto(f"/console/scoring/publish?region_code={COUNTY}&year={SCORING_YEAR}")
    assert "不能再次发布" in await staff.inner_text("#publish-state")

    # Citizens find it on the public board (not opened before: the board keeps an answer a minute).
    public = await browser.new_page(base_url=site.url, locale="zh-CN")
    public.set_default_timeout(20_000)
    await public.goto(f"/public/deputies?region_code={COUNTY}&year={SCORING_YEAR}")
    assert [r[:3] for r in await table(public, ".pub-table tbody tr")] == ranked
    assert "公布，公布后不再变动" in await public.inner_text(".pub-asof")

    # The console shows the published rows too; each name opens the deputy's year with every entry.
    await staff.goto(f"/console/scoring?region_code={COUNTY}&year={SCORING_YEAR}")
    assert (await table(staff, "#ranking tbody tr"))[3][:3] == ["4", "郑建平", "0"]
    await staff.click("#ranking >> text=王丽娟")
    assert await staff.inner_text("#total") == "8"
    assert "积分明细（2 条）" in await staff.inner_text("#entries-title")
    await no_serious_violations(staff)
    await shot(staff, "console-scoring-deputy")

    # The ranking's export opens as a spreadsheet with Chinese headers.
    await staff.goto(f"/console/scoring?region_code={COUNTY}&year={SCORING_YEAR}")
    async with staff.expect_download() as info:
        await staff.click("text=Excel 表格（.xlsx） >> nth=0")
    download = await info.value
    assert download.suggested_filename == f"履职积分排名-{SCORING_YEAR}-演示区-{datetime.now(SHANGHAI):%Y%m%d}.xlsx"
    sheet = load_workbook(io.BytesIO((await download.path()).read_bytes())).active
    assert list(sheet.iter_rows(values_only=True))[:2] == [("名次", "代表编号", "姓名", "总积分", "星级"),
                                                           (1, "demo-dep-county", "王丽娟", "8", 0)]


def person(key: str, seq: int, village: str, **over: Any) -> dict[str, Any]:
    return {"record_id": f"cs-{COUNTY}-{key}", "id_number": id_number(COUNTY, date(1980, 3, 1), seq),
            "name": key, "hukou_region_code": village, "residence_region_code": village, "status": "active",
            "political_rights": True, "updated_at": "2026-10-01T08:00:00+08:00", **over}


async def seed_election(site: Site) -> None:
    """Four people of the township and an election of two districts: one right, one in the wrong
    district, one missing from the roll, one who has died."""
    identity = site.services["identity"].client
    one, two = f"{TOWN}001", f"{TOWN}002"
    people = [person("甲正常", 31, one), person("乙错区", 32, two), person("丙漏登", 33, one),
              person("丁已故", 34, one, status="deceased")]
    loaded = await identity.post("/v1/registry/population/records", json=people, headers=bearer("integration"))
    assert loaded.status_code == 200 and loaded.json()["rejected"] == [], loaded.text
    made = await identity.put(f"/v1/elections/{ELECTION}", headers=STAFF, json={
        "region_code": TOWN, "election_date": f"{YEAR}-12-20",
        "districts": [{"id": "sandun-1", "region_codes": [one]}, {"id": "sandun-2", "region_codes": [two]}]})
    assert made.status_code in (200, 201), made.text
    roll = await identity.post(f"/v1/elections/{ELECTION}/voters", headers=STAFF, json=[
        {"id_number": p["id_number"], "name": p["name"], "district_id": "sandun-1"}
        for p in people if p["name"] != "丙漏登"])
    assert roll.status_code == 200 and roll.json()["accepted"] == 3, roll.text


async def test_staff_reconcile_a_roll_and_export_the_committee_s_list(site: Site, browser: Any) -> None:
    await seed_election(site)
    staff = await staff_page(browser, site, js=False)
    await staff.goto("/console/elections")
    row = staff.locator(f"[id='e-{ELECTION}']")
    assert "尚未核对" in await row.inner_text()
    await no_serious_violations(staff)
    await shot(staff, "console-elections")

    # Started without JavaScript: the page reloads itself until the findings are there.
    await row.locator("button").click()
    await staff.wait_for_url(re.compile(r"done=started"))
    await staff.wait_for_selector("#findings", timeout=60_000)
    assert await staff.get_attribute("#progress", "value") == "100"
    assert "每打开一页名单" in await staff.inner_text("#audit-note")
    tabs = {t.split()[0]: t.split()[-1] for t in await staff.locator(".cs-tabs a").all_inner_texts()}
    assert tabs == {"全部": "3", "已死亡": "1", "被剥夺政治权利": "0", "未满十八周岁": "0", "重复登记": "0",
                    "错登选区": "1", "漏登": "1"}
    await no_serious_violations(staff)
    await shot(staff, "console-elections-findings")

    # One kind at a time, the filter in the URL.
    await staff.click("#tab-wrong_district")
    await staff.wait_for_url(re.compile(r"kind=wrong_district"))
    found = await staff.inner_text("#findings tbody")
    assert "乙错区" in found and "sandun-2" in found and "丙漏登" not in found
    assert re.search(r"3301\*{10}\d{3}[\dX]", found)

    # The committee's list.
    await staff.click("#tab-all")
    async with staff.expect_download() as info:
        await staff.click("#export-xlsx")
    download = await info.value
    assert download.suggested_filename.startswith(f"选民登记核对结果-{ELECTION}")
    sheet = load_workbook(io.BytesIO((await download.path()).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("序号", "问题类别", "姓名", "身份证号（已脱敏）", "登记选区", "应登记选区", "处理建议")
    assert (rows[1][1], rows[1][2], rows[1][4], rows[1][6]) == ("已死亡", "丁已故", "sandun-1",
                                                                "核实后从选民名单中除名")
    assert {r[2]: r[1] for r in rows[1:]} == {"丁已故": "已死亡", "乙错区": "错登选区", "丙漏登": "漏登"}

    # Again with JavaScript: the script follows the job and shows the findings when it is done.
    scripted = await staff_page(browser, site, js=True)
    await scripted.goto(f"/console/elections/{ELECTION}")
    await scripted.click("#start")
    await scripted.wait_for_url(re.compile(r"done=started"))
    await scripted.wait_for_selector("#findings", timeout=60_000)
    # Whether the job ended before the page came or while the script watched, the page ends the same.
    assert await scripted.inner_text(".cs-done") == "核对已完成，结果见下方。"
    assert await scripted.locator("noscript").count() == 0
    progress = await scripted.request.get(f"/console/elections/{ELECTION}/progress")
    assert await progress.json() == {"status": "done", "percent": 100, "label": "核对完成", "step": ""}
    await no_serious_violations(scripted)

    # Identity recorded each page of names shown (the export's too), and nothing for the progress
    # polls, which show no names.
    audit = await site.services["identity"].client.get("/v1/audit", headers=STAFF, params={
        "action": "reconciliation.items_shown", "subject_id": ELECTION})
    shown = [(e["detail"]["kind"], e["detail"]["page"]) for e in audit.json()["items"]]
    assert ("wrong_district", 1) in shown and (None, 1) in shown
    assert all(page == 1 for _, page in shown)


async def test_a_rules_version_is_saved_only_after_its_difference_was_shown(site: Site, browser: Any) -> None:
    staff = await staff_page(browser, site, js=True)
    await staff.goto(f"/console/scoring/rules?region_code={COUNTY}")
    assert "系统默认规则" in await staff.inner_text("#in-force")
    code = await staff.input_value("#rule-0-code")
    second = await staff.input_value("#rule-1-points")
    await staff.fill("#rule-0-points", "5")
    await staff.fill("#grading-talk_share", "10")
    # A mistake comes back next to its field, with everything typed kept and nothing to save yet.
    await staff.fill("#rule-1-points", "一分")
    await staff.click("#rules-preview")
    assert (await staff.inner_text("#rule-1-points-error")).endswith("分值应为 -100 到 100 之间的数字。")
    assert await staff.input_value("#rule-0-points") == "5" and await staff.input_value("#rule-1-points") == "一分"
    assert await staff.locator("#rules-save").count() == 0
    await no_serious_violations(staff)
    await staff.fill("#rule-1-points", second)
    await staff.click("#rules-preview")
    diff = await staff.inner_text("#diff-table")
    assert f"规则 {code}" in diff and "5 分" in diff and "10%" in diff
    scoring = site.services["scoring"].client
    tomorrow = (datetime.now(SHANGHAI).date() + timedelta(days=1)).isoformat()
    before = (await scoring.get(f"/v1/rules/{COUNTY}", params={"on": tomorrow})).json()
    assert before["version"] == 0
    await no_serious_violations(staff)
    await shot(staff, "console-scoring-rules")

    await staff.click("#rules-save")
    await staff.wait_for_url(re.compile(r"done=saved"))
    assert "已保存为第 1 版" in await staff.inner_text("#rules-saved")
    after = (await scoring.get(f"/v1/rules/{COUNTY}", params={"on": tomorrow})).json()
    assert (after["region_code"], after["version"], after["effective_from"]) == (COUNTY, 1, tomorrow)
    assert after["rules"][0]["points"] == 5 and after["grading"]["talk_share"] == 0.1
    # Still the version in force today: the new one starts tomorrow.
    assert "系统默认规则" in await staff.inner_text("#in-force")
