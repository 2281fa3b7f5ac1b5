"""Signing in to the workbench in a real Chromium, through a real OpenID Connect provider process
(tests/oidc_provider.py: discovery, authorize with PKCE, token, JWKS, end-session), against the
real stack: the provider signs with the key the services trust, so the access token the pages
carry is the one the services check.

Walked here: /work → /login → the provider's page → back as a deputy; sign-out through the
provider; a forged state and a cancelled sign-in; `next` pointing off-site; an idle session and a
401 from a service both sending the person to sign in and back to the same page; tokens refreshed
before they run out; two web processes sharing one session; the one-time development link.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from conftest import Servers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from identityutil import KEY
from test_web_browser import no_serious_violations, shot
from webutil import PHONE, Site, chromium, site_stack

from minyi.demo_county import UNITS
from minyi.servers import free_port
from services.web.work_session import IDLE_SECONDS, SESSION_COOKIE, SessionCodec, WorkSession
from shared.auth import public_pem, sign_token

pytestmark = pytest.mark.slow

COUNTY = "330187"
DEPUTY = "demo-dep-county"
CLIENT_ID = "minyi-web"
CLIENT_SECRET = "test-client-secret-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def people() -> list[dict[str, Any]]:
    return [
        {"sub": "kc-wlj", "name": "王丽娟", "roles": ["deputy"], "region": COUNTY, "deputy_id": DEPUTY},
        {"sub": "kc-multi", "name": "陈晓东", "roles": ["deputy", "station_staff"], "region": COUNTY,
         "deputy_id": DEPUTY},
        # Access tokens shorter than the refresh margin: every page refreshes them.
        {"sub": "kc-short", "name": "李短时", "roles": ["deputy", "station_staff"], "region": COUNTY,
         "deputy_id": DEPUTY, "access_ttl": 90},
        {"sub": "kc-citizen", "name": "赵群众", "roles": ["citizen"], "region": COUNTY},
        {"sub": "kc-clerk", "name": "周联络", "roles": ["station_staff"], "region": COUNTY},
        {"sub": "kc-unit", "name": "吴承办", "roles": ["unit"], "region": COUNTY, "unit_id": UNITS[0]},
        {"sub": "kc-staff", "name": "周敏", "roles": ["npc_staff"], "region": COUNTY},
        {"sub": "kc-admin", "name": "郑管理", "roles": ["admin"], "region": COUNTY},
    ]


def _key_pem() -> bytes:
    return KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} stopped while starting (exit {process.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within 30 s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The provider as a process of its own; its URL is its issuer."""
    home = tmp_path_factory.mktemp("oidc")
    (home / "key.pem").write_bytes(_key_pem())
    (home / "people.json").write_text(json.dumps(people(), ensure_ascii=False), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "oidc_provider.py"), "--port", str(port), "--key-file",
         str(home / "key.pem"), "--people", str(home / "people.json"), "--client-id", CLIENT_ID, "--client-secret",
         CLIENT_SECRET, "--access-issuer", "minyi", "--audience", "minyi", "--redirect-prefix", "http://127.0.0.1:",
         "--redirect-prefix", "http://localhost:"],
        stdout=subprocess.DEVNULL, stderr=open(home / "provider.log", "wb"))
    issuer = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{issuer}/.well-known/openid-configuration", process, "the OIDC provider")
        yield issuer
    finally:
        _stop(process)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(servers: Servers, provider: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    home = tmp_path_factory.mktemp("web-signin")
    # The development sign-in signs with the key `minyi token` would use under the web tier's home:
    # here the one the services under test trust.
    keys = home / "web" / "keys"
    keys.mkdir(parents=True)
    (keys / "jwt-signing-key.pem").write_bytes(_key_pem())
    (keys / "jwt-public-key.pem").write_bytes(public_pem(KEY))
    secret = home / "oidc-client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    options = {"oidc_issuer": provider, "oidc_client_id": CLIENT_ID, "oidc_client_secret_file": secret}
    async with site_stack(servers, home, COUNTY, web_options=options) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def person(browser: Any, site: Site, *, js: bool = True) -> Any:
    """A phone of its own; every answer's redirect is kept in `page.hops` (the path, and Location)."""
    context = await browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=js, base_url=site.url)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    page.site, page.js = site, js
    page.hops = []
    page.on("response", lambda r: page.hops.append((r.url, r.status, r.headers.get("location"))))
    return page


async def choose(page: Any, name: str) -> None:
    """On the provider's page, sign in as `name`."""
    await page.wait_for_selector("text=测试认证服务")
    await page.click(f"button:has-text('{name}')")


