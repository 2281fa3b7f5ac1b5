"""Bus subscriptions of the scoring service."""

from __future__ import annotations

from collections.abc import Sequence

from shared.bus.consumer import Subscription
from shared.service import Runtime


def subscriptions(runtime: Runtime) -> Sequence[Subscription]:
    return ()
