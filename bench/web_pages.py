"""The citizen's scan page `GET /q/{code}` of the web tier against a bare Jinja2 page, in one run.

    .venv/bin/python bench/web_pages.py [--seconds 20] [--rate 50] [--bare-only]

Starts the real back end: its own PostgreSQL and NATS (`identity_stack.stack()`), a Temporal dev
server (`minyi.servers.Temporal`, as the embedded stack runs it) and the five services as
`minyi serve <service>` runs them. The five streams are declared first, so that each service's
consumers find the streams they read whatever the start order. An admin then registers region
320923 (with its city and province), deputy D1 in it and D1's QR code through identity's API
(`intake_submit.issue_code`), and the web tier starts as its own process, `python -m
services.web`, with the five services' URLs, development secrets and the same MINYI_HOME as the
services (so intake trusts its proxy secret). Identity's MINYI_PUBLIC_BASE_URL is the web tier's
address, so the code leads to the page measured.

1. First load of the page: `GET /q/{code}`, then every stylesheet (`<link rel=stylesheet href>`)
   and script (`<script src>`) it references, each with `Accept-Encoding: gzip`; the bytes of
   each body as transferred (compressed where the server compressed it) are added up against
   the budget of 60 KB (61,440 bytes). Response headers are shown apart.
2. Baseline, same run: `bench/bare_page_app.py` as its own process — FastAPI under uvicorn with
   the web tier's settings and gzip middleware, one Jinja2 template rendered to a page as large
   as the real one (uncompressed). The floor of any Python server-rendered page.
3. Ours: the web tier's `GET /q/{code}`, which resolves the code through identity and the
   category hints through routing (both cached in the web process for a while, as in
   production), renders the report form and sets its form-token cookie.

Both targets get the same load: 2 s of warm-up at --rate (not counted), then --rate pages/s for
--seconds, open loop: each request leaves at its scheduled time whatever the earlier ones do, and
its latency counts from that scheduled time to the last byte of the answer, so queueing in the
client or the server is not hidden. The generator is `intake_submit.LeanClient` (asyncio and
httptools on uvloop, at most 64 keep-alive connections), whose own cost per request is a small
fraction of httpx's, so the latencies are mostly the servers'; it asks for gzip and does not
decompress, as the time to the last byte is what is measured. Every request is a first visit (no
cookies sent), since each scan is another phone. Any answer but 200 with an HTML body counts as
an error. Beside the latencies: the CPU each server process used during the phase, divided by the
pages (web, identity and routing for ours; their background work, such as outbox relays, is in it).

Targets: p99 < 50 ms at 50 pages/s; first load ≤ 60 KB. The ratio of the p99s (ours / bare) is
printed as well. Exits 1 when something could not be measured (a server that would not start,
a setup call or the page that did not answer as expected), naming it, with the last log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import nats
import psutil
import uvloop
from identity_stack import Service, Stack, stack, ticking
from intake_submit import DEPUTY, CpuMeter, FixedRate, LeanClient, StartFailed, Tally, issue_code, process, service

from minyi.servers import Temporal, free_port, tail
from shared.bus.streams import declare
from shared.contracts import STREAMS

BENCH = Path(__file__).resolve().parent
SERVICES = ("identity", "intake", "routing", "suggestions", "scoring")
WARMUP_SECONDS = 2.0
REQUEST_TIMEOUT = 10.0
PROGRESS_EVERY = 5.0
CONNECTIONS = 64
P99_TARGET_MS = 50.0
BUDGET_BYTES = 60 * 1024
# Sending this long after a scheduled time means the generator's own delay is in the latencies.
LATE_MS = 5.0
# Without a real page to match (--bare-only), the bare page gets about the size of a report form.
BARE_ONLY_BYTES = 20_000
# What the generator asks for, as a phone's browser would; brotli is not offered, as neither server has it.
PAGE_HEADERS = {"Accept": "text/html", "Accept-Encoding": "gzip"}


class BenchFailed(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------- servers


@dataclass
class Backend:
    stack: Stack
    services: dict[str, psutil.Process]
    web_url: str
    web_pid: int
    web_log: Path
    code: str


def declare_streams(nats_url: str) -> None:
    """Every service's stream up front: each one's consumers wait for the streams they read, and intake and
    routing read each other's, so starting them one by one would otherwise never get past the first."""

    async def run() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            for spec in STREAMS.values():
                await declare(js, spec, replicas=1)
        finally:
            await nc.close()

    print(f"declaring the streams {', '.join(spec.name for spec in STREAMS.values())} …", flush=True)
    asyncio.run(run())