def went_to(page: Any, path_prefix: str) -> list[str]:
    """Where this site's callback sent the browser."""
    return [loc for url, status, loc in page.hops
            if urlsplit(url).path == "/auth/callback" and status == 303 and loc and loc.startswith(path_prefix)]


async def session_of(page: Any) -> WorkSession | None:
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    secret = (page.site.web_home / "keys" / "web-secret.bin").read_bytes()
    return SessionCodec(secret).open(cookies.get(SESSION_COOKIE))


async def stats(provider: str) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{provider}/_test/stats")).json())


# ---- sign in, sign out ------------------------------------------------------------------------------


async def test_a_deputy_signs_in_through_the_provider_and_out_again(site: Site, browser: Any, provider: str) -> None:
    page = await person(browser, site)
    before = await stats(provider)
    await page.goto("/work")
    assert page.url.startswith(f"{provider}/authorize?")
    query = parse_qs(urlsplit(page.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{site.url}/auth/callback"]
    cookie = next(c for c in await page.context.cookies() if c["name"] == "minyi_signin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/auth/callback"
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"^" + re.escape(site.url) + "/work"))
    assert went_to(page, "/work"), page.hops
    session = await session_of(page)
    assert session is not None and session.roles == ("deputy",) and session.deputy_id == DEPUTY
    assert session.name == "王丽娟" and session.refresh_token
    # The access token is the provider's, and it is what the services take for this deputy.
    intake = site.services["intake"].client
    answer = await intake.get("/v1/reports", params={"deputy_id": DEPUTY}, headers=session.bearer)
    assert answer.status_code == 200, answer.text
    assert (await stats(provider))["authorization_code"] == before["authorization_code"] + 1
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies[SESSION_COOKIE]["httpOnly"] and cookies[SESSION_COOKIE]["sameSite"] == "Lax"
    assert "minyi_signin" not in cookies, "the sign-in's state is dropped once used"

    await page.goto("/logout")
    assert "王丽娟" in await page.inner_text("#signed-in-as")
    await no_serious_violations(page)
    await shot(page, "signin-logout")
    await page.click("#logout")
    await page.wait_for_url(f"{site.url}/")
    assert any(url.startswith(f"{provider}/logout?") for url, _, _ in page.hops), "the provider's session ends too"
    assert await session_of(page) is None
    await page.goto("/work")
    assert page.url.startswith(f"{provider}/authorize?"), "signed out: the workbench asks to sign in again"


@pytest.mark.parametrize(("name", "lands", "heading"), [
    ("王丽娟", "/work/deputy", "我的反映件"),
    ("周联络", "/work/station", "本地区待办反映"),
    ("吴承办", "/work/unit", "本单位承办的建议"),
])
async def test_each_role_signs_in_through_the_provider_to_its_own_pages(site: Site, browser: Any, name: str,
                                                                         lands: str, heading: str) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await choose(page, name)
    await page.wait_for_url(re.compile(r"^" + re.escape(site.url + lands)))
    assert heading in await page.inner_text("h1")
    # What the page lists came from the services for this person's own token: no 401 or 403 on the way.
    assert not [url for url, status, _ in page.hops if status in (401, 403)], page.hops
    await page.context.close()


@pytest.mark.parametrize(("name", "section", "heading"), [
    ("周敏", "/console/overview", "概览"),
    ("郑管理", "/console/directory", "名录"),
])
async def test_congress_staff_and_administrators_sign_in_through_the_provider_to_the_console(
        site: Site, browser: Any, name: str, section: str, heading: str) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await choose(page, name)
    await page.wait_for_url(re.compile(r"^" + re.escape(site.url + "/console") + r"$"))
    assert "控制台" in await page.inner_text("h1")
    response = await page.goto(section)
    assert response.status == 200 and heading in await page.inner_text("h1")
    # The services took this person's own token for the section's figures.
    assert not [url for url, status, _ in page.hops if status in (401, 403)], page.hops
    await page.context.close()


async def test_sign_out_needs_the_form_token(site: Site, browser: Any) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"/work"))
    answer = await page.request.post(f"{site.url}/logout", form={"csrf": "1.forged"}, max_redirects=0)
    assert answer.status == 400 and "再点一次退出登录" in await answer.text()
    assert await session_of(page) is not None, "a forged sign-out does not sign anyone out"


