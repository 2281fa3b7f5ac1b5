"""Tokens that fail closed: scoped roles without their claims, keys of another kind, and the
production path through a provider's JWKS (served over real HTTP, rotated, unreachable)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI

from minyi.servers import free_port
from shared.auth import NOWHERE, Principal, TokenVerifier, public_pem, require_roles, scoped_roles, sign_token
from shared.errors import Problem, install_problem_handlers

ISSUER, AUDIENCE = "minyi", "minyi"
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def ec_token(**claims: Any) -> str:
    base: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "sub": "u1", "roles": ["npc_staff"],
                            "region": "320923"}
    base.update(claims)
    return sign_token(EC_KEY, **base)


def raw_token(key: Any, algorithm: str, *, kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now, "exp": now + 600, "roles": ["npc_staff"],
            "region": "320923", **claims}
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def app_with(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/staff")
    async def staff(who: Principal = Depends(require_roles("npc_staff", "admin"))) -> dict[str, object]:
        return {"region": who.region, "everywhere": who.everywhere, "roles": sorted(who.roles)}

    @app.get("/deputy")
    async def deputy(who: Principal = Depends(require_roles("deputy"))) -> dict[str, object]:
        return {"deputy_id": who.deputy_id}

    @app.get("/unit")
    async def unit(who: Principal = Depends(require_roles("unit"))) -> dict[str, object]:
        return {"unit_id": who.unit_id}

    return app


async def get(app: FastAPI, path: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


EC_APP = app_with(TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public_pem(EC_KEY)))


# ---- scoped roles need their claims ----------------------------------------------------------------


def test_scoped_roles_by_hand() -> None:
    staff = frozenset({"npc_staff"})
    assert scoped_roles(staff, region="3309", deputy_id=None, unit_id=None) == (staff, frozenset(), "3309")
    assert scoped_roles(staff, region=None, deputy_id=None, unit_id=None) == (frozenset(), staff, NOWHERE)
    assert scoped_roles(staff, region="", deputy_id=None, unit_id=None) == (frozenset(), staff, NOWHERE)
    admin = frozenset({"admin", "npc_staff"})
    assert scoped_roles(admin, region="", deputy_id=None, unit_id=None) == (admin, frozenset(), "")
    both = frozenset({"deputy", "unit", "citizen"})
    assert scoped_roles(both, region=None, deputy_id="d1", unit_id=None) == (
        frozenset({"deputy", "citizen"}), frozenset({"unit"}), NOWHERE)


@pytest.mark.parametrize("region", [None, ""])
async def test_staff_without_a_region_is_refused_not_given_everything(region: str | None) -> None:
    claims: dict[str, Any] = {"roles": ["npc_staff"]}
    token = raw_token(EC_KEY, "ES256", **claims) if region is None else ec_token(region=region)
    if region is None:
        token = jwt.encode({k: v for k, v in jwt.decode(token, options={"verify_signature": False}).items()
                            if k != "region"}, EC_KEY, algorithm="ES256")
    resp = await get(EC_APP, "/staff", token)
    assert resp.status_code == 403, resp.text
    assert "region" in resp.json()["detail"]


async def test_only_an_admin_token_reaches_everywhere() -> None:
    resp = await get(EC_APP, "/staff", ec_token(roles=["admin"], region=""))
    assert resp.status_code == 200
    assert resp.json() == {"region": "", "everywhere": True, "roles": ["admin"]}
    county = await get(EC_APP, "/staff", ec_token(roles=["npc_staff"], region="320923"))
    assert county.json() == {"region": "320923", "everywhere": False, "roles": ["npc_staff"]}


async def test_deputy_and_unit_without_their_ids_get_403() -> None:
    no_deputy = await get(EC_APP, "/deputy", ec_token(roles=["deputy"]))
    assert no_deputy.status_code == 403 and "deputy_id" in no_deputy.json()["detail"]
    no_unit = await get(EC_APP, "/unit", ec_token(roles=["unit"]))
    assert no_unit.status_code == 403 and "unit_id" in no_unit.json()["detail"]
    ok = await get(EC_APP, "/unit", ec_token(roles=["unit"], unit_id="u-7"))
    assert ok.status_code == 200 and ok.json() == {"unit_id": "u-7"}


def test_a_principal_without_a_region_sees_nothing() -> None:
    nowhere = Principal("s", frozenset({"deputy"}), NOWHERE, deputy_id="d")
    assert not nowhere.can_see("320923") and not nowhere.can_see("") and not nowhere.everywhere


def test_sources_claim_is_carried() -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public_pem(EC_KEY))
    who = verifier.verify(ec_token(roles=["integration"], region="", sources=["population", "migrant"]))
    assert who.sources == frozenset({"population", "migrant"}) and who.everywhere
    with pytest.raises(Problem) as bad:
        verifier.verify(ec_token(roles=["integration"], region="", sources=[""]))
    assert bad.value.status == 401


# ---- a key of another kind ---------------------------------------------------------------------------


async def test_an_rs256_token_sent_to_the_ec_key_is_401_not_500() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = await get(EC_APP, "/staff", raw_token(rsa_key, "RS256"))
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"] == "登录凭证无效。"
    # A shared-secret token is never accepted where a public key verifies.
    hs = raw_token(b"s" * 32, "HS256")
    assert (await get(EC_APP, "/staff", hs)).status_code == 401


# ---- the production path: a provider's JWKS over HTTP ---------------------------------------------


class Provider:
    """An identity provider's JWKS endpoint: keys can be rotated, and the endpoint taken down."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.down = False
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if provider.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [provider.jwk(kid, key) for kid, key in provider.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def jwk(kid: str, key: Any) -> dict[str, Any]:
        public = key.public_key()
        alg = "RS256" if isinstance(public, rsa.RSAPublicKey) else "ES256"
        data = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(public))
        return {**data, "kid": kid, "alg": alg, "use": "sig"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks"


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    p.thread.start()
    try:
        yield p
    finally:
        p.server.shutdown()
        p.server.server_close()


async def test_jwks_verifies_rotates_and_fails_closed(provider: Provider) -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.keys["k-2026a"] = old
    app = app_with(TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=provider.url,
                                 jwks_refresh_cooldown_seconds=0.5))

    first = await get(app, "/staff", raw_token(old, "RS256", kid="k-2026a"))
    assert first.status_code == 200 and first.json()["region"] == "320923"

    # The provider rotates: a token under the new kid makes the verifier fetch the set again.
    new = ec.generate_private_key(ec.SECP256R1())
    provider.keys = {"k-2026b": new}
    fetched = provider.fetches
    time.sleep(0.6)  # the refresh cooldown is the point here: after it, the new kid is fetched once
    rotated = await get(app, "/staff", raw_token(new, "ES256", kid="k-2026b"))
    assert rotated.status_code == 200, rotated.text
    assert provider.fetches == fetched + 1

    # Tokens with made-up kids within the cooldown do not each cost a fetch from the provider.
    fetched = provider.fetches
    for n in range(5):
        spray = raw_token(ec.generate_private_key(ec.SECP256R1()), "ES256", kid=f"k-spray-{n}")
        assert (await get(app, "/staff", spray)).status_code == 401
    assert provider.fetches <= fetched + 1

    # A token under a kid the provider never published, and one whose header lies about its key.
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert (await get(app, "/staff", raw_token(stranger, "ES256", kid="k-unknown"))).status_code == 401
    liar = raw_token(old, "RS256", kid="k-2026b")
    assert (await get(app, "/staff", liar)).status_code == 401
    no_kid = raw_token(new, "ES256")
    assert (await get(app, "/staff", no_kid)).status_code == 401


async def test_an_unreachable_provider_is_503_not_an_invalid_token(provider: Provider) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    provider.keys["k1"] = key
    provider.down = True
    app = app_with(TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=provider.url))
    resp = await get(app, "/staff", raw_token(key, "ES256", kid="k1"))
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "5"
    assert "稍后" in resp.json()["detail"]
    provider.down = False
    assert (await get(app, "/staff", raw_token(key, "ES256", kid="k1"))).status_code == 200
