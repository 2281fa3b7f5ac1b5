"""Placing a report among many open hotspots, and "already reported?" (重复反映) over HTTP.

    .venv/bin/python bench/hotspot_place.py [--open 100000] [--reports 300] [--rate 50] [--seconds 30]

Starts its own PostgreSQL and NATS and the routing service in this process (for the lookups, in a
process of its own: see below), fills one county with `--open` open reports of the window
(synthetic: place names × kinds of problem from `services/routing/problems.py`, written straight
into routing's tables as clusters the service itself folded), then measures:

* placement: `hotspots.place` for `--reports` new reports of that county, each in its own
  transaction as the handler runs it, with a meaning vector as the handler passes one (random unit
  vectors here, in the filled clusters too: what placement costs does not depend on their values);
  p50/p99 per report. Baseline, same run: the same reports placed into a county with no open report.
* encoding: the meaning model (`meaning.encode`) on 50 of those texts one at a time, CPU ms p50/p99:
  what routing spends on a report before placing it.
* already reported: `POST /v1/public/hotspots/similar` at `--rate` requests/s for `--seconds`,
  anonymous, open loop; p50/p99 and routing's CPU per request; first every request a new text (the
  worst case: no cluster seen before), then as the report form asks while a citizen types (each
  text three times, growing: three fifths of it, four fifths, the whole; the same township).
  Routing answers as it is deployed, `minyi serve routing` in a process of its own, and the
  requests come from intake_submit's lean HTTP client in this one: with the generator in the
  server's own event loop (`--in-process`, as this benchmark measured until 2026-12-06), each
  request's client work queued behind and ahead of the server's. Baseline, same run:
  `GET /healthz` at the same rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import nats  # noqa: E402
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from identity_stack import Stack, stack  # noqa: E402
from intake_submit import CpuMeter, LeanClient, service  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from minyi.servers import free_port  # noqa: E402
from services.routing import clustering, hotspots, meaning  # noqa: E402
from services.routing.classify import fingerprint  # noqa: E402
from services.routing.models import Hotspot, HotspotReport  # noqa: E402
from services.routing.problems import PROBLEMS  # noqa: E402
from services.routing.service import SPEC  # noqa: E402
from shared.bus.streams import declare  # noqa: E402
from shared.contracts import STREAMS  # noqa: E402
from shared.ids import new_id  # noqa: E402
from shared.service import build_app  # noqa: E402
from shared.settings import Settings  # noqa: E402

COUNTY, EMPTY = "349901", "349902"
SYLLABLES = ("安宁和平幸福光明胜利解放建设人民文化新华东风红旗长江黄河泰山华山"
             "翠竹梧桐桃园杏花梅园南湖北湖东湖西湖金色锦绣")
SUFFIXES = ("路", "街", "巷", "小区", "花园", "新村", "村", "苑", "广场", "市场")


def text_of(rng: random.Random) -> str:
    name = "".join(rng.choice(SYLLABLES) for _ in range(2)) + rng.choice(SUFFIXES)
    kind = rng.choice(list(PROBLEMS))
    phrase = rng.choice(PROBLEMS[kind])
    where = rng.choice(("那边", "门口", "附近", ""))
    since = rng.choice(("好几天了", "一直没人管", "请尽快处理"))
    return f"{name}{where}{phrase}的问题{since}"


def typing(rng: random.Random) -> Iterator[dict[str, str]]:
    """Bodies as the report form sends them while a citizen types: each text three times, growing."""
    while True:
        where, text = f"{COUNTY}{rng.randrange(1, 20):03d}", text_of(rng)
        for share in (0.6, 0.8, 1.0):
            yield {"region_code": where, "content": text[:max(6, round(len(text) * share))]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def random_meaning(rng: random.Random) -> bytes:
    vector = np.array([rng.gauss(0.0, 1.0) for _ in range(meaning.DIM)], dtype=np.float32)
    return (vector / np.linalg.norm(vector)).astype(np.float16).tobytes()


def encoding_ms(n: int) -> tuple[list[float], list[int]]:
    """CPU milliseconds of the meaning model per text, one text at a time, and the texts' lengths."""
    rng = random.Random(13)
    meaning.encode(["预热"])
    times, lengths = [], []
    for _ in range(n):
        text = text_of(rng)
        started = time.process_time()
        meaning.encode([text])
        times.append((time.process_time() - started) * 1000)
        lengths.append(len(text))
    return times, lengths


