"""JWT verification for every service, and signing of development tokens.

Production verifies against the identity provider's JWKS (`MINYI_JWT_JWKS_URL`). The embedded
stack signs with an ES256 key kept under `.minyi/keys/`, whose public half the services load.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import Depends, Request

from shared.errors import Problem
from shared.settings import Settings, get_settings

log = logging.getLogger("minyi.auth")

ROLES: tuple[str, ...] = ("citizen", "deputy", "station_staff", "unit", "npc_staff", "admin", "integration")
ALGORITHM = "ES256"
# The only roles whose `region: ""` means everywhere: a congress staff member or a clerk always
# works for some place, and a token that forgot to say which must not see them all.
EVERYWHERE_ROLES = frozenset({"admin", "integration"})
# What a scoped role cannot act without. A role whose claim is missing is dropped from the caller,
# so the routes of that role answer 403 instead of treating the gap as "all".
_NEEDS_REGION = frozenset({"npc_staff", "station_staff", "admin", "integration"})
# Matches no region code (codes are digits): the scope of a caller that has no region.
NOWHERE = "!"
# Keys each verification path accepts, by the key's type: a token signed with another kind of key
# is refused as invalid instead of reaching a verifier that cannot handle it.
_ALGORITHMS_BY_KEY = {"EC": ["ES256", "ES384", "ES512"], "RSA": ["RS256", "RS384", "RS512", "PS256"],
                      "OKP": ["EdDSA"]}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims, nothing more."""

    sub: str
    roles: frozenset[str]
    region: str
    deputy_id: str | None = None
    unit_id: str | None = None
    # Registry sources an integration credential may write (the `sources` claim).
    sources: frozenset[str] = frozenset()
    # Roles the token named but could not hold for want of their claims (see `scoped_roles`).
    incomplete: frozenset[str] = frozenset()

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def everywhere(self) -> bool:
        return self.region == ""

    def can_see(self, region_code: str | None) -> bool:
        """A caller sees a region when its code starts with the caller's prefix ("" = everywhere)."""
        if self.everywhere:
            return True
        return region_code is not None and region_code.startswith(self.region)


def scoped_roles(roles: frozenset[str], *, region: str | None, deputy_id: str | None, unit_id: str | None
                 ) -> tuple[frozenset[str], frozenset[str], str]:
    """The roles a token may act in, the ones it may not for want of their claims, and its scope.

    A deputy needs `deputy_id`, a unit `unit_id`; staff, admins and integrations need a `region`
    claim, and `""` (everywhere) counts only on an admin or integration token. Anything else gets
    the scope `NOWHERE`, which no region code starts with.
    """
    everywhere_allowed = bool(roles & EVERYWHERE_ROLES)
    if region is None or (region == "" and not everywhere_allowed):
        scope = NOWHERE
    else:
        scope = region
    missing: set[str] = set()
    if "deputy" in roles and not deputy_id:
        missing.add("deputy")
    if "unit" in roles and not unit_id:
        missing.add("unit")
    if scope == NOWHERE:
        missing |= roles & _NEEDS_REGION
    return frozenset(roles - missing), frozenset(missing), scope


