"""Signing in and out: OpenID Connect (authorization code with PKCE) and the development sign-in.

- `GET /login?next=` begins a sign-in at the provider (`oidc.py`); `state`, `nonce` and the PKCE
  verifier wait in a sealed cookie (`signin_state.py`). Someone already signed in goes straight on.
- `GET /auth/callback` finishes it: the state must be the one this browser was given, the code is
  exchanged and the tokens checked; the session cookie is written and the browser goes to `next`
  (a path on this site only) or the person's home.
- `GET /login/dev?ticket=` takes a `minyi login-url` ticket, where development secrets are on.
- `POST /logout` (CSRF-checked) ends the session and, where the provider has an end-session
  endpoint, the provider's too (through `/logout/provider`). `GET /logout` shows the button, for a
  form whose token expired.

Every refusal is a Chinese page with a way to sign in again, never JSON.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.web import dev_login
from services.web.context import web_of
from services.web.error_pages import ROLE_NAMES, Action, error_page, not_found_page
from services.web.oidc import OidcClient, ProviderUnavailable, SignInRefused, new_secret, session_of
from services.web.oidc import authorization_url as provider_authorization_url
from services.web.signed_in import current, forget, remember
from services.web.signin_state import SIGNIN_COOKIE, SIGNIN_COOKIE_PATH, SIGNIN_SECONDS, SignInState, StateCodec
from services.web.work_session import safe_next, secure_cookie
from shared.settings import Settings

log = logging.getLogger("minyi.web.signin")

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class SignIn:
    """What the sign-in pages keep per process: the provider's client (None where none is configured),
    the sealing of sign-ins in progress, and the development tickets already taken."""

    settings: Settings
    states: StateCodec
    oidc: OidcClient | None
    used_tickets: dev_login.UsedTickets = field(default_factory=dev_login.UsedTickets)


def install(app: FastAPI, settings: Settings, secret: bytes) -> None:
    """Set up signing in for this app; with a provider, sessions are refreshed through it."""
    oidc = OidcClient(settings) if settings.oidc_issuer and settings.oidc_client_id else None
    app.state.sign_in = SignIn(settings, StateCodec(secret), oidc)
    if oidc is not None:
        app.state.web.refresher = oidc.refresh
    elif settings.oidc_issuer or settings.oidc_client_id:
        log.warning("MINYI_OIDC_ISSUER and MINYI_OIDC_CLIENT_ID must both be set; signing in is off")


async def close(app: FastAPI) -> None:
    sign_in: SignIn | None = getattr(app.state, "sign_in", None)
    if sign_in is not None and sign_in.oidc is not None:
        await sign_in.oidc.close()


def _sign_in(request: Request) -> SignIn:
    return request.app.state.sign_in  # type: ignore[no-any-return]


def _login_again(next_path: str) -> tuple[Action, ...]:
    return (Action("/login?next=" + quote(next_path, safe="/"), "重新登录"), Action("/", "回到首页"))


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_url or str(request.base_url).rstrip("/") + SIGNIN_COOKIE_PATH


def _site_root(request: Request, settings: Settings) -> str:
    """This site's front page as the provider should send the browser back to it after signing out."""
    if settings.oidc_redirect_url:
        parts = urlsplit(settings.oidc_redirect_url)
        return f"{parts.scheme}://{parts.netloc}/"
    return str(request.base_url)


def _signin_failed(request: Request, message: str, next_path: str, *, status: int = 400) -> Response:
    response = error_page(request, status, "登录没有完成", message, actions=_login_again(next_path))
    _drop_state(request, response)
    return response


def _drop_state(request: Request, response: Response) -> None:
    response.delete_cookie(SIGNIN_COOKIE, path=SIGNIN_COOKIE_PATH, httponly=True, samesite="lax",
                           secure=secure_cookie(request, web_of(request).settings.web_secure_cookies))


@router.get("/login")
async def login(request: Request, next: str | None = None) -> Response:
    settings = web_of(request).settings
    sign_in = _sign_in(request)
    session = await current(request)
    target = safe_next(next, session.home() if session is not None else "/work")
    if session is not None:
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    if sign_in.oidc is None:
        if settings.dev_secrets:
            return error_page(request, 503, "开发环境：请用登录链接登录",
                              "这个开发环境没有配置统一身份认证。请在命令行运行 "
                              "minyi login-url --role deputy --region 地区代码 --deputy 代表编号"
                              "（或 --role station_staff、--role unit --unit 单位编号），用它打印的一次性链接登录。",
                              actions=(Action("/", "回到首页"),))
        return error_page(request, 503, "登录尚未配置",
                          "本系统还没有配置统一身份认证，暂时无法登录工作台。请联系系统管理员："
                          "需要设置认证服务地址（MINYI_OIDC_ISSUER）和客户端编号（MINYI_OIDC_CLIENT_ID）。",
                          actions=(Action("/", "回到首页"),))
    try:
        provider = await sign_in.oidc.provider()
    except ProviderUnavailable as exc:
        log.warning("sign-in cannot begin: %s", exc)
        return error_page(request, 503, "暂时无法登录", "统一身份认证服务暂时连不上，请稍等片刻再试。",
                          retry=True, retry_after=30, actions=(Action("/", "回到首页"),))
    state = SignInState(state=new_secret(), nonce=new_secret(), verifier=new_secret(), next=target,
                        started_at=time.time())
    url = provider_authorization_url(provider, client_id=sign_in.oidc.client_id,
                                     redirect_uri=_redirect_uri(request, settings), scopes=sign_in.oidc.scopes,
                                     state=state.state, nonce=state.nonce, verifier=state.verifier)
    response = RedirectResponse(url, status_code=303, headers=NO_STORE)
    response.set_cookie(SIGNIN_COOKIE, sign_in.states.seal(state), max_age=SIGNIN_SECONDS, path=SIGNIN_COOKIE_PATH,
                        httponly=True, samesite="lax", secure=secure_cookie(request, settings.web_secure_cookies))
    return response