async def test_a_forged_state_is_refused_with_a_way_to_sign_in_again(site: Site, browser: Any, provider: str) -> None:
    page = await person(browser, site, js=False)
    await page.goto("/login?next=/work")
    forged = re.sub(r"state=[^&]+", "state=forged-by-someone-else", page.url)
    await page.goto(forged)
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"/auth/callback"))
    assert "登录没有完成" in await page.inner_text("h1")
    assert "登录信息与本次登录不符" in await page.inner_text("main")
    assert await session_of(page) is None
    await no_serious_violations(page)
    await shot(page, "signin-refused")
    # The page's link starts a good sign-in, which lands where the first one meant to.
    await page.click("a.button:has-text('重新登录')")
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"/work"))
    assert went_to(page, "/work") and await session_of(page) is not None

    # A callback with no sign-in begun in this browser, or a code replayed, is refused the same way.
    other = await person(browser, site)
    response = await other.goto("/auth/callback?code=abc&state=def")
    assert response.status == 400 and "登录没有完成" in await other.inner_text("h1")


async def test_a_cancelled_sign_in_and_a_person_without_a_workbench_role(site: Site, browser: Any) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await page.click("text=取消登录")
    await page.wait_for_url(re.compile(r"/auth/callback"))
    assert "您取消了登录" in await page.inner_text("main")
    await page.goto("/work")
    await choose(page, "赵群众")
    await page.wait_for_url(re.compile(r"/auth/callback"))
    assert "还没有开通工作台的权限" in await page.inner_text("main")
    assert await session_of(page) is None


async def test_next_never_leads_off_the_site(site: Site, browser: Any) -> None:
    page = await person(browser, site)
    await page.goto("/login?next=//evil.example/steal")
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"^" + re.escape(site.url) + "/work"))
    assert went_to(page, "/work"), page.hops
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        response = await page.request.get(f"{site.url}/login", params={"next": target}, max_redirects=0)
        assert response.status == 303 and response.headers["location"] == "/work", (target, response.headers)


# ---- sessions ending and coming back ------------------------------------------------------------------


async def test_an_idle_session_signs_in_again_and_comes_back_to_the_same_page(site: Site, browser: Any) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await choose(page, "陈晓东")
    await page.wait_for_url(re.compile(r"/work$"))
    session = await session_of(page)
    assert session is not None
    # Half an hour away from the desk, as the cookie records it.
    idle = replace(session, seen_at=time.time() - IDLE_SECONDS - 5)
    secret = (site.web_home / "keys" / "web-secret.bin").read_bytes()
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": SessionCodec(secret).seal(idle),
                                     "url": site.url, "httpOnly": True, "sameSite": "Lax"}])
    await page.goto("/work?from=idle")
    await choose(page, "陈晓东")
    await page.wait_for_url(re.compile(r"/work\?from=idle$"))
    assert went_to(page, "/work?from=idle"), page.hops
    assert "请选择要办理的事项" in await page.inner_text("main")
    fresh = await session_of(page)
    assert fresh is not None and fresh.seen_at > idle.seen_at + IDLE_SECONDS


async def test_a_token_the_services_refuse_sends_the_person_to_sign_in_and_back(site: Site, browser: Any) -> None:
    page = await person(browser, site)
    # A session the web tier still holds, whose token the services no longer take (keys rotated).
    stale = sign_token(ec.generate_private_key(ec.SECP256R1()), issuer="minyi", audience="minyi", sub="kc-wlj",
                       roles=["deputy"], region=COUNTY, deputy_id=DEPUTY)
    session = WorkSession(sub="kc-wlj", roles=("deputy",), region=COUNTY, access_token=stale,
                          expires_at=time.time() + 3600, deputy_id=DEPUTY, name="王丽娟")
    secret = (site.web_home / "keys" / "web-secret.bin").read_bytes()
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": SessionCodec(secret).seal(session),
                                     "url": site.url, "httpOnly": True, "sameSite": "Lax"}])
    await page.goto("/work/deputy?sort=due")
    assert "/authorize?" in page.url, page.url
    refused = [loc for url, status, loc in page.hops if urlsplit(url).path == "/work/deputy" and status == 303]
    assert refused == ["/login?next=/work/deputy%3Fsort%3Ddue"], page.hops
    await choose(page, "王丽娟")
    await page.wait_for_url(re.compile(r"/work/deputy\?sort=due$"))
    fresh = await session_of(page)
    assert fresh is not None and fresh.access_token != stale


async def test_access_tokens_are_refreshed_before_they_run_out(site: Site, browser: Any, provider: str) -> None:
    page = await person(browser, site)
    await page.goto("/work")
    await choose(page, "李短时")
    await page.wait_for_url(re.compile(r"/work$"))
    first = await session_of(page)
    assert first is not None
    before = (await stats(provider))["refresh_token"]
    await page.goto("/work")
    second = await session_of(page)
    assert (await stats(provider))["refresh_token"] == before + 1
    assert second is not None and second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token, "the provider rotates refresh tokens; the new one is kept"
    assert "请选择要办理的事项" in await page.inner_text("main")


