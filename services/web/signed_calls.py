"""What every page's calls to the services share: the signed-in person's token on each call.

The pages never widen what a token covers: each call carries it unchanged, so the services alone
decide what the person sees and may do.
"""

from __future__ import annotations

from services.web.upstreams import Upstreams
from services.web.work_session import WorkSession


class SignedInCalls:
    """The services, called on behalf of one signed-in person."""

    def __init__(self, up: Upstreams, session: WorkSession) -> None:
        self.up = up
        self.session = session

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """The person's Bearer token, and the key that makes a retried write happen once."""
        headers = dict(self.session.bearer)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def unit_names(self, region_code: str) -> dict[str, str]:
        """The region's handling units, id to name (a public list, kept by county: six digits at most)."""
        return {u.id: u.name for u in await self.up.units(region_code[:6])}
