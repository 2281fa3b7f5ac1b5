"""The console's front door in a real Chromium against the real stack: congress staff and
administrators each see their own sections, someone holding both sees both, and a deputy is
refused with a page, not sent round in circles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from conftest import Servers
from test_web_browser import no_serious_violations, shot
from webutil import DESKTOP, Site, chromium, site_stack

pytestmark = pytest.mark.slow

COUNTY = "330164"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with site_stack(servers, tmp_path_factory.mktemp("web-console"), COUNTY) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def signed_in(browser: Any, site: Site, roles: list[str], **claims: Any) -> Any:
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        base_url=site.url)
    await context.add_cookies([site.session_cookie(roles, name="周敏", **claims)])
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.js = True  # for the axe check
    return page


async def section_links(page: Any) -> list[str]:
    return [await a.inner_text() for a in await page.query_selector_all(".console-sections h2 a")]


async def test_staff_and_administrators_each_see_their_sections(site: Site, browser: Any) -> None:
    staff = await signed_in(browser, site, ["npc_staff"])
    response = await staff.goto("/console")
    assert response.status == 200
    assert await section_links(staff) == ["概览", "代表建议", "共性事项", "履职积分", "选民登记核对", "审计日志"]
    assert await staff.inner_text(".brand") == "民意 · 控制台"
    nav = await staff.get_attribute("header nav", "aria-label")
    assert nav == "控制台栏目"
    assert "控制台" in await staff.inner_text("footer") and "工作台" not in await staff.inner_text("footer")
    await no_serious_violations(staff)
    await shot(staff, "console-home")

    admin = await signed_in(browser, site, ["admin"], region="")
    await admin.goto("/console")
    assert await section_links(admin) == ["名录", "二维码", "工作日历"]

    both = await signed_in(browser, site, ["npc_staff", "admin"])
    await both.goto("/console")
    assert len(await section_links(both)) == 9

    # The workbench sends console roles here.
    await staff.goto("/work")
    assert staff.url.endswith("/console")


async def test_a_deputy_is_refused_the_console_with_a_page(site: Site, browser: Any) -> None:
    deputy = await signed_in(browser, site, ["deputy"], deputy_id="demo-dep-county")
    response = await deputy.goto("/console")
    assert response.status == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "没有权限打开这个页面" in await deputy.inner_text("main")
    assert await section_links(deputy) == []