# ---- two web processes ----------------------------------------------------------------------------------


def web_process(site: Site, home: Path, *, dev_secrets: bool, provider: str, secret_file: Path) -> tuple[str, Any]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINYI_")},
        "MINYI_HOME": str(home), "MINYI_HTTP_HOST": "127.0.0.1", "MINYI_WEB_PORT": str(port),
        "MINYI_DEV_SECRETS": "true" if dev_secrets else "false",
        "MINYI_WEB_SECRET_FILE": str(site.web_home / "keys" / "web-secret.bin"),
        "MINYI_PROXY_SECRET_FILE": str(site.web_home.parent / "intake" / "keys" / "proxy-secret.txt"),
        "MINYI_OIDC_ISSUER": provider, "MINYI_OIDC_CLIENT_ID": CLIENT_ID,
        "MINYI_OIDC_CLIENT_SECRET_FILE": str(secret_file),
        **{f"MINYI_{name.upper()}_URL": s.base_url for name, s in site.services.items()},
    }
    log = open(home / "web.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "services.web"], cwd=ROOT, env=env, stdout=log, stderr=log)
    # Another host name than the first web tier's: the browser keeps the two sites' cookies apart.
    url = f"http://localhost:{port}"
    _wait_until_up(f"{url}/healthz", process, "the second web process")
    return url, process


async def test_two_web_processes_take_the_same_session(site: Site, browser: Any, provider: str,
                                                       tmp_path: Path) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET)
    other_url, process = await asyncio.to_thread(web_process, site, tmp_path, dev_secrets=False, provider=provider,
                                                 secret_file=secret_file)
    try:
        page = await person(browser, site)
        await page.goto("/work")
        await choose(page, "陈晓东")
        await page.wait_for_url(re.compile(r"/work$"))
        # The person moves to the other replica with the cookies the first one set.
        moved = [{"name": c["name"], "value": c["value"], "url": other_url, "httpOnly": True, "sameSite": "Lax"}
                 for c in await page.context.cookies() if c["name"] in (SESSION_COOKIE, "minyi_form")]
        assert {c["name"] for c in moved} == {SESSION_COOKIE, "minyi_form"}
        await page.context.add_cookies(moved)
        response = await page.goto(f"{other_url}/work")
        assert response.status == 200 and page.url == f"{other_url}/work"
        assert "请选择要办理的事项" in await page.inner_text("main")
        assert "陈晓东" in await page.inner_text(".who")
        # A form the first replica made is taken by the second: sign-out there ends the session.
        await page.goto(f"{other_url}/logout")
        await page.click("#logout")
        await page.wait_for_url(f"{other_url}/")
        await page.goto(f"{other_url}/work")
        assert "/authorize?" in page.url

        # A production web tier (no development secrets) has no development sign-in.
        ticket_url = await login_url(site, "--role", "deputy", "--region", COUNTY, "--deputy", DEPUTY)
        refused = await page.goto(other_url + urlsplit(ticket_url).path + "?" + urlsplit(ticket_url).query)
        assert refused.status == 404
    finally:
        await asyncio.to_thread(_stop, process)


# ---- the development sign-in -----------------------------------------------------------------------------


async def login_url(site: Site, *args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MINYI_")},
           "MINYI_HOME": str(site.web_home), "MINYI_PUBLIC_BASE_URL": site.url}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "minyi.cli", "login-url", *args],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_the_development_link_signs_in_once(site: Site, browser: Any) -> None:
    url = await login_url(site, "--role", "deputy", "--region", COUNTY, "--deputy", DEPUTY, "--name", "王丽娟",
                          "--next", "/logout")
    assert url.startswith(f"{site.url}/login/dev?ticket=")
    page = await person(browser, site)
    await page.goto(url)
    await page.wait_for_url(f"{site.url}/logout")
    assert "王丽娟" in await page.inner_text("#signed-in-as")
    session = await session_of(page)
    assert session is not None and session.refresh_token is None
    answer = await site.services["intake"].client.get("/v1/reports", params={"deputy_id": DEPUTY},
                                                       headers=session.bearer)
    assert answer.status_code == 200, answer.text

    again = await person(browser, site)
    response = await again.goto(url)
    assert response.status == 400 and "已经用过" in await again.inner_text("main")
    assert await session_of(again) is None
    await no_serious_violations(again)

    bad = subprocess.run([sys.executable, "-m", "minyi.cli", "login-url", "--role", "unit"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--unit is needed" in bad.stderr
