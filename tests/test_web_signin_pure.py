"""The sign-in's own logic, without a provider or a browser: PKCE, the sealed sign-in state, the
session made from a provider's claims, the development tickets, and /login where nothing is set up."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.web import dev_login
from services.web.oidc import (
    Provider,
    ProviderUnavailable,
    SignInRefused,
    authorization_url,
    code_challenge,
    end_session_url,
    refreshed_session,
    session_of,
)
from services.web.service import build_app
from services.web.signin_state import SIGNIN_SECONDS, SignInState, StateCodec
from shared.auth import TokenVerifier, public_pem
from shared.settings import Settings

KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = b"s" * 32
DISCOVERY = {"issuer": "https://sso.example.org/realms/minyi",
             "authorization_endpoint": "https://sso.example.org/realms/minyi/auth",
             "token_endpoint": "https://sso.example.org/realms/minyi/token",
             "jwks_uri": "https://sso.example.org/realms/minyi/certs",
             "end_session_endpoint": "https://sso.example.org/realms/minyi/logout"}


def test_pkce_s256_matches_the_rfc_7636_example() -> None:
    verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert code_challenge(verifier) == challenge


def test_discovery_must_name_the_configured_issuer() -> None:
    provider = Provider.from_discovery(DISCOVERY, DISCOVERY["issuer"])
    assert provider.end_session_endpoint and provider.basic_auth
    with pytest.raises(ProviderUnavailable):
        Provider.from_discovery({**DISCOVERY, "issuer": "https://evil.example"}, DISCOVERY["issuer"])
    with pytest.raises(ProviderUnavailable):
        Provider.from_discovery({k: v for k, v in DISCOVERY.items() if k != "jwks_uri"}, DISCOVERY["issuer"])
    post_only = Provider.from_discovery({**DISCOVERY, "token_endpoint_auth_methods_supported": ["client_secret_post"]},
                                        DISCOVERY["issuer"])
    assert not post_only.basic_auth


def test_the_authorization_url_carries_state_nonce_and_the_challenge_never_the_verifier() -> None:
    provider = Provider.from_discovery(DISCOVERY, DISCOVERY["issuer"])
    url = authorization_url(provider, client_id="minyi-web", redirect_uri="https://w.example/auth/callback",
                            scopes="openid profile", state="st", nonce="no", verifier="v" * 43)
    query = httpx.URL(url).params
    assert query["code_challenge"] == code_challenge("v" * 43) and query["code_challenge_method"] == "S256"
    assert query["state"] == "st" and query["nonce"] == "no" and query["response_type"] == "code"
    assert "v" * 43 not in url
    logout = end_session_url(provider, client_id="minyi-web", after="https://w.example/")
    assert logout is not None and httpx.URL(logout).params["post_logout_redirect_uri"] == "https://w.example/"
    assert end_session_url(Provider.from_discovery({**DISCOVERY, "end_session_endpoint": None}, DISCOVERY["issuer"]),
                           client_id="c", after="/") is None


def test_the_sign_in_state_opens_only_unaltered_with_its_key_and_within_ten_minutes() -> None:
    codec = StateCodec(SECRET)
    now = time.time()
    state = SignInState("s", "n", "v", "/work/deputy?page=2", now)
    sealed = codec.seal(state)
    assert codec.open(sealed, now + 1) == state
    assert codec.open(sealed, now + SIGNIN_SECONDS + 1) is None
    assert StateCodec(b"t" * 32).open(sealed, now) is None
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    assert codec.open(flipped, now) is None
    assert codec.open("", now) is None and codec.open("x" * 5000, now) is None
    # The session's codec and this one share the secret but not the key.
    from services.web.work_session import SessionCodec

    assert SessionCodec(SECRET).open(sealed) is None


def test_the_session_takes_roles_and_scope_from_the_access_token_and_the_name_from_the_id_token() -> None:
    access = {"sub": "u1", "exp": 2_000_000_000, "roles": ["deputy", "citizen", 7], "region": "330187",
              "deputy_id": "d-1"}
    session = session_of(access, {"sub": "u1", "name": "王丽娟"}, access_token="at", refresh_token="rt", now=10.0)
    assert session.roles == ("deputy",) and session.region == "330187" and session.deputy_id == "d-1"
    assert session.name == "王丽娟" and session.expires_at == 2_000_000_000 and session.refresh_token == "rt"
    assert session_of(access, {"preferred_username": "wlj"}, access_token="a", refresh_token=None, now=1).name == "wlj"
    with pytest.raises(SignInRefused) as refused:
        session_of({**access, "roles": ["citizen"]}, {}, access_token="a", refresh_token=None, now=1)
    assert refused.value.status == 403
    claims = {**access, "roles": ["deputy", "unit"], "unit_id": "u-9", "exp": 2_000_000_600}
    changed = refreshed_session(session, claims, access_token="at2", refresh_token=None)
    assert changed.roles == ("deputy", "unit") and changed.unit_id == "u-9" and changed.access_token == "at2"
    assert changed.refresh_token == "rt", "a provider that does not rotate keeps the old refresh token good"
    assert changed.created_at == session.created_at


def test_a_development_ticket_signs_in_once_within_five_minutes() -> None:
    principal = dev_login.Principal(("deputy",), "330187", deputy_id="d-1", name="王丽娟")
    ticket = dev_login.mint_ticket(KEY, principal, issuer="minyi", next_path="/work/deputy", now=1000)
    used = dev_login.UsedTickets()
    opened, next_path = dev_login.open_ticket(KEY, ticket, issuer="minyi", used=used, now=1001)
    assert opened == principal and next_path == "/work/deputy"
    with pytest.raises(dev_login.TicketRefused, match="已经用过"):
        dev_login.open_ticket(KEY, ticket, issuer="minyi", used=used, now=1002)
    late = dev_login.mint_ticket(KEY, principal, issuer="minyi", next_path="/work", now=time.time() - 400)
    with pytest.raises(dev_login.TicketRefused, match="过期"):
        dev_login.open_ticket(KEY, late, issuer="minyi", used=dev_login.UsedTickets())
    other = dev_login.mint_ticket(ec.generate_private_key(ec.SECP256R1()), principal, issuer="minyi", next_path="/")
    with pytest.raises(dev_login.TicketRefused, match="无效"):
        dev_login.open_ticket(KEY, other, issuer="minyi", used=dev_login.UsedTickets())


def test_a_ticket_is_no_access_token_and_an_access_token_no_ticket() -> None:
    principal = dev_login.Principal(("station_staff",), "330187")
    ticket = dev_login.mint_ticket(KEY, principal, issuer="minyi", next_path="https://evil.example/")
    verifier = TokenVerifier(issuer="minyi", audience="minyi", public_key_pem=public_pem(KEY))
    with pytest.raises(Exception, match=r"401|登录凭证"):
        verifier.verify(ticket)
    session = dev_login.dev_session(KEY, principal, issuer="minyi", audience="minyi")
    assert verifier.verify(session.access_token).roles == {"station_staff"}
    with pytest.raises(dev_login.TicketRefused):
        dev_login.open_ticket(KEY, session.access_token, issuer="minyi", used=dev_login.UsedTickets())
    # The page a ticket names is on this site, whatever it was minted with.
    assert jwt.decode(ticket, options={"verify_signature": False})["next"] == "/work"


def test_the_command_line_names_what_a_principal_lacks() -> None:
    assert dev_login.principal_problems(dev_login.Principal(("deputy",))) == ["--deputy is needed for the role deputy"]
    assert dev_login.principal_problems(dev_login.Principal(("unit",), unit_id="u")) == []
    assert any("no pages" in p for p in dev_login.principal_problems(dev_login.Principal(("citizen",))))
    assert dev_login.principal_problems(dev_login.Principal(("station_staff",)))
    assert dev_login.default_next(("npc_staff",)) == "/console" and dev_login.default_next(("deputy",)) == "/work"


# ---- /login where sign-in is not set up --------------------------------------------------------------


def _app(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    secret = tmp_path / "web-secret"
    secret.write_bytes(SECRET)
    proxy = tmp_path / "proxy-secret"
    proxy.write_text("p" * 40)
    app = build_app(Settings(home=tmp_path, web_secret_file=secret, proxy_secret_file=proxy, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web")


async def test_without_a_provider_and_without_development_secrets_login_says_it_is_not_configured(
        tmp_path: Path) -> None:
    async with _app(tmp_path, dev_secrets=False) as client:
        response = await client.get("/login?next=/work")
        assert response.status_code == 503 and response.headers["content-type"].startswith("text/html")
        assert "登录尚未配置" in response.text and "MINYI_OIDC_ISSUER" in response.text
        # The production tier has no development sign-in and no callback to answer.
        ticket = dev_login.mint_ticket(KEY, dev_login.Principal(("deputy",), "330187", deputy_id="d"),
                                       issuer="minyi", next_path="/work")
        assert (await client.get(f"/login/dev?ticket={ticket}")).status_code == 404
        assert (await client.get("/auth/callback?code=x&state=y")).status_code == 404
        assert "minyi_session" not in response.cookies


async def test_with_development_secrets_and_no_provider_login_points_at_login_url(tmp_path: Path) -> None:
    async with _app(tmp_path, dev_secrets=True) as client:
        response = await client.get("/login")
        assert response.status_code == 503 and "minyi login-url" in response.text


async def test_an_unreachable_provider_is_a_page_saying_so(tmp_path: Path) -> None:
    unreachable = {"oidc_issuer": "http://127.0.0.1:9", "oidc_client_id": "minyi-web"}
    async with _app(tmp_path, dev_secrets=False, **unreachable) as client:
        response = await client.get("/login")
        assert response.status_code == 503 and "暂时连不上" in response.text
