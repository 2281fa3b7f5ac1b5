"""Grid platforms as routing uses them: their scopes for decisions, their secrets for signatures
and, on the open311 transport, their API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.domain import PlatformScope
from services.routing.models import GridPlatform
from shared.pii import Keyring, decrypt, encrypt

# Associated data of the encrypted secret: a blob copied into another column does not decrypt.
SECRET_CONTEXT = "routing.grid_platforms.secret"
# The GeoReport API key is sealed the same way: whoever reads the database cannot post as Minyi.
API_KEY_CONTEXT = "routing.grid_platforms.api_key"


def seal(keyring: Keyring, secret: str) -> bytes:
    return encrypt(keyring, secret, context=SECRET_CONTEXT)


def secret_of(keyring: Keyring, platform: GridPlatform) -> bytes:
    return decrypt(keyring, platform.secret, context=SECRET_CONTEXT).encode()


def seal_api_key(keyring: Keyring, api_key: str) -> bytes:
    return encrypt(keyring, api_key, context=API_KEY_CONTEXT)


def api_key_of(keyring: Keyring, platform: GridPlatform) -> str:
    return decrypt(keyring, platform.api_key, context=API_KEY_CONTEXT) if platform.api_key is not None else ""


async def scopes(session: AsyncSession) -> list[PlatformScope]:
    rows = (await session.execute(
        select(GridPlatform.id, GridPlatform.region_prefixes, GridPlatform.categories))).all()
    return [PlatformScope(r.id, tuple(r.region_prefixes), frozenset(r.categories)) for r in rows]
