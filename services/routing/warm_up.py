"""What routing does once at start so that its first reports and lookups are not the slow ones.

Measured on a fresh process: the segmenter loads its dictionary on first use (76 ms), the category
model its examples (100 ms), and the first "already reported?" lookup compiles its statements; at
50 lookups a second the first of them queued the next ones behind it for 170 ms
(bench/hotspot_place.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.routing import classify, hotspots, meaning
from shared.service import Runtime

# Any text naming a place and a kind of problem takes every step; nothing is written.
TEXT = "东风路和人民路交叉口的路灯坏了好几天了，晚上很黑"
# No county has this code: the lookup runs its statements and finds nothing.
REGION = "990000000"


async def warm_up(runtime: Runtime) -> None:
    vector = meaning.encode([TEXT])[0] if runtime.settings.hotspot_meaning else None
    classify.classify(TEXT, None, vector)
    async with runtime.sessions()() as session:
        await hotspots.similar(runtime, session, region_code=REGION, content=TEXT, location=None, now=datetime.now(UTC))