def web_env(s: Stack, port: int, urls: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "MINYI_HOME": str(s.root / "home"),
        "MINYI_WEB_PORT": str(port),
        **{f"MINYI_{name.upper()}_URL": url for name, url in urls.items()},
        "MINYI_DEV_SECRETS": "true",
        "MINYI_LOG_LEVEL": "WARNING",
    }


def start_backend(s: Stack, resources: ExitStack) -> Backend:
    """Temporal, the five services, D1's code and the web tier, each stopped by `resources` in reverse."""
    temporal = Temporal(db_file=s.root / "temporal.db", port=free_port(), ui_port=free_port(),
                        log_path=s.root / "temporal.log")
    # Registered first, so a server that fails half-way through its start is stopped too.
    resources.callback(temporal.stop)
    resources.callback(print, "stopping the Temporal dev server …", flush=True)
    print("starting the Temporal dev server …", flush=True)
    temporal.start(progress=print)
    declare_streams(s.nats.url)

    web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    ports = {name: free_port() for name in SERVICES}
    # Identity prints codes leading to the web tier; suggestions runs its workflows on Temporal.
    extra = {"MINYI_PUBLIC_BASE_URL": web_url, "MINYI_TEMPORAL_ADDRESS": temporal.address}
    running: dict[str, psutil.Process] = {}
    urls: dict[str, str] = {}
    for name in SERVICES:
        svc = resources.enter_context(service(s, name, ports[name], ports["identity"], extra_env=extra))
        running[name] = psutil.Process(svc.process.pid)
        urls[name] = svc.url

    code = issue_code(urls["identity"], s.token("admin"))
    web = resources.enter_context(process("web", [sys.executable, "-m", "services.web"],
                                          web_env(s, web_port, urls), web_port, s.root))
    return Backend(s, running, web.url, web.process.pid, s.root / f"web-{web_port}.log", code)


def bare_page(log_dir: Path, size: int) -> contextlib.AbstractContextManager[Service]:
    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_page_app.py"), "--port", str(port), "--bytes", str(size)]
    return process("bare page app", argv, None, port, log_dir)


# ---------------------------------------------------------------------------------------- first load


class Assets(HTMLParser):
    """The stylesheets and scripts a page makes the browser fetch before it is complete."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        rel = (found.get("rel") or "").lower().split()
        if tag == "link" and "stylesheet" in rel and found.get("href"):
            self.urls.append(str(found["href"]))
        elif tag == "script" and found.get("src"):
            self.urls.append(str(found["src"]))


@dataclass
class Transfer:
    path: str
    status: int
    encoding: str
    body_bytes: int  # as transferred
    decoded_bytes: int
    header_bytes: int


def transfer(client: httpx.Client, url: str) -> tuple[Transfer, httpx.Response]:
    response = client.get(url, headers=PAGE_HEADERS)
    headers = sum(len(name) + len(value) + 4 for name, value in response.headers.raw)
    # Status line and the blank line after the headers.
    headers += len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n\r\n")
    return Transfer(urlsplit(url).path, response.status_code, response.headers.get("content-encoding", "identity"),
                    response.num_bytes_downloaded, len(response.content), headers), response


def first_load(page_url: str) -> tuple[list[Transfer], str]:
    """The page and what it references, fetched as a first visit; the page's HTML too. Raises BenchFailed
    when the page is not an HTML 200 or a referenced file does not answer 200."""
    print(f"first load of {page_url} and the CSS and JS it references …", flush=True)
    with httpx.Client(timeout=30) as client:
        page, response = transfer(client, page_url)
        media_type = response.headers.get("content-type", "")
        if page.status != 200 or not media_type.startswith("text/html"):
            raise BenchFailed(f"GET {page.path} answered {page.status} ({media_type or 'no content type'}): "
                              f"{response.text[:500]}")
        html = response.text
        parser = Assets()
        parser.feed(html)
        loads = [page]
        for reference in dict.fromkeys(parser.urls):
            url = urljoin(page_url, reference)
            # Traffic stays on this machine: a file on another host is reported, not fetched.
            if urlsplit(url).hostname != "127.0.0.1":
                raise BenchFailed(f"the page references {reference}, on another host: not fetched")
            loaded, answer = transfer(client, url)
            if loaded.status != 200:
                raise BenchFailed(f"GET {loaded.path}, referenced by the page, answered {loaded.status}: "
                                  f"{answer.text[:300]}")
            loads.append(loaded)
    return loads, html


# ---------------------------------------------------------------------------------------- load


def readable(body: bytes, headers: dict[bytes, bytes]) -> str:
    """An answer's body as text, for the samples of errors."""
    if headers.get(b"content-encoding") == b"gzip":
        with contextlib.suppress(OSError, EOFError):
            body = gzip.decompress(body)
    return body.decode(errors="replace")


