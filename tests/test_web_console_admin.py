"""The administrator's console in a real Chromium against the real stack: issue the QR codes of a
township's stations, print them on A4 sheets and read every code back from a screenshot of the sheet
as a phone would, each leading to its station's report page; issue again and revoke, and the old
address becomes the friendly "cannot read this code" page; the same without JavaScript; the region
tree, stations, deputies with their stations, the exports, the handling units' form and the grid
platforms' health; keeping the directory without JavaScript (a region, a station, a deputy at it with
a phone that is never shown whole nor silently dropped, a grid platform whose secret is never shown, one
on Open311 with its API key, service codes and updates feed); a year's holidays loaded as typed and as a
file, and a region's own limits; who may not do any of it."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
import zxingcpp
from conftest import Servers
from missionutil import bearer
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import update
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, Site, chromium, fetch, site_stack

from services.routing.models import GridPlatform
from shared.settings import Settings

pytestmark = pytest.mark.slow

COUNTY = "330178"
TOWN = f"{COUNTY}001"  # 北山街道
VILLAGE = f"{TOWN}001"  # 宝石社区
ADMIN = bearer("admin", "")
# Stations the township gains before its codes are printed: none has a code yet.
NEW_STATIONS = {f"adm-{COUNTY}-east": ("北山街道东河联络点", "station", TOWN),
                f"adm-{COUNTY}-studio": ("宝石社区代表工作室", "studio", VILLAGE)}
TOWN_STATIONS = {"demo-station": "北山街道人大代表联络站", "demo-cloud": "宝石社区云端联络点",
                 **{sid: name for sid, (name, _, _) in NEW_STATIONS.items()}}
SPARE = (f"adm-{COUNTY}-spare", "北山街道备用联络点")
UNIT = f"adm-unit-{COUNTY}"
# What the directory forms add: a subdistrict of the county's own, its station, a deputy at it, its platform.
EAST = f"{COUNTY}003"
EAST_STATION = f"adm-{COUNTY}-donghu"
EAST_DEPUTY = f"adm-{COUNTY}-dep-lin"
EAST_PLATFORM = f"adm-gp-{COUNTY}-donghu"
PHONE = "13900000017"
SECRET = "donghu-grid-secret-0001"
OPEN311_PLATFORM = f"adm-gp-{VILLAGE}-311"
API_KEY = "baoshi-georeport-key-0001"
NOT_FOUND = "这个二维码无法识别"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-console-admin"), COUNTY) as running:
        for sid, (name, kind, region) in NEW_STATIONS.items():
            await put_station(running, sid, name, kind, region)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def put_station(site: Site, sid: str, name: str, kind: str, region: str) -> None:
    response = await site.services["identity"].client.put(f"/v1/stations/{sid}", headers=ADMIN,
                                                          json={"name": name, "kind": kind, "region_code": region})
    assert response.status_code in (200, 201), response.text


async def admin(browser: Any, site: Site, *, js: bool = True, region: str = COUNTY,
                roles: tuple[str, ...] = ("admin",)) -> Any:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url)
    await context.add_cookies([site.session_cookie(list(roles), region=region, name="赵文")])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.js = js
    page.site = site
    return page


async def live_codes(site: Site, region: str) -> dict[str, str | None]:
    """Station id → its live code, as identity lists them to an administrator."""
    response = await site.services["identity"].client.get("/v1/stations", headers=ADMIN,
                                                          params={"region_code": region, "limit": 100})
    assert response.status_code == 200, response.text
    return {s["id"]: s["code"] for s in response.json()["items"]}


def report_url(code: str) -> str:
    return f"{Settings().public_base_url.rstrip('/')}/q/{code}"


async def test_issue_a_townships_codes_print_them_and_read_them_back(site: Site, browser: Any) -> None:
    page = await admin(browser, site)
    await page.goto(f"/console/codes?region={TOWN}")
    for sid in NEW_STATIONS:
        assert "未发码" in await page.inner_text(f"#c-station-{sid}")
    assert "有效" in await page.inner_text("#c-station-demo-station")
    await no_serious_violations(page)
    await shot(page, "console-admin-codes")

    # One click gives every station of the township without a code its code.
    await page.click("#issue-missing")
    await page.wait_for_url(re.compile(r"done=issued_many"))
    assert "已为 2 个联络站签发二维码" in await page.inner_text("#done-notice")
    codes = await live_codes(site, TOWN)
    assert set(codes) == set(TOWN_STATIONS) and all(codes.values()), codes
    assert "未发码" not in await page.inner_text("#codes")

    # Issuing again voids the printed code: asked first, then the old address no longer leads anywhere.
    old = codes["demo-station"]
    assert old is not None
    assert (await fetch(f"{site.url}/q/{old}")).status_code == 200
    await page.click("#c-station-demo-station .issue-button")
    await page.wait_for_url(re.compile(r"/console/codes/issue$"))
    assert "旧的二维码立即失效" in await page.inner_text("main")
    await no_serious_violations(page)
    await page.click("#confirm-button")
    await page.wait_for_url(re.compile(r"done=reissued"))
    assert "已重新签发" in await page.inner_text("#done-notice")
    codes = await live_codes(site, TOWN)
    assert codes["demo-station"] not in (None, old)
    gone = await fetch(f"{site.url}/q/{old}")
    assert gone.status_code == 404 and NOT_FOUND in gone.text

    # The township's sheet: every code drawn on the page, read back from a picture of it.
    await page.click("#print-sheet")
    await page.wait_for_url(re.compile(rf"/console/codes/sheet\?region_code={TOWN}$"))
    assert "共 4 个二维码，1 页 A4" in await page.inner_text("#sheet-summary")
    await no_serious_violations(page)
    await shot(page, "console-codes-sheet")
    picture = Image.open(io.BytesIO(await page.screenshot(full_page=True)))
    read = sorted(found.text for found in zxingcpp.read_barcodes(picture))
    assert read == sorted(report_url(code) for code in codes.values() if code), read
    by_code = {code: TOWN_STATIONS[sid] for sid, code in codes.items()}
    for text in read:
        path = urlsplit(text).path
        answer = await fetch(f"{site.url}{path}")
        assert answer.status_code == 200, path
        assert by_code[path.rsplit("/", 1)[1]] in answer.text

    # Printed, only the sheets remain; a county's codes run over pages that each start a new sheet.
    await page.goto(f"/console/codes/sheet?region_code={COUNTY}")
    # 7 stations and the county's 4 deputies (the province's and the city's are not the county's), six a page.
    assert await page.locator(".code-sheet-page").count() == 2
    assert await page.locator(".code-sheet-page .code-card").count() == 11
    await page.emulate_media(media="print")
    assert not await page.is_visible("header.site") and not await page.is_visible(".admin-sheet-head")
    assert await page.is_visible(".code-sheet-page .code-card")
    breaks = await page.eval_on_selector_all(".code-sheet-page", "els => els.map(e => getComputedStyle(e).breakAfter)")
    assert breaks == ["page", "auto"]
    # Chromium's own print engine lays the 11 codes on exactly two A4 sheets: none spills over.
    pdf = await page.pdf(prefer_css_page_size=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 2
    sizes = {(round(float(w)), round(float(h))) for w, h in re.findall(rb"/MediaBox\s*\[0 0 ([\d.]+) ([\d.]+)", pdf)}
    assert sizes == {(595, 842)}  # A4 in points
    await page.context.close()


async def test_issue_and_revoke_one_code_without_javascript(site: Site, browser: Any) -> None:
    sid, name = SPARE
    await put_station(site, sid, name, "cloud_point", TOWN)
    page = await admin(browser, site, js=False)
    await page.goto(f"/console/codes?region={TOWN}&q=备用")
    row = page.locator(f"#c-station-{sid}")
    assert "未发码" in await row.inner_text()
    await row.locator(".issue-button").click()
    await page.wait_for_url(re.compile(r"done=issued&"))
    assert "已签发二维码" in await page.inner_text("#done-notice")
    assert "有效" in await row.inner_text()
    code = (await live_codes(site, TOWN))[sid]
    assert code is not None
    # Scanned once: the web tier now remembers where the code leads.
    scanned = await fetch(f"{site.url}/q/{code}")
    assert scanned.status_code == 200 and name in scanned.text

    await row.locator(".revoke-button").click()
    await page.wait_for_url(re.compile(r"/console/codes/revoke$"))
    assert await page.inner_text("h1") == f"作废{name}的二维码？"
    await no_serious_violations(page)
    await shot(page, "console-admin-revoke")
    await page.click("#confirm-button")
    await page.wait_for_url(re.compile(r"done=revoked"))
    assert "二维码已作废" in await page.inner_text("#done-notice")
    assert "未发码" in await page.locator(f"#c-station-{sid}").inner_text()
    assert (await live_codes(site, TOWN))[sid] is None
    await no_serious_violations(page)

    answer = await page.goto(f"/q/{code}")
    assert answer.status == 404
    assert await page.inner_text("h1") == NOT_FOUND
    await page.context.close()


async def test_the_directory_tree_people_exports_and_grid_platforms(site: Site, browser: Any) -> None:
    page = await admin(browser, site, region="")
    await page.goto("/console/directory")
    assert await page.locator(f"#region-{COUNTY[:2]}0000 details").count() == 1  # the province, to open
    await page.goto(f"/console/directory?region={COUNTY}")
    town = page.locator(f"#region-{TOWN} details")
    assert "北山街道" in await town.locator("summary").inner_text()
    village_link = town.locator(f"a[href$='region={VILLAGE}']")
    assert not await village_link.is_visible()
    await town.locator("summary").click()
    assert await village_link.is_visible() and await village_link.inner_text() == "宝石社区"
    assert "北山街道人大代表联络站" in await page.inner_text("#stations")
    stations_of = await page.inner_text("#d-demo-dep-county .deputy-stations")
    assert set(stations_of.split("、")) == {"北山街道人大代表联络站", "宝石社区云端联络点"}
    await no_serious_violations(page)
    await shot(page, "console-admin-directory")

    # A province's administrator holds the scope `33`: the tree opens at the province, 330000.
    province = await admin(browser, site, region=COUNTY[:2])
    response = await province.goto("/console/directory")
    assert response.status == 200
    assert await province.locator(f"#region-{COUNTY[:4]}00 details").count() == 1  # the city, to open
    await province.context.close()

    await village_link.click()
    await page.wait_for_url(re.compile(rf"region={VILLAGE}$"))
    assert await page.inner_text("[aria-current=location]") == "宝石社区"
    assert "宝石社区代表工作室" in await page.inner_text("#stations")
    assert "北山街道人大代表联络站" not in await page.inner_text("#stations")

    cookie = site.session_cookie(["admin"], region="")
    async with httpx.AsyncClient(base_url=site.url, cookies={cookie["name"]: cookie["value"]}) as client:
        xlsx = await client.get("/console/directory/export.xlsx", params={"what": "deputies", "region": COUNTY})
        assert xlsx.status_code == 200, xlsx.text[:300]
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        assert rows[0] == ["编号", "姓名", "级别", "地区编码", "所在联络站", "二维码"]
        featured = next(row for row in rows if row[0] == "demo-dep-county")
        assert featured[1:4] == ["王丽娟", "县（区）人大代表", COUNTY] and featured[5] == "已发码"
        assert set(featured[4].split("、")) == {"北山街道人大代表联络站", "宝石社区云端联络点"}
        csv = await client.get("/console/directory/export.csv", params={"what": "stations", "region": TOWN})
        text = csv.content.decode("utf-8-sig")
        assert text.splitlines()[0] == "编号,名称,类型,地区编码,二维码" and "北山街道东河联络点" in text

    # Two platforms serve the county; one cannot be reached and waits to try again.
    routing = site.services["routing"]
    for pid, name, prefixes in ((f"adm-gp-{COUNTY}", "演示区基层治理四平台", [COUNTY]),
                                (f"adm-gp-{COUNTY}-b", "北山街道网格平台", [TOWN])):
        response = await routing.client.put(f"/v1/grid-platforms/{pid}", headers=ADMIN, json={
            "name": name, "region_prefixes": prefixes, "transport": "nats", "secret": "s" * 24})
        assert response.status_code in (200, 201), response.text
    async with routing.runtime.sessions()() as session, session.begin():
        await session.execute(update(GridPlatform).where(GridPlatform.id == f"adm-gp-{COUNTY}-b").values(
            failures=4, retry_at=datetime.now(UTC) + timedelta(hours=1), last_error="连接超时：平台没有响应"))
    await page.goto(f"/console/directory/platforms?region={COUNTY}")
    ids = await page.eval_on_selector_all("#platforms tbody tr", "rows => rows.map(r => r.id)")
    assert ids == [f"p-adm-gp-{COUNTY}-b", f"p-adm-gp-{COUNTY}"]
    troubled = await page.inner_text(f"#p-adm-gp-{COUNTY}-b")
    assert "连续失败 4 次" in troubled and "暂停发送" in troubled and "连接超时：平台没有响应" in troubled
    assert "正常" in await page.inner_text(f"#p-adm-gp-{COUNTY}")
    assert "1 个平台发送失败" in await page.inner_text("#platform-alert")
    await no_serious_violations(page)
    await shot(page, "console-admin-platforms")
    await page.context.close()


async def test_add_and_change_a_handling_unit_without_javascript(site: Site, browser: Any) -> None:
    page = await admin(browser, site, js=False)
    await page.goto(f"/console/directory/units?region={COUNTY}")
    assert "演示区交通运输局" in await page.inner_text("#units")
    await page.fill("#id", "demo-unit-housing")
    await page.fill("#name", "演示区城市管理局")
    await page.fill("#region_code", COUNTY)
    await page.select_option("#parent_id", "demo-unit-transport")
    await page.click("#save-unit")
    assert "已经是“演示区住房和城乡建设局”的编号" in await page.inner_text("#id-error")
    assert await page.input_value("#name") == "演示区城市管理局"
    assert await page.input_value("#parent_id") == "demo-unit-transport"
    await no_serious_violations(page)
    await page.fill("#id", UNIT)
    await page.click("#save-unit")
    await page.wait_for_url(re.compile(rf"saved={UNIT}"))
    assert "已保存“演示区城市管理局”" in await page.inner_text("#saved-notice")

    await page.click(f"#u-{UNIT} a")
    assert await page.input_value("#name") == "演示区城市管理局"
    assert await page.input_value("#parent_id") == "demo-unit-transport"
    await page.fill("#name", "演示区综合行政执法局")
    await page.click("#save-unit")
    await page.wait_for_url(re.compile(rf"saved={UNIT}"))
    assert "演示区综合行政执法局" in await page.inner_text(f"#u-{UNIT}")
    await no_serious_violations(page)
    await shot(page, "console-admin-units")
    # Changed through the page, the unit keeps the parent the form did not show as a change.
    unit = await site.services["suggestions"].client.get(f"/v1/units/{UNIT}", headers=ADMIN)
    assert unit.json() == {"id": UNIT, "name": "演示区综合行政执法局", "region_code": COUNTY,
                           "parent_id": "demo-unit-transport"}
    await page.context.close()


async def test_load_a_year_s_holidays_and_set_a_region_s_limits(site: Site, browser: Any) -> None:
    page = await admin(browser, site, js=False, region="")
    await page.goto("/console/calendar?year=2043")
    assert "2043 年的法定节假日尚未导入" in await page.inner_text("#year-missing")
    await page.fill("#year", "2043")
    await page.fill("#holidays", "2043-01-01\n2043-10-01~2043-10-07\n2043-02-30")
    await page.fill("#workdays", "2043-10-10")
    await page.click("#load-calendar")
    assert "“2043-02-30”不是有效的日期" in await page.inner_text("#holidays-error")
    assert "2043-10-01~2043-10-07" in await page.input_value("#holidays")
    await no_serious_violations(page)
    await page.fill("#holidays", "2043-01-01\n2043-10-01~2043-10-07\n2月10日至2月16日")
    await page.click("#load-calendar")
    await page.wait_for_url(re.compile(r"year=2043&loaded=1"))
    assert "已导入 2043 年的节假日安排" in await page.inner_text("#loaded-notice")
    assert "已导入" in await page.inner_text("#y-2043")
    assert "10月1日至10月7日" in await page.inner_text("#holiday-spans")
    assert await page.inner_text("#workday-spans") == "10月10日"
    loaded = await site.services["intake"].client.get("/v1/calendar/2043", headers=ADMIN)
    assert loaded.json()["source"] == "loaded" and "2043-10-07" in loaded.json()["holidays"]
    assert loaded.json()["workdays"] == ["2043-10-10"]
    await no_serious_violations(page)
    await shot(page, "console-admin-calendar")

    # A year built in is refused with intake's own words; a file of the service's format loads a year.
    await page.fill("#year", "2025")
    await page.fill("#holidays", "2025-10-01")
    await page.fill("#workdays", "")
    await page.click("#load-calendar")
    assert "2025 年的法定节假日已内置" in await page.inner_text("#error-summary")
    await page.fill("#year", "2044")
    await page.fill("#holidays", "")
    year_file = json.dumps({"holidays": ["2044-01-01", "2044-10-03"], "workdays": ["2044-10-01"]}).encode()
    await page.set_input_files("#file", files=[{"name": "2044.json", "mimeType": "application/json",
                                                "buffer": year_file}])
    await page.click("#load-calendar")
    await page.wait_for_url(re.compile(r"year=2044&loaded=1"))
    assert await page.inner_text("#holiday-spans") == "1月1日，10月3日"

    await page.fill("#region_prefix", TOWN)
    await page.fill("#ack_days", "3")
    await page.fill("#reply_days", "2")
    await page.click("#save-rule")
    assert "答复期限不能短于受理期限" in await page.inner_text("#reply_days-error")
    await page.fill("#reply_days", "10")
    await page.click("#save-rule")
    await page.wait_for_url(re.compile(rf"saved_rule={TOWN}"))
    assert "3 个工作日" in await page.inner_text(f"#rule-{TOWN}")
    rules = (await site.services["intake"].client.get("/v1/clock-rules", headers=ADMIN)).json()
    assert {"region_prefix": TOWN, "ack_days": 3, "reply_days": 10, "remind_hour": 9, "close_days": 15} in rules
    await page.context.close()


async def test_keep_the_directory_without_javascript(site: Site, browser: Any) -> None:
    identity = site.services["identity"].client
    page = await admin(browser, site, js=False)

    # A subdistrict under the county: a code of another county is refused next to the field, then added.
    await page.goto(f"/console/directory?region={COUNTY}")
    await page.click("#add-region")
    await page.wait_for_url(re.compile(rf"/console/directory/region\?region={COUNTY}$"))
    assert "北山街道" in await page.inner_text("#under")
    await page.fill("#code", "320923003")
    await page.fill("#name", "东湖街道")
    await page.click("#save-region")
    assert f"以 {COUNTY} 开头" in await page.inner_text("#code-error")
    assert await page.input_value("#name") == "东湖街道"
    await no_serious_violations(page)
    await page.fill("#code", EAST)
    await page.click("#save-region")
    await page.wait_for_url(re.compile(rf"saved_region={EAST}"))
    assert f"已添加地区“东湖街道”（{EAST}）" in await page.inner_text("#saved-notice")
    assert "东湖街道" in await page.inner_text(f"#region-{EAST}")  # at once: this replica's tree was told

    # Its station: identity's own words for a region it does not know, next to the field, the rest kept.
    await page.click(f"#region-{EAST} a")
    await page.click("#add-station")
    await page.wait_for_url(re.compile(rf"/console/directory/station\?region={EAST}$"))
    assert await page.input_value("#region_code") == EAST
    await page.fill("#id", EAST_STATION)
    await page.fill("#name", "东湖街道联络站")
    await page.select_option("#kind", "station")
    await page.fill("#region_code", f"{COUNTY}004")
    await page.click("#save-station")
    assert "地区不存在，请先登记该地区" in await page.inner_text("#region_code-error")
    assert (await page.input_value("#id"), await page.input_value("#name")) == (EAST_STATION, "东湖街道联络站")
    await no_serious_violations(page)
    await page.fill("#region_code", EAST)
    await page.click("#save-station")
    await page.wait_for_url(re.compile(rf"saved_station={EAST_STATION}"))
    assert "已保存联络站“东湖街道联络站”" in await page.inner_text("#saved-notice")
    assert "东湖街道联络站" in await page.inner_text(f"#s-{EAST_STATION}")

    # Renamed, and the directory shows the new name.
    await page.click(f"#s-{EAST_STATION} a[aria-label^='修改']")
    assert await page.get_attribute("#id", "readonly") is not None
    await page.fill("#name", "东湖街道人大代表联络站")
    await page.click("#save-station")
    await page.wait_for_url(re.compile(rf"saved_station={EAST_STATION}"))
    assert "东湖街道人大代表联络站" in await page.inner_text("#stations")
    station = (await identity.get(f"/v1/stations/{EAST_STATION}", headers=ADMIN)).json()
    assert (station["name"], station["region_code"], station["version"]) == ("东湖街道人大代表联络站", EAST, 2)

    # A deputy at it, with a phone: identity keeps it encrypted, the pages show it masked and never in an address.
    await page.click("#add-deputy")
    await page.wait_for_url(re.compile(rf"/console/directory/deputy\?region={EAST}$"))
    await page.fill("#id", EAST_DEPUTY)
    await page.fill("#name", "林小红")
    await page.select_option("#level", "county")
    await page.fill("#region_code", COUNTY)
    await page.check(f"#st-{EAST_STATION}")
    await page.fill("#phone", PHONE)
    await no_serious_violations(page)
    await page.click("#save-deputy")
    await page.wait_for_url(re.compile(rf"saved_deputy={EAST_DEPUTY}"))
    assert PHONE not in page.url and PHONE not in await page.content()
    assert "已保存代表“林小红”" in await page.inner_text("#saved-notice")
    assert await page.inner_text(f"#d-{EAST_DEPUTY} .deputy-stations") == "东湖街道人大代表联络站"
    deputy = (await identity.get(f"/v1/deputies/{EAST_DEPUTY}", headers=ADMIN)).json()
    assert (deputy["station_ids"], deputy["phone_masked"]) == ([EAST_STATION], "139****0017")

    # Changed without the phone typed again: refused, not erased (identity's PUT would drop it); typed, kept.
    await page.click(f"#d-{EAST_DEPUTY} a[aria-label^='修改']")
    assert await page.inner_text("#phone-on-file") == "139****0017" and await page.input_value("#phone") == ""
    assert await page.is_checked(f"#st-{EAST_STATION}") and not await page.is_checked("#st-demo-station")
    await page.check("#st-demo-station")
    await page.click("#save-deputy")
    assert "请重新填写现在的或新的手机号" in await page.inner_text("#phone-error")
    assert await page.is_checked("#st-demo-station") and await page.input_value("#name") == "林小红"
    await no_serious_violations(page)
    await shot(page, "console-admin-deputy")
    await page.fill("#phone", PHONE)
    await page.click("#save-deputy")
    await page.wait_for_url(re.compile(rf"saved_deputy={EAST_DEPUTY}"))
    deputy = (await identity.get(f"/v1/deputies/{EAST_DEPUTY}", headers=ADMIN)).json()
    assert (deputy["station_ids"], deputy["phone_masked"]) == (sorted([EAST_STATION, "demo-station"]), "139****0017")

    # Its grid platform: an internal address is refused with routing's words; the secret is never shown again.
    await page.goto(f"/console/directory/platforms?region={EAST}")
    assert await page.input_value("#region_prefixes") == EAST
    assert await page.locator("#categories input:checked").count() == await page.locator("#categories input").count()
    await page.fill("#id", EAST_PLATFORM)
    await page.fill("#name", "东湖街道网格平台")
    await page.check("#transport-http")
    await page.fill("#url", "http://10.0.0.7/minyi")
    await page.fill("#secret", SECRET)
    await page.click("#save-platform")
    assert "不是公网地址" in await page.inner_text("#url-error")
    assert await page.input_value("#name") == "东湖街道网格平台" and await page.input_value("#secret") == ""
    assert SECRET not in await page.content()
    await no_serious_violations(page)
    # The tests' routing runs with development secrets, where the loopback grid simulator may be reached.
    await page.fill("#url", "http://127.0.0.1:9/minyi")
    await page.fill("#secret", SECRET)
    await page.click("#save-platform")
    await page.wait_for_url(re.compile(rf"saved={EAST_PLATFORM}"))
    row = await page.inner_text(f"#p-{EAST_PLATFORM}")
    assert "东湖街道网格平台" in row and "HTTP 接口" in row and "http://127.0.0.1:9/minyi" in row and "正常" in row
    assert "已保存“东湖街道网格平台”" in await page.inner_text("#saved-notice")
    assert SECRET not in await page.content()
    registered = (await site.services["routing"].client.get(f"/v1/grid-platforms/{EAST_PLATFORM}",
                                                             headers=ADMIN)).json()
    assert (registered["region_prefixes"], registered["transport"]) == ([EAST], "http") and registered["categories"]
    await no_serious_violations(page)
    await page.context.close()


async def test_an_open311_platform_without_javascript(site: Site, browser: Any) -> None:
    routing = site.services["routing"].client
    page = await admin(browser, site, js=False)
    await page.goto(f"/console/directory/platforms?region={VILLAGE}")
    assert "Open311 平台无需回调密钥" in await page.inner_text("#secret-hint")
    await page.fill("#id", OPEN311_PLATFORM)
    await page.fill("#name", "宝石社区12345")
    await page.check("#transport-open311")
    await page.fill("#url", "http://10.0.0.7/open311/v2")
    await page.fill("#api_key", API_KEY)
    await page.fill("#jurisdiction_id", "baoshi.example.cn")
    await page.fill("#service_codes", "roads_traffic=DL-02\n停车管理=TC-01")
    await page.uncheck("#service_request_updates")
    await page.click("#save-platform")
    # A line naming no grid category is said on the mapping's field, before routing is asked.
    assert "第 2 行的“停车管理”不是网格平台受理的事项类别" in await page.inner_text("#service_codes-error")
    await page.fill("#service_codes", "roads_traffic=DL-02\n市政设施=SZ-01")
    await page.fill("#api_key", API_KEY)
    await page.click("#save-platform")
    # Routing refuses the intranet address: its words beside the address, everything else as typed but the key.
    assert "不是公网地址" in await page.inner_text("#url-error")
    assert "service_codes-error" not in await page.content()
    assert await page.is_checked("#transport-open311") and not await page.is_checked("#service_request_updates")
    assert (await page.input_value("#name"), await page.input_value("#jurisdiction_id")) == (
        "宝石社区12345", "baoshi.example.cn")
    assert await page.input_value("#service_codes") == "roads_traffic=DL-02\n市政设施=SZ-01"
    assert await page.input_value("#api_key") == "" and API_KEY not in await page.content()
    assert "为了安全，刚才填写的 API 密钥没有保留" in await page.inner_text("#api_key-hint")
    await no_serious_violations(page)
    await shot(page, "console-admin-platform-open311")
    await page.fill("#url", "http://127.0.0.1:9/open311/v2")
    await page.fill("#api_key", API_KEY)
    await page.click("#save-platform")
    await page.wait_for_url(re.compile(rf"saved={OPEN311_PLATFORM}"))
    row = await page.inner_text(f"#p-{OPEN311_PLATFORM}")
    assert "宝石社区12345" in row and "Open311（GeoReport v2）" in row and "http://127.0.0.1:9/open311/v2" in row
    assert "jurisdiction_id：baoshi.example.cn" in row and API_KEY not in await page.content()
    registered = (await routing.get(f"/v1/grid-platforms/{OPEN311_PLATFORM}", headers=ADMIN)).json()
    assert (registered["transport"], registered["region_prefixes"], registered["jurisdiction_id"]) == (
        "open311", [VILLAGE], "baoshi.example.cn")
    assert registered["service_codes"] == {"roads_traffic": "DL-02", "municipal_facilities": "SZ-01"}
    assert registered["service_request_updates"] is False and "api_key" not in registered

    # Changed: the form shows what routing holds but the key, which every save needs again.
    await page.click(f"#p-{OPEN311_PLATFORM} a[aria-label^='修改']")
    assert await page.is_checked("#transport-open311") and await page.input_value("#api_key") == ""
    assert await page.input_value("#service_codes") == "municipal_facilities=SZ-01\nroads_traffic=DL-02"
    assert not await page.is_checked("#service_request_updates")
    await page.fill("#name", "宝石社区12345热线")
    await page.check("#service_request_updates")
    await page.click("#save-platform")
    assert "请填写平台分配的 API 密钥" in await page.inner_text("#api_key-error")
    assert await page.input_value("#name") == "宝石社区12345热线" and await page.is_checked("#service_request_updates")
    await page.fill("#api_key", API_KEY)
    await page.click("#save-platform")
    await page.wait_for_url(re.compile(rf"saved={OPEN311_PLATFORM}"))
    registered = (await routing.get(f"/v1/grid-platforms/{OPEN311_PLATFORM}", headers=ADMIN)).json()
    assert (registered["name"], registered["version"], registered["service_request_updates"]) == (
        "宝石社区12345热线", 2, None)
    await page.context.close()


async def test_only_administrators_and_only_in_their_region(site: Site, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        answer = await client.get("/console/codes")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=/console/codes")
    staff = await admin(browser, site, roles=("npc_staff",))
    answer = await staff.goto("/console/calendar")
    assert answer.status == 403 and "没有权限打开这个页面" in await staff.inner_text("main")
    answer = await staff.goto("/console/directory/deputy")
    assert answer.status == 403 and "没有权限打开这个页面" in await staff.inner_text("main")
    await staff.context.close()

    # An administrator of another county is shown their own, and refused by identity with a page.
    before = (await live_codes(site, TOWN))["demo-cloud"]
    cookie = site.session_cookie(["admin"], region="320923")
    async with httpx.AsyncClient(base_url=site.url, cookies={cookie["name"]: cookie["value"]}) as client:
        page = await client.get("/console/codes", params={"region": TOWN})
        assert page.status_code == 200 and "宝石社区云端联络点" not in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        form = {"kind": "station", "id": "demo-cloud", "confirm": "yes", "old": before or ""}
        refused = await client.post("/console/codes/revoke", data={**form, "csrf": token})
        assert refused.status_code == 403 and "不在您的管辖范围" in refused.text
    # A form without its token (sent from another site) only asks again, with identity's name for the target.
    own = site.session_cookie(["admin"], region=COUNTY)
    async with httpx.AsyncClient(base_url=site.url, cookies={own["name"]: own["value"]}) as client:
        unsafe = await client.post("/console/codes/revoke", data={**form, "name": "别的联络站"})
        assert unsafe.status_code == 400 and "为了安全" in unsafe.text
        assert "作废宝石社区云端联络点的二维码？" in unsafe.text and "别的联络站" not in unsafe.text
    assert (await live_codes(site, TOWN))["demo-cloud"] == before

    # A subdistrict's administrator may not take over the county's station by typing its id: identity's 403 page.
    town = site.session_cookie(["admin"], region=TOWN)
    async with httpx.AsyncClient(base_url=site.url, cookies={town["name"]: town["value"]}) as client:
        form_page = await client.get("/console/directory/station")
        token = re.search(r'name="csrf" value="([^"]+)"', form_page.text).group(1)  # type: ignore[union-attr]
        taken = await client.post("/console/directory/station", data={
            "csrf": token, "editing": "0", "id": "demo-center", "name": "别人的联络站", "kind": "station",
            "region_code": TOWN})
        assert taken.status_code == 403 and "该地区不在您的管辖范围内" in taken.text
    center = (await site.services["identity"].client.get("/v1/stations/demo-center", headers=ADMIN)).json()
    assert center["name"] == "演示区人大代表联络服务中心"
