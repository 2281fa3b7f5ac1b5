"""OpenID Connect against the deployment's identity provider: authorization code flow with PKCE (S256).

`/login` sends the browser to the provider's authorization endpoint with a fresh `state`, `nonce`
and PKCE challenge (kept meanwhile in a sealed cookie, see `signin_state`); `/auth/callback`
exchanges the code for tokens here, server to server, and checks the ID token (signature by the
provider's JWKS, issuer, audience, expiry, nonce). The person's roles and scope come from the
ACCESS token, which is what the services verify (`MINYI_JWT_ISSUER`, `MINYI_JWT_AUDIENCE`, the same
JWKS): the pages never show more than the services will answer. Access tokens are refreshed with
the refresh token shortly before they run out (`Web.refresher`).

The provider is found by discovery (`{issuer}/.well-known/openid-configuration`), kept an hour;
its keys are fetched again when a token names a key not seen yet (a rotation), at most every few
seconds.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from services.web.work_session import CONSOLE_ROLES, WORK_ROLES, WorkSession
from shared.settings import Settings

log = logging.getLogger("minyi.web.oidc")

DISCOVERY_SECONDS = 3600.0
JWKS_REFETCH_COOLDOWN_SECONDS = 10.0
LEEWAY_SECONDS = 30
# Keys of other types than these are refused: a provider's keys are asymmetric, and a token that
# names an HMAC algorithm must not be checked with a public key as its secret.
ALGORITHMS_BY_KEY = {"EC": ["ES256", "ES384", "ES512"], "RSA": ["RS256", "RS384", "RS512", "PS256", "PS384"],
                     "OKP": ["EdDSA"]}
SIGN_IN_ROLES = WORK_ROLES | CONSOLE_ROLES


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered something that is not the protocol."""


class SignInRefused(Exception):
    """The provider or its tokens refused this sign-in; `message` is for the person, in Chinese."""

    def __init__(self, message: str, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.message = message
        self.reason = reason
        self.status = status


# ---- pure parts ------------------------------------------------------------------------------------


def new_secret() -> str:
    """A value for `state`, `nonce` or a PKCE code verifier (43 characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636 §4.2): BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Provider:
    """What discovery told about the provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None
    basic_auth: bool = True  # client_secret_basic, else client_secret_post

    @classmethod
    def from_discovery(cls, document: dict[str, Any], expected_issuer: str) -> Provider:
        # OpenID Connect Discovery §4.3: the document's issuer must be exactly the one configured.
        if document.get("issuer") != expected_issuer:
            raise ProviderUnavailable(f"discovery names issuer {document.get('issuer')!r}, not {expected_issuer!r}")
        try:
            methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            return cls(issuer=expected_issuer, authorization_endpoint=str(document["authorization_endpoint"]),
                       token_endpoint=str(document["token_endpoint"]), jwks_uri=str(document["jwks_uri"]),
                       end_session_endpoint=document.get("end_session_endpoint") or None,
                       basic_auth="client_secret_basic" in methods or "client_secret_post" not in methods)
        except KeyError as exc:
            raise ProviderUnavailable(f"discovery document lacks {exc}") from None


def authorization_url(provider: Provider, *, client_id: str, redirect_uri: str, scopes: str, state: str,
                      nonce: str, verifier: str) -> str:
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scopes,
        "state": state, "nonce": nonce, "code_challenge": code_challenge(verifier), "code_challenge_method": "S256",
    })
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return f"{provider.authorization_endpoint}{separator}{query}"


