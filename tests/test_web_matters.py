"""Already reported? (重复反映) and me too (附议) in a real Chromium against the real stack.

Six citizens report one blocked sewer at one crossroads of a township, each in their own words,
through the web form; routing makes them one common matter (共性事项). A seventh, with JavaScript
off, asks "先看看有没有人反映过", finds the matter, opens its page and supports it anonymously; with
JavaScript on, the list appears while typing. The first reporter's receipt then tells of the
matter, and the deputy sees the supporters. axe-core checks each new page; screenshots land in
docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from conftest import Servers
from test_web_browser import citizen, no_serious_violations, receipt_of, shot
from webutil import PHONE, Site, chromium, site_stack

pytestmark = pytest.mark.slow

COUNTY = "330172"
TOWNSHIP = f"{COUNTY}109"   # 三墩镇
DEPUTY = "demo-dep-township"  # 李秀英, township deputy: her code puts reports in the township
MATTER_PAGE = re.compile(r"/matters/([0-9A-Za-z-]+)")
# One blocked sewer at one crossroads, as six people would put it.
REPORTS = (
    "淮海路与长山路交叉口下水道堵了，污水冒出来，路上全是脏水。",
    "长山路和淮海路路口的下水道堵住了，污水一直往外冒。",
    "淮海路长山路交叉口窨井堵塞，污水漫到马路上，味道很臭。",
    "淮海路与长山路交叉口的下水道又堵了，污水冒到路面上，行人没法走。",
    "长山路淮海路交叉口下水管道堵塞，污水外溢好几天了。",
    "淮海路和长山路交叉的路口，下水道堵了污水往外冒，请尽快疏通。",
)
# The seventh citizen's words.
PARAPHRASE = "淮海路长山路路口下水道堵塞，脏水冒出来了"
DETECTION_SECONDS = 90


@dataclass(frozen=True)
class Matter:
    hotspot_id: str
    report_id: str
    receipts: tuple[str, ...]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-matters"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def report_through_the_form(site: Site, content: str, address: str) -> str:
    """One citizen's report through the web form, as a browser without JavaScript sends it; the receipt."""
    async with httpx.AsyncClient(base_url=site.url, timeout=30, headers={"X-Forwarded-For": address}) as http:
        form = (await http.get(f"/q/{site.code_of(DEPUTY)}")).text
        fields = {name: re.search(rf'name="{name}" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
                  for name in ("csrf", "idem")}
        sent = await http.post(f"/q/{site.code_of(DEPUTY)}", data={**fields, "content": content,
                                                                   "identity": "anonymous"},
                               files={"photos": ("", b"", "application/octet-stream")})
    assert sent.status_code == 303, sent.text[:500]
    return receipt_of(sent.headers["location"])


async def matches(site: Site, content: str) -> list[dict[str, Any]]:
    answer = await site.services["routing"].client.post("/v1/public/hotspots/similar",
                                                        json={"region_code": TOWNSHIP, "content": content})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["matches"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matter(site: Site) -> Matter:
    """Six reports at one crossroads, and the matter routing made of them."""
    receipts = []
    for n, content in enumerate(REPORTS):
        receipts.append(await report_through_the_form(site, content, f"10.78.0.{n + 10}"))
    deadline = time.monotonic() + DETECTION_SECONDS
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = await matches(site, PARAPHRASE)
        whole = [m for m in seen if m["count"] == len(REPORTS)]
        if whole:
            return Matter(whole[0]["hotspot_id"], whole[0]["report_id"], tuple(receipts))
        # Routing answers lookups within a per-minute budget; once a second is well inside it.
        await asyncio.sleep(1.0)
    raise AssertionError(f"the six reports did not become one matter in {DETECTION_SECONDS} s; routing offers {seen}")


async def wait_for_text(page: Any, selector: str, text: str, seconds: float = 30) -> str:
    """Reloads until `selector` holds `text` (news that travels between the services arrives later)."""
    deadline = time.monotonic() + seconds
    while True:
        found = page.locator(selector)
        shown = await found.inner_text() if await found.count() else ""
        if text in shown:
            return str(shown)
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r}; it shows {shown!r}")
        await asyncio.sleep(1.0)
        await page.reload()


# ---- without JavaScript ------------------------------------------------------------------------------


async def test_without_javascript_a_citizen_finds_the_matter_and_supports_it(site: Site, browser: Any,
                                                                             matter: Matter) -> None:
    filed_before = len(await site.reports_of_deputy(DEPUTY))
    page = await citizen(browser, site, js=False)
    await page.goto(f"/q/{site.code_of(DEPUTY)}")
    await page.fill("#content", PARAPHRASE)
    await page.click("#similar-check")
    listed = await page.inner_text("#similar")
    assert "这些事可能已经有人反映过" in listed
    assert f"已有 {len(REPORTS)} 人反映" in listed and "处理中" in listed and "最近一次" in listed
    assert "淮海路" in listed
    # Everything typed is still there, and nothing was filed.
    assert await page.input_value("#content") == PARAPHRASE
    assert len(await site.reports_of_deputy(DEPUTY)) == filed_before
    await no_serious_violations(page)
    await shot(page, "report-form-already-reported")

    await page.click(f"#similar a[href='/matters/{matter.hotspot_id}']")
    await page.wait_for_url(MATTER_PAGE)
    main = await page.inner_text("main")
    assert "共性事项" in main and "淮海路" in main and f"{len(REPORTS)} 人" in main
    # The matter, not the reports: none of the six citizens' words are on it.
    assert not any(text in main for text in REPORTS)
    await no_serious_violations(page)
    await shot(page, "matter")

    assert await page.is_checked("#identity-anonymous")
    await page.click("#support-submit")
    await page.wait_for_url(re.compile(rf"/matters/{matter.hotspot_id}\?thanks="))
    assert "感谢您的附议，已有 1 人附议" in await page.inner_text("#thanks")
    assert await page.inner_text("#matter-supporters") == "1 人"
    await no_serious_violations(page)
    await shot(page, "matter-thanks")

    # The first of the six sees on the receipt what became of the report, and how many joined.
    first = await citizen(browser, site, js=False)
    await first.goto(f"/r/{matter.receipts[0]}")
    lineage = await wait_for_text(first, ".timeline", "共性事项")
    assert "已归为共性事项" in lineage
    assert await first.locator(".timeline li.timeline-lineage").count() >= 1
    assert re.search(r"另有 \d+ 人附议", await first.inner_text("main"))
    link = first.locator("#matter-link")
    assert await link.inner_text() == "查看这个共性事项"
    assert await link.get_attribute("href") == f"/matters/{matter.hotspot_id}"
    await no_serious_violations(first)
    await shot(first, "receipt-lineage")


# ---- with JavaScript ----------------------------------------------------------------------------------


async def test_with_javascript_the_list_appears_while_typing(site: Site, browser: Any, matter: Matter) -> None:
    page = await citizen(browser, site)
    await page.goto(f"/report?region={TOWNSHIP}")
    assert await page.get_attribute("#similar", "aria-live") == "polite"
    assert await page.locator("#similar .similar-item").count() == 0
    await page.locator("#content").press_sequentially(PARAPHRASE, delay=40)
    item = page.locator("#similar .similar-item").first
    await item.wait_for(state="visible", timeout=15_000)
    assert f"已有 {len(REPORTS)} 人反映" in await item.inner_text()
    # On a phone the list is far below the words being typed: a link leads down to it.
    await page.click("#similar-jump a")
    assert await page.locator("#similar-field").is_visible()
    # Typed on the same page: nothing was sent, nothing reloaded.
    assert page.url.split("#")[0].endswith(f"/report?region={TOWNSHIP}")
    assert await page.input_value("#content") == PARAPHRASE
    await no_serious_violations(page)
    await shot(page, "report-form-already-reported-live")

    # The button searches in the page too, and files nothing.
    await page.fill("#content", "镇政府门口的健身器材坏了好几个月（附议测试）")
    await page.click("#similar-check")
    await page.wait_for_selector("#similar .similar-none")
    assert await page.locator("#similar-jump").is_hidden()
    assert page.url.endswith(f"/report?region={TOWNSHIP}#similar-field")

    # Real name, checked in the page first; then intake counts one support per phone.
    await page.goto(f"/matters/{matter.hotspot_id}")
    assert not await page.is_visible("#name"), "real-name details are shown only once real name is chosen"
    await page.click("label[for=identity-real]")
    await page.fill("#name", "赵六")
    await page.fill("#phone", "12345")
    await page.click("#support-submit")
    assert "11 位手机号" in await page.inner_text("#phone-error")
    await page.fill("#phone", "13900007777")
    await page.check("#consent")
    await page.click("#support-submit")
    await page.wait_for_url(re.compile(r"\?thanks="))
    assert re.search(r"感谢您的附议，已有 \d+ 人附议", await page.inner_text("#thanks"))

    await page.goto(f"/matters/{matter.hotspot_id}")
    await page.click("label[for=identity-real]")
    await page.fill("#name", "赵六")
    await page.fill("#phone", "13900007777")
    await page.check("#consent")
    await page.click("#support-submit")
    await page.wait_for_load_state()
    assert "已经附议过" in await page.inner_text("#error-summary")
    assert await page.input_value("#name") == "赵六" and await page.input_value("#phone") == "13900007777"
    # A form answered with its errors comes with a 4xx status, which Chromium reports on the console.
    errors = [e for e in page.js_errors if not e.startswith("Failed to load resource")]
    assert errors == [], errors


# ---- the deputy -----------------------------------------------------------------------------------------


async def test_the_deputy_sees_how_many_joined(site: Site, browser: Any, matter: Matter) -> None:
    page = await citizen(browser, site, js=False)
    await page.goto(f"/matters/{matter.hotspot_id}")
    await page.click("#support-submit")
    await page.wait_for_url(re.compile(r"\?thanks="))

    context = await browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        base_url=site.url)
    await context.add_cookies([site.session_cookie(["deputy"], deputy_id=DEPUTY, name="李秀英")])
    deputy = await context.new_page()
    await deputy.goto(f"/work/reports/{matter.report_id}")
    assert re.search(r"附议 \d+ 人", await deputy.inner_text("#report-supporters"))
    assert await deputy.get_attribute("#report-matter", "href") == f"/matters/{matter.hotspot_id}"
    await deputy.goto("/work/deputy?status=all")
    assert re.search(r"附议 \d+ 人", await deputy.inner_text(".dep-inbox"))
    await context.close()


async def test_an_unknown_matter_is_the_friendly_404(site: Site, browser: Any) -> None:
    page = await citizen(browser, site, js=False)
    response = await page.goto("/matters/0190a0b2-0000-7000-8000-00000000ffff")
    assert response.status == 404
    assert "没有找到这个共性事项" in await page.inner_text("h1")
    await no_serious_violations(page)
