"""A small OpenID Connect provider for the sign-in tests, run as a process of its own.

It speaks the protocol the web tier uses with a real provider: discovery, the authorization
endpoint (a page listing the configured test people, one button each, and a cancel button),
the token endpoint (authorization_code with the PKCE S256 check, refresh_token with rotation;
client_secret_basic or client_secret_post), JWKS and RP-initiated logout. Tokens are ES256,
signed with the key given on the command line, the one the services under test trust: access
tokens carry the contract's claims (`roles`, `region`, `deputy_id`, `unit_id`) for the services'
issuer and audience, ID tokens the provider's own issuer, the client's id and the nonce.

    python tests/oidc_provider.py --port 9000 --key-file key.pem --people people.json \\
        --client-id minyi-web [--client-secret s] [--access-issuer minyi] [--audience minyi]

`GET /_test/stats` counts what happened (grants, refreshes, sign-outs) for the tests to watch.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

CODE_SECONDS = 60


@dataclass
class Person:
    sub: str
    name: str
    roles: list[str]
    region: str = ""
    deputy_id: str | None = None
    unit_id: str | None = None
    # Seconds an access token lasts; a short one makes the web tier refresh at once.
    access_ttl: int = 600


@dataclass
class Grant:
    person: Person
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    scope: str
    made: float


@dataclass
class Provider:
    issuer: str
    key: ec.EllipticCurvePrivateKey
    people: dict[str, Person]
    client_id: str
    client_secret: str | None
    redirect_prefixes: tuple[str, ...]
    access_issuer: str
    audience: str
    codes: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"authorization_code": 0, "refresh_token": 0,
                                                          "refused": 0, "logout": 0})

    def registered(self, uri: str) -> bool:
        return any(uri.startswith(prefix) for prefix in self.redirect_prefixes)

    @property
    def kid(self) -> str:
        pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(pem).hexdigest()[:16]

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def tokens(self, grant: Grant, *, with_id_token: bool) -> dict[str, Any]:
        now = int(time.time())
        person = grant.person
        access: dict[str, Any] = {
            "iss": self.access_issuer, "aud": self.audience, "sub": person.sub, "iat": now, "nbf": now,
            "exp": now + person.access_ttl, "jti": secrets.token_hex(8), "azp": grant.client_id,
            "scope": grant.scope, "roles": person.roles, "region": person.region,
        }
        if person.deputy_id:
            access["deputy_id"] = person.deputy_id
        if person.unit_id:
            access["unit_id"] = person.unit_id
        refresh = secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = grant
        body: dict[str, Any] = {"access_token": self.sign(access), "token_type": "Bearer",
                                "expires_in": person.access_ttl, "refresh_token": refresh, "scope": grant.scope}
        if with_id_token:
            body["id_token"] = self.sign({
                "iss": self.issuer, "aud": grant.client_id, "azp": grant.client_id, "sub": person.sub, "iat": now,
                "exp": now + 300, "auth_time": now, "nonce": grant.nonce, "name": person.name,
            })
        return body


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>{title}</title>"
                        f"<body><main><h1>{title}</h1>{body}</main></body></html>", status_code=status)


def _error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def build(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": provider.issuer,
            "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token",
            "jwks_uri": f"{provider.issuer}/jwks",
            "end_session_endpoint": f"{provider.issuer}/logout",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": ["openid", "profile"],
        }

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        key = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(provider.key.public_key()))
        return {"keys": [{**key, "kid": provider.kid, "use": "sig", "alg": "ES256"}]}

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != provider.client_id or not provider.registered(q.get("redirect_uri", "")):
            # Never redirect to an address not registered for the client.
            return _page("无效的登录请求", "<p>客户端或回调地址未登记。</p>", 400)
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type")
        if "openid" not in q.get("scope", "").split():
            problems.append("scope")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) < 43:
            problems.append("code_challenge")
        if not q.get("state") or not q.get("nonce"):
            problems.append("state/nonce")
        if problems:
            query = urlencode({"error": "invalid_request", "error_description": ",".join(problems),
                               "state": q.get("state", "")})
            return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=303)
        hidden = "".join(f'<input type="hidden" name="{name}" value="{html.escape(q.get(name, ""))}">'
                         for name in ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope"))
        buttons = "".join(f'<li><button type="submit" name="person" value="{html.escape(p.sub)}">'
                          f'{html.escape(p.name)}（{html.escape("、".join(p.roles))}）</button></li>'
                          for p in provider.people.values())
        return _page("测试认证服务：选择登录的人", f'<form method="post" action="/authorize">{hidden}<ul>{buttons}</ul>'
                     '<button type="submit" name="cancel" value="1">取消登录</button></form>')

    @app.post("/authorize")
    async def authorized(client_id: str = Form(), redirect_uri: str = Form(), state: str = Form(),
                         nonce: str = Form(), code_challenge: str = Form(), scope: str = Form(),
                         person: str = Form(""), cancel: str = Form("")) -> Response:
        if client_id != provider.client_id or not provider.registered(redirect_uri):
            return _page("无效的登录请求", "<p>客户端或回调地址未登记。</p>", 400)
        if cancel or person not in provider.people:
            query = urlencode({"error": "access_denied", "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=303)
        code = secrets.token_urlsafe(24)
        provider.codes[code] = Grant(provider.people[person], client_id, redirect_uri, code_challenge, nonce, scope,
                                     time.time())
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=303)

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != provider.client_id or (provider.client_secret is not None and secret != provider.client_secret):
            provider.stats["refused"] += 1
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = provider.codes.pop(form.get("code", ""), None)  # a code works once
            if grant is None or time.time() - grant.made > CODE_SECONDS:
                provider.stats["refused"] += 1
                return _error("invalid_grant", "unknown, used or expired code")
            if grant.redirect_uri != form.get("redirect_uri") or grant.client_id != client_id:
                provider.stats["refused"] += 1
                return _error("invalid_grant", "redirect_uri or client differs")
            if s256(form.get("code_verifier", "")) != grant.challenge:
                provider.stats["refused"] += 1
                return _error("invalid_grant", "PKCE verifier does not match the challenge")
            provider.stats["authorization_code"] += 1
            return JSONResponse(provider.tokens(grant, with_id_token=True), headers={"Cache-Control": "no-store"})
        if grant_type == "refresh_token":
            grant = provider.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated on use
            if grant is None:
                provider.stats["refused"] += 1
                return _error("invalid_grant", "unknown or used refresh token")
            provider.stats["refresh_token"] += 1
            return JSONResponse(provider.tokens(grant, with_id_token=False), headers={"Cache-Control": "no-store"})
        return _error("unsupported_grant_type", str(grant_type))

    @app.get("/logout")
    async def logout(client_id: str = "", post_logout_redirect_uri: str = "") -> Response:
        provider.stats["logout"] += 1
        if client_id == provider.client_id and provider.registered(post_logout_redirect_uri):
            return RedirectResponse(post_logout_redirect_uri, status_code=303)
        return _page("已退出", "<p>您已退出测试认证服务。</p>")

    @app.get("/_test/stats")
    async def stats() -> dict[str, int]:
        return dict(provider.stats)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-file", type=Path, required=True, help="PEM EC private key tokens are signed with")
    parser.add_argument("--people", type=Path, required=True, help="JSON list of the people who may sign in")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-prefix", action="append",
                        help="redirect and post-logout URIs must start with one of these (default http://127.0.0.1:)")
    parser.add_argument("--access-issuer", help="the access tokens' iss (default: this provider's issuer)")
    parser.add_argument("--audience", default="minyi", help="the access tokens' aud")
    args = parser.parse_args()
    key = serialization.load_pem_private_key(args.key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issuer = f"http://127.0.0.1:{args.port}"
    people = {p["sub"]: Person(**p) for p in json.loads(args.people.read_text(encoding="utf-8"))}
    provider = Provider(issuer=issuer, key=key, people=people, client_id=args.client_id,
                        client_secret=args.client_secret, redirect_prefixes=tuple(args.redirect_prefix or ["http://127.0.0.1:"]),
                        access_issuer=args.access_issuer or issuer, audience=args.audience)
    uvicorn.run(build(provider), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