@router.get(SIGNIN_COOKIE_PATH)
async def auth_callback(request: Request) -> Response:
    sign_in = _sign_in(request)
    if sign_in.oidc is None:
        return not_found_page(request)
    params = request.query_params
    pending = sign_in.states.open(request.cookies.get(SIGNIN_COOKIE))
    next_path = pending.next if pending is not None else "/work"
    if params.get("error"):
        # The person cancelled, or the provider would not sign them in for this client.
        cancelled = params.get("error") == "access_denied"
        log.info("provider answered the sign-in with %s", params.get("error"))
        return _signin_failed(request, "您取消了登录。需要办理时，请重新登录。" if cancelled else
                              "统一身份认证没有同意这次登录。请重新登录；如果一直这样，请联系系统管理员。", next_path)
    state, code = params.get("state", ""), params.get("code", "")
    if pending is None:
        return _signin_failed(request, "这次登录已经超时，或者不是从本站开始的（登录要在 10 分钟内完成）。请重新登录。",
                              next_path)
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()) or not code:
        # Not the sign-in this browser began: a forged or replayed answer. No session comes of it.
        log.warning("sign-in answer with a state this browser was not given")
        return _signin_failed(request, "登录信息与本次登录不符，为了安全没有登录。请重新登录。", next_path)
    try:
        tokens = await sign_in.oidc.exchange(code=code, verifier=pending.verifier, nonce=pending.nonce,
                                             redirect_uri=_redirect_uri(request, web_of(request).settings))
        session = session_of(tokens.access_claims, tokens.id_claims, access_token=tokens.access_token,
                             refresh_token=tokens.refresh_token, now=time.time())
    except SignInRefused as exc:
        log.warning("sign-in refused: %s", exc.reason)
        return _signin_failed(request, exc.message, next_path, status=exc.status)
    except ProviderUnavailable as exc:
        log.warning("sign-in cannot finish: %s", exc)
        return _signin_failed(request, "统一身份认证服务暂时连不上，请稍等片刻重新登录。", next_path, status=503)
    remember(request, session)
    response = RedirectResponse(safe_next(pending.next, session.home()), status_code=303, headers=NO_STORE)
    _drop_state(request, response)
    log.info("signed in: %s as %s", session.sub, ",".join(session.roles))
    return response


@router.get(dev_login.DEV_LOGIN_PATH)
async def dev_sign_in(request: Request, ticket: str = "") -> Response:
    settings = web_of(request).settings
    if not settings.dev_secrets:
        # A production web tier has no development sign-in at all.
        return not_found_page(request)
    key = dev_login.signing_key(settings)
    try:
        principal, next_path = dev_login.open_ticket(key, ticket, issuer=settings.jwt_issuer,
                                                     used=_sign_in(request).used_tickets)
    except dev_login.TicketRefused as exc:
        return error_page(request, 400, "无法用这个链接登录", exc.message, actions=(Action("/", "回到首页"),))
    session = dev_login.dev_session(key, principal, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    remember(request, session)
    log.info("signed in for development: %s as %s", session.sub, ",".join(session.roles))
    return RedirectResponse(next_path, status_code=303, headers=NO_STORE)


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    session = await current(request)
    return web_of(request).pages.render(request, "signin_logout.html", posts=True, private=True, session=session,
                                        error=None, role_names=ROLE_NAMES)


@router.post("/logout")
async def logout(request: Request) -> Response:
    web = web_of(request)
    form = await request.form()
    token = form.get("csrf")
    valid, expired = web.pages.csrf_ok(request, token if isinstance(token, str) else None)
    if not valid or not _same_origin(request):
        session = await current(request)
        error = "页面打开的时间太长了，为了安全请再点一次退出登录。" if expired else "为了安全，请再点一次退出登录。"
        return web.pages.render(request, "signin_logout.html", status=400, posts=True, private=True,
                                session=session, error=error, role_names=ROLE_NAMES)
    forget(request)
    # The provider's session is ended from a page of its own: the pages' Content-Security-Policy
    # (form-action 'self') stops a form's answer from redirecting to another site.
    target = "/logout/provider" if _sign_in(request).oidc is not None else "/"
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@router.get("/logout/provider")
async def logout_at_provider(request: Request) -> Response:
    """Signed out here; now at the provider too (a refresh to its end-session endpoint, which
    sends the browser back to this site's front page)."""
    oidc = _sign_in(request).oidc
    target = await oidc.logout_url(_site_root(request, web_of(request).settings)) if oidc is not None else None
    if target is None:
        return RedirectResponse("/", status_code=303, headers=NO_STORE)
    return web_of(request).pages.render(request, "signin_signed_out.html", private=True, provider_logout=target)


def _same_origin(request: Request) -> bool:
    """A browser names the page that sent a POST; another site's page may not sign a person out."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    return origin != "null" and origin.split("://", 1)[-1] == request.headers.get("host", "")