async def fill(runtime: object, n: int, now: datetime) -> None:
    """`n` open reports in COUNTY: clusters of one to three reports, folded by clustering itself."""
    rng = random.Random(7)
    started = time.monotonic()
    made = 0
    batch_h: list[dict[str, object]] = []
    batch_r: list[dict[str, object]] = []
    while made < n:
        text = text_of(rng)
        size = min(n - made, rng.choice((1, 1, 1, 2, 3)))
        township = f"{COUNTY}{rng.randrange(1, 20):03d}"
        sigs = [clustering.signature(text, fingerprint(text), township, "other", None, random_meaning(rng))
                for _ in range(size)]
        profile = clustering.fold(sigs)
        at = now - timedelta(days=rng.uniform(0, 29))
        hid = new_id()
        batch_h.append(dict(id=hid, county_code=COUNTY, region_code=township, category="other",
                            category_counts=profile.categories, profile=profile.to_json(),
                            keywords=clustering.keywords(profile.words, size), places=clustering.top_places(profile),
                            search_keys=clustering.search_keys(sigs), meaning_sum=clustering.summed_meaning(profile),
                            meaning_n=profile.meaning_n, count=size, supporters=0, first_at=at,
                            last_at=at, state="open", version=1))
        batch_r.extend(dict(report_id=new_id(), hotspot_id=hid, region_code=township, category="other",
                            received_at=at, similarity=1.0, signature=s.to_json(), placed_by="auto") for s in sigs)
        made += size
        if len(batch_r) >= 2000 or made >= n:
            async with runtime.transaction() as session:  # type: ignore[attr-defined]
                await session.execute(insert(Hotspot), batch_h)
                await session.execute(insert(HotspotReport), batch_r)
            batch_h, batch_r = [], []
            print(f"\r  filling county {COUNTY}: {made:,}/{n:,} open reports "
                  f"({time.monotonic() - started:.0f} s)", end="", flush=True)
    print()


async def placements(runtime: object, county: str, n: int, now: datetime) -> list[float]:
    rng = random.Random(11)
    times = []
    for i in range(n):
        text = text_of(rng)
        started = time.perf_counter()
        async with runtime.transaction() as session:  # type: ignore[attr-defined]
            region = f"{county}{rng.randrange(1, 20):03d}"
            await hotspots.place(runtime, session, report_id=new_id(), region_code=region,  # type: ignore[arg-type]
                                 category="other", content=text, received_at=now, now=now,
                                 meaning=random_meaning(rng))
        times.append(time.perf_counter() - started)
        if i % 50 == 49:
            print(f"\r  placing into {county}: {i + 1}/{n}", end="", flush=True)
    print()
    return times


Request = Callable[[], Awaitable[int]]


async def open_loop(rate: float, seconds: float, request: Request) -> list[float]:
    """`rate` requests a second for `seconds`, each started on time whatever the others do; their
    latencies. `request` answers the status code."""
    latencies: list[float] = []
    tasks = []

    async def one() -> None:
        started = time.perf_counter()
        status = await request()
        if status >= 400:
            raise SystemExit(f"a request answered {status}")
        latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies


@dataclass
class Lookups:
    health: list[float]
    similar: list[float]
    typing: list[float]
    cpu_ms: dict[str, float]  # routing's CPU per request, by load; empty in-process


async def lookups(rate: float, seconds: float, get: Callable[[str], Awaitable[int]],
                  post: Callable[[str, bytes], Awaitable[int]], meter: CpuMeter | None) -> Lookups:
    rng = random.Random(5)
    path = "/v1/public/hotspots/similar"
    cpu: dict[str, float] = {}

    async def measured(name: str, request: Request) -> list[float]:
        if meter is not None:
            meter.start()
        latencies = await open_loop(rate, seconds, request)
        if meter is not None:
            cpu[name] = meter.stop()["routing"] * 1000 / rate
        return latencies

    def body(value: dict[str, str]) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()

    health = await measured("health", lambda: get("/healthz"))
    similar = await measured("similar", lambda: post(path, body(
        {"region_code": f"{COUNTY}{rng.randrange(1, 20):03d}", "content": text_of(rng)})))
    typed = typing(rng)
    typing_latencies = await measured("typing", lambda: post(path, body(next(typed))))
    return Lookups(health, similar, typing_latencies, cpu)