async def open_loop(url: str, path: str, rate: float, seconds: float, label: str) -> FixedRate:
    """`rate` GETs a second for `seconds`, each sent at its scheduled time; latency from that time to the
    answer's last byte."""
    tally = Tally()
    planned = int(rate * seconds)
    lateness: list[float] = []
    in_flight: set[asyncio.Task[None]] = set()
    client = LeanClient(url, CONNECTIONS)

    async def one(scheduled: float) -> None:
        try:
            status, body, headers = await client.get(path, PAGE_HEADERS)
        except TimeoutError:
            tally.fail("timeout", f"no answer within {REQUEST_TIMEOUT:g} s, waiting for a connection included")
            return
        except Exception as exc:  # a benchmark counts every failure rather than dying on the first
            tally.fail(type(exc).__name__, str(exc) or repr(exc))
            return
        if status != 200 or not headers.get(b"content-type", b"").startswith(b"text/html"):
            tally.fail(f"HTTP {status}", readable(body, headers))
            return
        tally.ok += 1
        tally.latencies.append(time.perf_counter() - scheduled)

    async def note() -> str:
        return f"{label}: {tally.ok} pages, {tally.failed} errors, {len(in_flight)} in flight"

    try:
        async with ticking(note, every=PROGRESS_EVERY):
            t0 = time.perf_counter() + 0.05
            for i in range(planned):
                scheduled = t0 + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness.append(max(0.0, time.perf_counter() - scheduled))
                task = asyncio.create_task(one(scheduled))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
            elapsed = time.perf_counter() - t0
    finally:
        await client.aclose()
    return FixedRate(tally, planned, elapsed, lateness)


@dataclass
class Run:
    target: str
    fixed: FixedRate
    cpu_ms_per_page: dict[str, float]

    def ms(self, q: float) -> float | None:
        return self.fixed.latency_ms(q)


def measure(target: str, url: str, path: str, pids: dict[str, int], args: argparse.Namespace) -> Run:
    # uvloop for the generator too, as in intake_submit: the less the client costs, the more the latencies
    # are the servers'.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        print(f"  {target}: warm-up, {WARMUP_SECONDS:g} s at {args.rate:g} pages/s …", flush=True)
        warm = runner.run(open_loop(url, path, args.rate, WARMUP_SECONDS, "warm-up"))
        print(f"    warm-up: {warm.tally.ok} pages, {warm.tally.failed} errors", flush=True)
        print(f"  {target}: {args.rate:g} pages/s for {args.seconds:g} s, open loop …", flush=True)
        meter = CpuMeter(pids)
        meter.start()
        fixed = runner.run(open_loop(url, path, args.rate, args.seconds, target))
        cores = meter.stop()
    pages = max(1, fixed.tally.ok + fixed.tally.failed)
    cpu = {label: used * fixed.elapsed * 1000 / pages for label, used in cores.items()}
    print(f"    {fixed.tally.ok} pages, {fixed.tally.failed} errors; p50 {_ms(fixed.latency_ms(0.5))}, "
          f"p99 {_ms(fixed.latency_ms(0.99))}", flush=True)
    return Run(target, fixed, cpu)


# ---------------------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def report_load(loads: list[Transfer]) -> bool:
    print()
    print(f"{'first load':48} {'encoding':>9} {'transferred':>12} {'decoded':>10} {'headers':>8}")
    for load in loads:
        print(f"{load.path[:48]:48} {load.encoding:>9} {load.body_bytes:12,d} {load.decoded_bytes:10,d} "
              f"{load.header_bytes:8,d}")
    bodies = sum(load.body_bytes for load in loads)
    headers = sum(load.header_bytes for load in loads)
    met = bodies <= BUDGET_BYTES
    print(f"{'total':48} {'':>9} {bodies:12,d} {sum(load.decoded_bytes for load in loads):10,d} {headers:8,d}")
    print(f"first load {_kb(bodies)} transferred (bodies; {_kb(bodies + headers)} with response headers), "
          f"budget {_kb(BUDGET_BYTES)}: {'met' if met else 'not met'}")
    return met