# ---- keys -------------------------------------------------------------------------------------


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def ensure_dev_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load the development signing key, creating it (0600) on first use."""
    if path.exists():
        return load_signing_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(path)
    public_key_file(path).write_bytes(public_pem(key))
    return key


def public_key_file(signing_key_file: Path) -> Path:
    return signing_key_file.with_name("jwt-public-key.pem")


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key_pem: bytes) -> str:
    return hashlib.sha256(public_key_pem).hexdigest()[:16]


def sign_token(
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: str,
    audience: str,
    sub: str,
    roles: list[str],
    region: str = "",
    deputy_id: str | None = None,
    unit_id: str | None = None,
    sources: Iterable[str] = (),
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "roles": roles,
        "region": region,
    }
    if deputy_id:
        claims["deputy_id"] = deputy_id
    if unit_id:
        claims["unit_id"] = unit_id
    if sources:
        claims["sources"] = sorted(sources)
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(public_pem(key))})


# ---- verification -----------------------------------------------------------------------------


class TokenVerifier:
    """Checks signature, issuer, audience and expiry, and maps the claims to a Principal."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_key_pem: bytes | None = None,
        jwks_url: str | None = None,
        leeway_seconds: int = 30,
        jwks_refresh_cooldown_seconds: float = 5.0,
    ) -> None:
        if not public_key_pem and not jwks_url:
            raise ValueError("a public key or a JWKS URL is needed to verify tokens")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self._public_key = serialization.load_pem_public_key(public_key_pem) if public_key_pem else None
        self._static_algorithms = _algorithms_for(self._public_key)
        self._jwks_url = jwks_url
        # An unknown kid refetches the set (a provider's rotation), but at most once per cooldown, so
        # a stream of tokens with made-up kids cannot turn into a stream of fetches.
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5,
                                     cooldown_duration=jwks_refresh_cooldown_seconds) if jwks_url else None

    @property
    def fetches_keys(self) -> bool:
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        claims = self._decode(token)
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _unauthorized("登录凭证中的角色格式不正确。")
        region = claims.get("region")
        if region is not None and (not isinstance(region, str) or (region and not region.isalnum())):
            raise _unauthorized("登录凭证中的地区格式不正确。")
        sources = claims.get("sources") or []
        if not isinstance(sources, list) or not all(isinstance(x, str) and x for x in sources):
            raise _unauthorized("登录凭证中的数据来源格式不正确。")
        deputy_id, unit_id = _optional_text(claims, "deputy_id"), _optional_text(claims, "unit_id")
        held, incomplete, scope = scoped_roles(frozenset(roles), region=region, deputy_id=deputy_id, unit_id=unit_id)
        return Principal(sub=str(claims["sub"]), roles=held, region=scope, deputy_id=deputy_id, unit_id=unit_id,
                         sources=frozenset(sources), incomplete=incomplete)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            if self._jwks is not None:
                jwk = self._jwks.get_signing_key_from_jwt(token)
                key: Any = jwk.key
                algorithms = [jwk.algorithm_name] if jwk.algorithm_name else _ALGORITHMS_BY_KEY.get(jwk.key_type, [])
            else:
                key = self._public_key
                algorithms = self._static_algorithms
            return dict(jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            ))
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("登录凭证已过期，请重新登录。") from exc
        except jwt.PyJWKClientConnectionError as exc:
            # The provider's keys are out of reach: the caller's token may well be good.
            log.warning("JWKS at %s unreachable: %s", self._jwks_url, exc)
            raise Problem(503, "暂时无法验证登录凭证，请稍后再试。", headers={"Retry-After": "5"}) from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # TypeError: a token whose header names an algorithm of another key type.
            raise _unauthorized("登录凭证无效。") from exc


def _optional_text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _unauthorized(f"登录凭证中的 {name} 格式不正确。")
    return value


def _algorithms_for(key: Any) -> list[str]:
    if key is None:
        return []
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _ALGORITHMS_BY_KEY["EC"]
    if isinstance(key, rsa.RSAPublicKey):
        return _ALGORITHMS_BY_KEY["RSA"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _ALGORITHMS_BY_KEY["OKP"]
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="minyi"'})


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    if settings.jwt_jwks_url:
        return TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_url=settings.jwt_jwks_url,
            leeway_seconds=settings.jwt_leeway_seconds,
        )
    key_file = settings.jwt_public_key_file or public_key_file(settings.dev_signing_key_file)
    if not key_file.exists():
        raise RuntimeError(
            f"no JWT verification key at {key_file}; set MINYI_JWT_JWKS_URL or MINYI_JWT_PUBLIC_KEY_FILE"
        )
    return TokenVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        public_key_pem=key_file.read_bytes(),
        leeway_seconds=settings.jwt_leeway_seconds,
    )


@lru_cache(maxsize=1)
def _default_verifier() -> TokenVerifier:
    return verifier_from_settings(get_settings())


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, which costs more
# than the checks themselves on every request.
async def get_verifier(request: Request) -> TokenVerifier:
    """The app may carry its own verifier (tests, multi-tenant setups); else the settings decide."""
    verifier = getattr(request.app.state, "token_verifier", None)
    return verifier if verifier is not None else _default_verifier()


async def current_principal(request: Request, verifier: TokenVerifier = Depends(get_verifier)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("请先登录：缺少 Bearer 登录凭证。")
    if verifier.fetches_keys:
        # A JWKS refresh is a blocking HTTP call; keep it off the event loop.
        return await asyncio.to_thread(verifier.verify, token.strip())
    return verifier.verify(token.strip())


async def optional_principal(request: Request, verifier: TokenVerifier = Depends(get_verifier)
                             ) -> Principal | None:
    """For endpoints open to anyone: no token is fine, a bad token is still 401."""
    if not request.headers.get("authorization"):
        return None
    return await current_principal(request, verifier)


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency that yields the caller when it holds one of `roles`, else 403."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.has_any(roles):
            lacking = sorted(principal.incomplete.intersection(roles))
            if lacking:
                raise Problem(403, "登录凭证缺少该角色所需的声明（" + "、".join(_CLAIM_OF[r] for r in lacking)
                              + "），不能执行此操作。")
            raise Problem(403, "当前角色无权执行此操作。")
        return principal

    return dependency


_CLAIM_OF = {"deputy": "deputy_id", "unit": "unit_id", "npc_staff": "region", "station_staff": "region",
             "admin": "region", "integration": "region"}


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require_region(principal: Principal, region_code: str | None) -> None:
    if not principal.can_see(region_code):
        raise Problem(403, "该地区不在您的管辖范围内。")