def end_session_url(provider: Provider, *, client_id: str, after: str) -> str | None:
    """RP-initiated logout: the provider ends its own session and sends the browser to `after`.
    The ID token is not kept (it would not fit in the session cookie), so `client_id` names us."""
    if not provider.end_session_endpoint:
        return None
    separator = "&" if "?" in provider.end_session_endpoint else "?"
    return provider.end_session_endpoint + separator + urlencode(
        {"client_id": client_id, "post_logout_redirect_uri": after})


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def session_of(access_claims: dict[str, Any], id_claims: dict[str, Any], *, access_token: str,
               refresh_token: str | None, now: float) -> WorkSession:
    """The signed-in person from the access token's claims (what the services will see) and the ID
    token's name. Refuses a person who holds none of the roles the workbench and console serve."""
    roles = access_claims.get("roles")
    if not isinstance(roles, list):
        roles = []
    held = tuple(r for r in roles if isinstance(r, str) and r in SIGN_IN_ROLES)
    if not held:
        raise SignInRefused("您的账号还没有开通工作台的权限（人大代表、联络站工作人员、承办单位或人大常委会工作人员）。"
                            "请联系系统管理员开通后再登录。", "no workbench role in the access token", status=403)
    region = access_claims.get("region")
    name = _text(id_claims, "name") or _text(id_claims, "preferred_username") or str(access_claims.get("sub", ""))
    return WorkSession(sub=str(access_claims.get("sub", "")), roles=held,
                       region=region if isinstance(region, str) else "", access_token=access_token,
                       expires_at=float(access_claims["exp"]), deputy_id=_text(access_claims, "deputy_id"),
                       unit_id=_text(access_claims, "unit_id"), name=name, refresh_token=refresh_token,
                       created_at=now, seen_at=now)


def refreshed_session(session: WorkSession, access_claims: dict[str, Any], *, access_token: str,
                      refresh_token: str | None) -> WorkSession:
    """The same person with a new access token; the claims are read again, since an administrator
    may have changed the person's roles meanwhile. The sign-in time (and so the maximum age) stays."""
    roles = access_claims.get("roles")
    held = tuple(r for r in roles if isinstance(r, str) and r in SIGN_IN_ROLES) if isinstance(roles, list) else ()
    region = access_claims.get("region")
    return replace(session, roles=held, region=region if isinstance(region, str) else "", access_token=access_token,
                   expires_at=float(access_claims["exp"]), deputy_id=_text(access_claims, "deputy_id"),
                   unit_id=_text(access_claims, "unit_id"), refresh_token=refresh_token or session.refresh_token)


# ---- the provider, over HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    access_token: str
    access_claims: dict[str, Any]
    id_claims: dict[str, Any]
    refresh_token: str | None