def report_runs(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    print(f"{'target':30} {'pages':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}  "
          "server CPU per page")
    for run in runs:
        cells = [run.ms(q) for q in (0.5, 0.95, 0.99, 1.0)]
        cpu = ", ".join(f"{label} {value:.2f} ms" for label, value in run.cpu_ms_per_page.items())
        print(f"{run.target:30} {run.fixed.tally.ok:6d} "
              + " ".join(f"{'-' if c is None else f'{c:.1f}':>7}" for c in cells)
              + f" {run.fixed.tally.failed:6d}  {cpu}")
    print(f"(at {args.rate:g} pages/s for {args.seconds:g} s, open loop, from each request's scheduled time to the "
          "last byte; errors = answers other than an HTML 200)")
    for run in runs:
        if run.fixed.tally.errors:
            kinds = ", ".join(f"{kind} × {n}" for kind, n in run.fixed.tally.errors.most_common())
            print(f"\nerrors of {run.target}: {kinds}")
            for sample in run.fixed.tally.samples:
                print(f"  {sample}")
        if run.fixed.late_p99_ms > LATE_MS:
            print(f"\nnote: the generator sent 1 % of {run.target}'s requests ≥ {run.fixed.late_p99_ms:.1f} ms late "
                  "(its event loop was held up); those delays are in the latencies")

    bare = next((r for r in runs if r.target.startswith("bare")), None)
    ours = next((r for r in runs if not r.target.startswith("bare")), None)
    print()
    if ours is None:
        return
    p99 = ours.ms(0.99)
    base = bare.ms(0.99) if bare else None
    if p99 is not None and base:
        print(f"p99 ours/bare: {p99 / base:.2f} ({_ms(p99)} against {_ms(base)})")
    met = p99 is not None and p99 < P99_TARGET_MS and not ours.fixed.tally.failed
    errors = f" with {ours.fixed.tally.failed} errors" if ours.fixed.tally.failed else ""
    print(f"p99 at {args.rate:g} pages/s < {P99_TARGET_MS:.0f} ms, {ours.target}: {_ms(p99)}{errors}: "
          f"{'met' if met else 'not met'}")


# ---------------------------------------------------------------------------------------- main


def failure(message: str, logs: list[tuple[Path, str]]) -> BenchFailed:
    parts = [message]
    for path, name in logs:
        if path.exists():
            parts.append(f"--- last lines of {path} ({name}) ---\n{tail(path, 30)}")
    return BenchFailed("\n".join(parts))


def run_bare_only(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="minyi-bench-") as tmp, bare_page(Path(tmp), BARE_ONLY_BYTES) as bare:
        print("\n== baseline only: bare FastAPI + Jinja2 page ==", flush=True)
        runs = [measure("bare FastAPI + Jinja2", bare.url, "/q/bare0code", {"server": bare.process.pid}, args)]
    report_runs(runs, args)
    return 0


def run(args: argparse.Namespace) -> int:
    with stack() as s, ExitStack() as resources:
        try:
            servers = start_backend(s, resources)
            path = f"/q/{servers.code}"
            try:
                loads, html = first_load(f"{servers.web_url}{path}")
            except (BenchFailed, httpx.HTTPError) as exc:
                raise failure(f"the web tier's scan page could not be loaded: {exc}",
                              [(servers.web_log, "web")]) from None
            print(f"  {len(loads)} files, {sum(load.body_bytes for load in loads):,} bytes transferred; the page is "
                  f"{len(html.encode()):,} bytes of HTML, and the bare page is made as large", flush=True)
            if str(DEPUTY["name"]) not in html:
                # Still measured: a page that answers 200 costs what it costs, but it may not be the form.
                print(f"  warning: the page does not name the code's deputy ({DEPUTY['name']}); is it the report "
                      "form?", flush=True)

            print("\n== baseline: bare FastAPI + Jinja2 page ==", flush=True)
            with bare_page(s.root, len(html.encode())) as bare:
                runs = [measure("bare FastAPI + Jinja2", bare.url, path, {"server": bare.process.pid}, args)]

            print("\n== ours: the web tier's scan page ==", flush=True)
            pids = {"web": servers.web_pid, "identity": servers.services["identity"].pid,
                    "routing": servers.services["routing"].pid}
            runs.append(measure("web GET /q/{code}", servers.web_url, path, pids, args))
            rss = psutil.Process(servers.web_pid).memory_info().rss
            print(f"  web RSS {rss / 2**20:.0f} MiB", flush=True)
        except (BenchFailed, StartFailed, RuntimeError) as exc:
            print(f"\nFAILED: {exc}", flush=True)
            print(f"(logs are in {s.root}, removed when this run ends)", flush=True)
            return 1
    budget_met = report_load(loads)
    report_runs(runs, args)
    print(f"first load within {_kb(BUDGET_BYTES)}: {'met' if budget_met else 'not met'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured phase (default 20)")
    parser.add_argument("--rate", type=float, default=50.0, help="pages per second, open loop (default 50)")
    parser.add_argument("--bare-only", action="store_true",
                        help="measure the baseline alone (checks the generator without the back end)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be positive")
    if int(args.rate * args.seconds) < 1:
        parser.error("--rate × --seconds must make at least one request")
    return run_bare_only(args) if args.bare_only else run(args)


if __name__ == "__main__":
    sys.exit(main())
