"""Who a report is aimed at: a deputy or a station through its QR code (asked of identity), or a region."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from services.intake.domain import TargetKind
from shared.errors import Problem
from shared.service import Runtime

log = logging.getLogger("minyi.intake.targets")

RESOLVE_SUBJECT = "identity.codes.resolve"
_UNAVAILABLE = "暂时无法核验二维码，请稍后再试。"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    id: str | None
    region_code: str
    name: str | None = None

    @property
    def deputy_id(self) -> str | None:
        return self.id if self.kind == "deputy" else None

    @property
    def station_id(self) -> str | None:
        return self.id if self.kind == "station" else None


# A station's code is scanned again and again (a kiosk, a reception day); asking identity each
# time would cost more than the rest of the report. A revoked code keeps working here for at most
# `MINYI_CODE_CACHE_SECONDS` (15 by default) after identity's own cache lets it go.
CACHE_SIZE = 10_000
_CACHE_KEY = "intake.codes"


def _cache(runtime: Runtime) -> OrderedDict[str, tuple[float, Target | None]]:
    cache: OrderedDict[str, tuple[float, Target | None]] | None = runtime.state.get(_CACHE_KEY)
    if cache is None:
        cache = OrderedDict()
        runtime.state[_CACHE_KEY] = cache
    return cache


async def resolve_code(runtime: Runtime, code: str, timeout: float = 3.0) -> Target | None:
    """The deputy or station behind a code; None for a forged, revoked or malformed one.

    Identity unreachable is not the citizen's mistake: 503, so the client retries the same request.
    """
    cache = _cache(runtime)
    hit = cache.get(code)
    now = time.monotonic()
    if hit is not None and now - hit[0] < runtime.settings.code_cache_seconds:
        return hit[1]
    target = await _ask_identity(runtime, code, timeout)
    cache[code] = (now, target)
    cache.move_to_end(code)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return target


async def _ask_identity(runtime: Runtime, code: str, timeout: float) -> Target | None:
    conn = runtime.broker.config.connection_state.connection
    try:
        msg = await conn.request(RESOLVE_SUBJECT, json.dumps({"code": code}).encode(), timeout=timeout)
        answer = json.loads(msg.data)
    except (NatsTimeout, NoRespondersError, TimeoutError) as exc:
        log.warning("resolving a code failed: %s", type(exc).__name__)
        raise Problem(503, _UNAVAILABLE, headers={"Retry-After": "5"}) from exc
    except json.JSONDecodeError as exc:
        log.error("identity answered a code request with something that is not JSON")
        raise Problem(503, _UNAVAILABLE) from exc
    if not isinstance(answer, dict):
        raise Problem(503, _UNAVAILABLE)
    error = answer.get("error")
    if error == "unavailable":
        raise Problem(503, _UNAVAILABLE, headers={"Retry-After": "5"})
    if error is not None:
        return None
    return Target(kind=answer["kind"], id=answer["id"], region_code=answer["region_code"], name=answer.get("name"))


def region_target(region_code: str) -> Target:
    return Target(kind="region", id=None, region_code=region_code)