class OidcClient:
    """This web tier as the provider's client (one per process; the provider's answers are cached)."""

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise ValueError("MINYI_OIDC_ISSUER and MINYI_OIDC_CLIENT_ID are both needed")
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = _read_secret(settings)
        self.scopes = settings.oidc_scopes if "openid" in settings.oidc_scopes.split() else \
            f"openid {settings.oidc_scopes}".strip()
        self.redirect_url = settings.oidc_redirect_url
        self.access_issuer = settings.jwt_issuer
        self.access_audience = settings.jwt_audience
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        self._provider: Provider | None = None
        self._provider_at = 0.0
        self._keys: jwt.PyJWKSet | None = None
        self._keys_at = 0.0

    async def close(self) -> None:
        await self._http.aclose()

    async def provider(self) -> Provider:
        now = time.monotonic()
        if self._provider is None or now - self._provider_at > DISCOVERY_SECONDS:
            document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            self._provider, self._provider_at = Provider.from_discovery(document, self.issuer), now
        return self._provider

    async def exchange(self, *, code: str, verifier: str, redirect_uri: str, nonce: str) -> Tokens:
        """The authorization code for tokens; the ID token and the access token checked."""
        provider = await self.provider()
        body = await self._token_request(provider, {"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": redirect_uri, "code_verifier": verifier})
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("认证服务没有返回身份凭证，请重新登录。", "no id_token in the token answer")
        id_claims = await self._verify(id_token, issuer=provider.issuer, audience=self.client_id, what="ID token")
        if id_claims.get("nonce") != nonce:
            raise SignInRefused("登录凭证与本次登录不匹配，请重新登录。", "ID token nonce differs")
        audiences = id_claims.get("aud")
        if isinstance(audiences, list) and len(audiences) > 1 and id_claims.get("azp") != self.client_id:
            raise SignInRefused("登录凭证不是发给本系统的，请重新登录。", "ID token azp is not this client")
        access_token, access_claims = await self._access(body)
        if access_claims.get("sub") != id_claims.get("sub"):
            raise SignInRefused("登录凭证前后不一致，请重新登录。", "access and ID tokens name different subjects")
        refresh = body.get("refresh_token")
        return Tokens(access_token, access_claims, id_claims, refresh if isinstance(refresh, str) else None)

    async def refresh(self, session: WorkSession) -> WorkSession | None:
        """`Web.refresher`: a new access token for a session about to run out, or None when there
        is no refresh token or the provider will not give one (the session then ends with its token)."""
        if not session.refresh_token:
            return None
        try:
            provider = await self.provider()
            body = await self._token_request(provider, {"grant_type": "refresh_token",
                                                        "refresh_token": session.refresh_token})
            access_token, claims = await self._access(body)
        except (ProviderUnavailable, SignInRefused) as exc:
            log.info("access token not refreshed: %s", exc)
            return None
        if claims.get("sub") != session.sub:
            log.warning("a refreshed access token names another subject; the session ends")
            return None
        refresh = body.get("refresh_token")
        return refreshed_session(session, claims, access_token=access_token,
                                 refresh_token=refresh if isinstance(refresh, str) else None)

    async def logout_url(self, after: str) -> str | None:
        try:
            provider = await self.provider()
        except ProviderUnavailable as exc:
            # Signing out here still happens; the provider's own session stays until it times out.
            log.warning("provider unreachable at sign-out: %s", exc)
            return None
        return end_session_url(provider, client_id=self.client_id, after=after)

    # ---- the wire -----------------------------------------------------------------------------------

    async def _access(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        access_token = body.get("access_token")
        if not isinstance(access_token, str):
            raise SignInRefused("认证服务没有返回访问凭证，请重新登录。", "no access_token in the token answer")
        claims = await self._verify(access_token, issuer=self.access_issuer, audience=self.access_audience,
                                    what="access token")
        return access_token, claims

    async def _token_request(self, provider: Provider, form: dict[str, str]) -> dict[str, Any]:
        auth: tuple[str, str] | None = None
        form = {**form, "client_id": self.client_id}
        if self.client_secret is not None:
            if provider.basic_auth:
                auth = (self.client_id, self.client_secret)
            else:
                form["client_secret"] = self.client_secret
        try:
            response = await self._http.post(provider.token_endpoint, data=form, auth=auth,
                                              headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"token endpoint answered {response.status_code} without JSON")
        if response.status_code != 200:
            error = body.get("error", "")
            # invalid_grant: the code was used, expired, or its verifier did not match; or the
            # refresh token is no longer good. The person signs in again either way.
            raise SignInRefused("登录已失效，请重新登录。", f"token endpoint refused: {error} {response.status_code}")
        return body

    async def _verify(self, token: str, *, issuer: str, audience: str, what: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SignInRefused("登录凭证格式不正确，请重新登录。", f"{what} is not a JWT") from None
        key = await self._key(str(header.get("kid") or ""))
        if key is None:
            raise SignInRefused("登录凭证无法验证，请重新登录。", f"{what} signed with an unknown key")
        algorithms = [key.algorithm_name] if key.algorithm_name in ALGORITHMS_BY_KEY.get(key.key_type, []) \
            else ALGORITHMS_BY_KEY.get(key.key_type, [])
        try:
            return dict(jwt.decode(token, key.key, algorithms=algorithms, audience=audience, issuer=issuer,
                                   leeway=LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud", "sub"]}))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SignInRefused("登录凭证校验没有通过，请重新登录。", f"{what}: {exc}") from None

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        for attempt in (0, 1):
            if self._keys is None or (attempt and now - self._keys_at > JWKS_REFETCH_COOLDOWN_SECONDS):
                provider = await self.provider()
                try:
                    self._keys = jwt.PyJWKSet.from_dict(await self._get_json(provider.jwks_uri))
                except jwt.PyJWKSetError as exc:
                    raise ProviderUnavailable(f"JWKS: {exc}") from None
                self._keys_at = now
            found = [k for k in self._keys.keys if (k.key_id or "") == kid] or (
                self._keys.keys if not kid and len(self._keys.keys) == 1 else [])
            if found:
                return found[0]
        return None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return body


def _read_secret(settings: Settings) -> str | None:
    path = settings.oidc_client_secret_file
    if path is None:
        return None
    secret = path.read_text(encoding="utf-8").strip()
    # An empty file is a public client: the Secret's key exists for every deployment alike.
    return secret or None