async def own_process(s: Stack, settings: Settings, rate: float, seconds: float) -> Lookups:
    """The lookups against `minyi serve routing` in a process of its own, on the same database."""
    port = free_port()
    env = {"MINYI_ROUTING_PORT": str(port), "MINYI_LOOKUP_LIMIT": settings.lookup_limit,
           "MINYI_MIGRATE_ON_START": "false"}
    with service(s, "routing", port, free_port(), env) as routing:
        client = LeanClient(routing.url, 256)

        async def get(path: str) -> int:
            return (await client.get(path, {}))[0]

        async def post(path: str, body: bytes) -> int:
            return (await client.post(path, body))[0]

        try:
            return await lookups(rate, seconds, get, post, CpuMeter({"routing": routing.process.pid}))
        finally:
            await client.aclose()


async def in_process(app: object, port: int, rate: float, seconds: float) -> Lookups:
    """The lookups as this benchmark made them until 2026-12-06: the app served by uvicorn in this
    process's event loop, asked by httpx from the same loop."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):  # the server listens a moment after it has started
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

            async def get(path: str) -> int:
                return (await client.get(path)).status_code

            async def post(path: str, body: bytes) -> int:
                return (await client.post(path, content=body, headers={"Content-Type": "application/json"})).status_code

            return await lookups(rate, seconds, get, post, None)
    finally:
        server.should_exit = True
        await task


async def run(args: argparse.Namespace) -> None:
    with stack() as s:
        port = free_port()
        settings = Settings(database_url=s.postgres.url, nats_url=s.nats.url, home=s.root / "home", routing_port=port,
                            pii_keys_file=s.keys_file, lookup_limit="1000000/minute")
        # Routing reads intake's reports and suggestions' steps; those services do not run here.
        nc = await nats.connect(s.nats.url)
        for spec in (STREAMS["intake"], STREAMS["suggestions"]):
            await declare(nc.jetstream(), spec, replicas=1)
        await nc.close()
        app = build_app(SPEC, settings)
        runtime = app.state.runtime
        async with app.router.lifespan_context(app):
            now = datetime.now(UTC)
            await fill(runtime, args.open, now)
            # As autovacuum would after such a load: without statistics the planner reads the
            # county's clusters by date instead of by the key index, and the first reads of fresh
            # pages write their hint bits.
            async with runtime.db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE routing.hotspots"))
            empty = await placements(runtime, EMPTY, args.reports, now)
            full = await placements(runtime, COUNTY, args.reports, now)
            if args.in_process:
                found = await in_process(app, port, args.rate, args.seconds)
        if not args.in_process:
            found = await own_process(s, settings, args.rate, args.seconds)
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"\nplacing a report (hotspots.place, one transaction each), {args.reports} reports:")
    print(f"  county with {args.open:,} open reports: p50 {ms(statistics.median(full))}, "
          f"p99 {ms(percentile(full, 0.99))}")
    print(f"  baseline, empty county:               p50 {ms(statistics.median(empty))}, "
          f"p99 {ms(percentile(empty, 0.99))}")
    print(f"  ratio p99 {percentile(full, 0.99) / percentile(empty, 0.99):.1f}×")
    where = "routing served in this process, httpx" if args.in_process else "minyi serve routing, lean client"
    cpu = found.cpu_ms
    note = (lambda name: f"; routing CPU {cpu[name]:.1f} ms a request") if cpu else (lambda name: "")
    health_p99 = percentile(found.health, 0.99)
    print(f"\nalready reported? POST /v1/public/hotspots/similar at {args.rate:g}/s for {args.seconds:g} s ({where}):")
    print(f"  p50 {ms(statistics.median(found.similar))}, p99 {ms(percentile(found.similar, 0.99))} "
          f"(target p99 < 50 ms){note('similar')}")
    print(f"  baseline GET /healthz same rate: p50 {ms(statistics.median(found.health))}, p99 {ms(health_p99)}"
          f"{note('health')}")
    print(f"  ratio p99 {percentile(found.similar, 0.99) / health_p99:.1f}×")
    print("  as a citizen types (each text asked three times as it grows): "
          f"p50 {ms(statistics.median(found.typing))}, p99 {ms(percentile(found.typing, 0.99))}; ratio p99 "
          f"{percentile(found.typing, 0.99) / health_p99:.1f}×{note('typing')}")
    encoding, lengths = encoding_ms(50)
    print(f"\nthe meaning model, one text at a time (50 texts of {min(lengths)}–{max(lengths)} characters): "
          f"CPU p50 {statistics.median(encoding):.1f} ms, p99 {percentile(encoding, 0.99):.1f} ms per report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50)
    # A p99 of 500 requests is their 5 slowest; 1,500 give it more to stand on.
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--in-process", action="store_true",
                        help="serve routing in this process and ask it with httpx, as until 2026-12-06")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
