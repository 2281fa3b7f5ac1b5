"""Every service verifies JWTs through one dependency: issuer, audience, expiry, key and roles."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI

from shared.auth import Principal, TokenVerifier, ensure_dev_signing_key, public_pem, require_roles, sign_token
from shared.errors import install_problem_handlers

ISSUER, AUDIENCE = "minyi", "minyi"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> ec.EllipticCurvePrivateKey:
    return ensure_dev_signing_key(tmp_path_factory.mktemp("keys") / "jwt-signing-key.pem")


@pytest.fixture(scope="module")
def app(key: ec.EllipticCurvePrivateKey) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public_pem(key))

    @app.get("/staff-only")
    def staff_only(who: Principal = Depends(require_roles("npc_staff", "admin"))) -> dict[str, object]:
        return {"sub": who.sub, "roles": sorted(who.roles), "region": who.region, "deputy_id": who.deputy_id}

    return app


def token(key: ec.EllipticCurvePrivateKey, **overrides: object) -> str:
    claims: dict[str, object] = {"issuer": ISSUER, "audience": AUDIENCE, "sub": "u1", "roles": ["npc_staff"],
                                 "region": "320923"}
    claims.update(overrides)
    return sign_token(key, **claims)  # type: ignore[arg-type]


async def call(app: FastAPI, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/staff-only", headers=headers)


async def test_a_valid_token_yields_the_callers_roles_and_region(app: FastAPI, key: ec.EllipticCurvePrivateKey) -> None:
    resp = await call(app, token(key, roles=["npc_staff", "deputy"], deputy_id="d-7"))
    assert resp.status_code == 200
    assert resp.json() == {"sub": "u1", "roles": ["deputy", "npc_staff"], "region": "320923", "deputy_id": "d-7"}


@pytest.mark.parametrize(
    ("case", "expected_detail"),
    [
        ("other_key", "登录凭证无效。"),
        ("expired", "登录凭证已过期，请重新登录。"),
        ("wrong_issuer", "登录凭证无效。"),
        ("wrong_audience", "登录凭证无效。"),
        ("tampered", "登录凭证无效。"),
        ("not_a_jwt", "登录凭证无效。"),
        ("missing", "请先登录：缺少 Bearer 登录凭证。"),
    ],
)
async def test_bad_tokens_are_refused_with_401_problem(
    app: FastAPI, key: ec.EllipticCurvePrivateKey, case: str, expected_detail: str
) -> None:
    bearer: str | None
    if case == "other_key":
        bearer = token(ec.generate_private_key(ec.SECP256R1()))
    elif case == "expired":
        bearer = token(key, ttl_seconds=60, now=time.time() - 3600)
    elif case == "wrong_issuer":
        bearer = token(key, issuer="someone-else")
    elif case == "wrong_audience":
        bearer = token(key, audience="another-app")
    elif case == "tampered":
        head, body, sig = token(key).split(".")
        forged = jwt.utils.base64url_encode(b'{"sub":"u1","roles":["admin"],"iss":"minyi","aud":"minyi",'
                                            b'"exp":9999999999,"region":""}').decode()
        bearer = f"{head}.{forged}.{sig}"
    elif case == "not_a_jwt":
        bearer = "hello"
    else:
        bearer = None
    resp = await call(app, bearer)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    body = resp.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    assert body["detail"] == expected_detail


async def test_a_token_without_the_role_is_refused_with_403(app: FastAPI, key: ec.EllipticCurvePrivateKey) -> None:
    resp = await call(app, token(key, roles=["citizen", "deputy"]))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == "当前角色无权执行此操作。"


def test_region_prefix_scoping() -> None:
    county = Principal("s", frozenset({"npc_staff"}), "320923")
    everywhere = Principal("s", frozenset({"admin"}), "")
    assert county.can_see("320923101") and county.can_see("320923")
    assert not county.can_see("320924001") and not county.can_see(None) and not county.can_see("32092")
    assert everywhere.can_see("110101")


def test_unknown_roles_cannot_be_signed(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        token(key, roles=["superuser"])


def test_minyi_token_prints_a_jwt_the_stack_accepts(tmp_path: Path) -> None:
    env = {"MINYI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "minyi.cli", "token", "--role", "deputy", "--region", "320923", "--deputy", "D1",
         "--ttl", "120"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()
    public = (tmp_path / "keys" / "jwt-public-key.pem").read_bytes()
    who = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public).verify(out)
    assert who == Principal("D1", frozenset({"deputy"}), "320923", deputy_id="D1")
    claims = jwt.decode(out, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120

    bad = subprocess.run([sys.executable, "-m", "minyi.cli", "token", "--role", "king"],
                         capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2 and "unknown role king" in bad.stderr
