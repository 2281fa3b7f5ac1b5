"""The development sign-in: `minyi login-url` prints a one-time link that signs a browser in.

The link carries a ticket: a JWT signed with the development key (the one `minyi token` uses), for
its own audience (`TICKET_AUDIENCE`, so no access token passes for a ticket or a ticket for an
access token), valid `TICKET_SECONDS`, with a `jti`. The web tier takes it only where development
secrets are on (MINYI_DEV_SECRETS); then it signs a development access token for the principal
the ticket names and opens a session. A production web tier answers the link with a 404 page.

Each ticket works once: the web tier remembers the `jti`s it took until they expire. That memory
is in the process, which is enough for this development-only path (one web process under
`minyi up`); behind several replicas a ticket could be taken once by each, within its few minutes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from services.web.work_session import CONSOLE_ROLES, MAX_AGE_SECONDS, WORK_ROLES, WorkSession, safe_next
from shared.auth import ALGORITHM, ensure_dev_signing_key, key_id, public_pem, sign_token
from shared.settings import Settings

TICKET_AUDIENCE = "minyi-web-login"
TICKET_SECONDS = 5 * 60
SIGN_IN_ROLES = WORK_ROLES | CONSOLE_ROLES
DEV_LOGIN_PATH = "/login/dev"


class TicketRefused(Exception):
    """A ticket that is not taken; `message` is for the person, in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Principal:
    roles: tuple[str, ...]
    region: str = ""
    deputy_id: str | None = None
    unit_id: str | None = None
    name: str = ""

    @property
    def sub(self) -> str:
        return self.deputy_id or self.unit_id or f"dev-{self.roles[0]}"


def principal_problems(principal: Principal) -> list[str]:
    """What keeps the services from accepting this principal's token (as `shared.auth.scoped_roles`
    reads it), in English for the command line."""
    problems = []
    unknown = sorted(set(principal.roles) - SIGN_IN_ROLES)
    if not principal.roles:
        problems.append("at least one --role is needed")
    if unknown:
        problems.append(f"--role {', '.join(unknown)} has no pages; choose from {', '.join(sorted(SIGN_IN_ROLES))}")
    if principal.region and not principal.region.isdigit():
        problems.append("--region is an administrative code prefix of digits, e.g. 320923")
    if "deputy" in principal.roles and not principal.deputy_id:
        problems.append("--deputy is needed for the role deputy")
    if "unit" in principal.roles and not principal.unit_id:
        problems.append("--unit is needed for the role unit")
    if set(principal.roles) & {"station_staff", "npc_staff"} and not principal.region:
        problems.append("--region is needed for the roles station_staff and npc_staff")
    return problems


def default_next(roles: tuple[str, ...]) -> str:
    return "/console" if set(roles) & CONSOLE_ROLES and not set(roles) & WORK_ROLES else "/work"


def signing_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The development key: the operator's file, else `minyi token`'s under MINYI_HOME (made on first use)."""
    path: Path = settings.dev_login_key_file or settings.dev_signing_key_file
    return ensure_dev_signing_key(path)


def mint_ticket(key: ec.EllipticCurvePrivateKey, principal: Principal, *, issuer: str, next_path: str,
                now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer, "aud": TICKET_AUDIENCE, "sub": principal.sub, "iat": issued, "exp": issued + TICKET_SECONDS,
        "jti": str(uuid.uuid4()), "roles": list(principal.roles), "region": principal.region,
        "next": safe_next(next_path, default_next(principal.roles)),
    }
    for name in ("deputy_id", "unit_id"):
        if getattr(principal, name):
            claims[name] = getattr(principal, name)
    if principal.name:
        claims["name"] = principal.name
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(public_pem(key))})


def login_url(base_url: str, ticket: str) -> str:
    return f"{base_url.rstrip('/')}{DEV_LOGIN_PATH}?ticket={ticket}"


class UsedTickets:
    """The `jti`s taken, until their tickets expire (in this process only; see the module's note)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def take(self, jti: str, expires_at: float, now: float) -> bool:
        """True the first time a `jti` is taken, False after."""
        self._until = {k: v for k, v in self._until.items() if v >= now}
        if jti in self._until:
            return False
        self._until[jti] = expires_at
        return True


def open_ticket(key: ec.EllipticCurvePrivateKey, ticket: str, *, issuer: str, used: UsedTickets,
                now: float | None = None) -> tuple[Principal, str]:
    """The principal and the page a ticket names, or TicketRefused."""
    moment = time.time() if now is None else now
    try:
        # Expiry is checked below against `moment`, so tests may name the time.
        claims = jwt.decode(ticket, key.public_key(), algorithms=[ALGORITHM], audience=TICKET_AUDIENCE,
                            issuer=issuer, options={"require": ["exp", "iat", "jti", "sub"], "verify_exp": False,
                                                    "verify_iat": False, "verify_nbf": False})
        expires_at = float(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise TicketRefused("这个登录链接无效。请重新运行 minyi login-url 生成新的链接。") from None
    if moment > expires_at + 5:
        raise TicketRefused("这个登录链接已经过期（有效期 5 分钟）。请重新运行 minyi login-url 生成新的链接。")
    roles = tuple(r for r in claims.get("roles") or [] if isinstance(r, str))
    principal = Principal(roles=roles, region=str(claims.get("region") or ""), deputy_id=claims.get("deputy_id"),
                          unit_id=claims.get("unit_id"), name=str(claims.get("name") or ""))
    if not roles or principal_problems(principal):
        raise TicketRefused("这个登录链接无效。请重新运行 minyi login-url 生成新的链接。")
    if not used.take(str(claims["jti"]), expires_at, moment):
        raise TicketRefused("这个登录链接已经用过了，每个链接只能登录一次。请重新运行 minyi login-url 生成新的链接。")
    return principal, safe_next(str(claims.get("next") or ""), default_next(roles))


def dev_session(key: ec.EllipticCurvePrivateKey, principal: Principal, *, issuer: str, audience: str,
                now: float | None = None) -> WorkSession:
    """A session with a development access token the services accept (as `minyi token` signs it);
    it cannot be refreshed and ends with its token, at the session's maximum age."""
    moment = time.time() if now is None else now
    token = sign_token(key, issuer=issuer, audience=audience, sub=principal.sub, roles=list(principal.roles),
                       region=principal.region, deputy_id=principal.deputy_id, unit_id=principal.unit_id,
                       ttl_seconds=MAX_AGE_SECONDS, now=moment)
    return WorkSession(sub=principal.sub, roles=principal.roles, region=principal.region, access_token=token,
                       expires_at=int(moment) + MAX_AGE_SECONDS, deputy_id=principal.deputy_id,
                       unit_id=principal.unit_id, name=principal.name or principal.sub, created_at=moment,
                       seen_at=moment)
