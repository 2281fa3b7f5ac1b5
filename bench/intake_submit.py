"""Citizens' reports through the intake service against a bare FastAPI + asyncpg insert, in one run.

    .venv/bin/python bench/intake_submit.py [--seconds 20] [--rate 200] [--connections 32]
                                            [--client lean|httpx] [--bare-only] [--profile FILE]

Starts its own PostgreSQL and NATS (as `identity_stack.stack()` does for every benchmark), then
measures two targets with the same load generator and the same settings:

* baseline: `bench/bare_insert_app.py` as its own process — FastAPI under uvicorn with the
  settings `shared.service.serve` uses (uvloop, httptools), one endpoint `POST /v1/reports` that
  parses the JSON body and does one asyncpg INSERT of (id, content, created_at) through a pool of
  10 connections. The floor any Python HTTP endpoint that stores a report pays.
* ours: the intake service as `minyi serve intake` runs it, with the identity service
  (`minyi serve identity`) beside it, since intake resolves the QR code of every report through
  identity over NATS (`identity.codes.resolve`). Before the load an admin registers region
  320923 (阜宁县, under 320900 盐城市 and 320000 江苏省, as identity requires), deputy D1 (王代表)
  in it, and issues D1's code; every report carries that code.
  Intake runs with MINYI_FLOOD_LIMIT=1000000/minute: the benchmark sends everything from one
  address, which the per-source flood limit would otherwise turn away after a handful.
  The streams of the services not run here (ROUTING, SUGGESTIONS, SCORING) are declared empty
  first, since intake starts its consumers, and says ready, only once the streams it reads exist.
  Two mixes: every report anonymous, then one in three real-name (name and phone, which intake
  encrypts and blind-indexes).

Every report is `{"channel": "miniprogram", "code": …, "content": "小区门口路灯坏了三天…#n",
"anonymous": true}` with a distinct n. For each target (and mix) the same generator, with at most
--connections keep-alive connections, runs in this process on uvloop:

1. warms up for 2 s, sending flat out;
2. sends at a fixed --rate req/s for --seconds, open loop: each request leaves at its scheduled
   time whatever the earlier ones do, and its latency counts from that scheduled time, so
   queueing in the client or the server is not hidden (no coordinated omission); prints p50/p99;
3. sends flat out on every connection for --seconds and counts the 201s per second.

The fixed rate runs before the flat-out phase, and ours waits between phases until its outbox is
published, so no phase runs behind the backlog of another. Any answer but 201 is counted as an
error; the first few bodies are printed. CPU columns show, in cores, what the generator, the
target, identity and PostgreSQL used during the flat-out phase; a generator near 1.0 means the
client, not the target, set the maximum.

The generator's HTTP client is a lean HTTP/1.1 client (asyncio + httptools, the parser uvicorn
uses). `--client httpx` swaps in httpx.AsyncClient, which costs about 2 ms of CPU per request:
on a 2-core machine it saturates its core at ~450 req/s while the bare app idles, so it can only
measure targets well below that. (aiohttp is not a dependency of the project.)

Targets: ours/bare throughput ≥ 0.5, and p99 < 50 ms at 200 req/s. Exits 1 when the intake
service could not be measured (not ready, or its first report was not answered 201).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import asyncpg
import httptools
import httpx
import nats
import psutil
import uvloop
from identity_stack import Service, Stack, stack
from identity_stack import ticking as progress_ticker

from minyi.servers import free_port, tail
from shared.bus.streams import declare
from shared.contracts import STREAMS

BENCH = Path(__file__).resolve().parent
PATH = "/v1/reports"
JSON_HEADERS = {"content-type": "application/json"}
FLOOD_LIMIT = "1000000/minute"
READY_TIMEOUT = 90.0
REQUEST_TIMEOUT = 10.0
WARMUP_SECONDS = 2.0
DRAIN_TIMEOUT = 120.0
PROGRESS_EVERY = 5.0
MAX_SAMPLES = 5
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 50.0
# Sending this long after a scheduled time means the generator's own delay is in the latencies.
LATE_MS = 5.0
GENERATOR_SATURATED = 0.9

CONTENT = "小区门口路灯坏了三天，晚上出行不便，请尽快修复。"
# A county needs its city and province registered first; identity refuses an orphan below province level.
REGIONS = (("320000", "江苏省", None), ("320900", "盐城市", "320000"), ("320923", "阜宁县", "320900"))
DEPUTY = {"id": "D1", "name": "王代表", "level": "county", "region_code": "320923"}
REPORTER = {"name": "张三", "phone": "13800138000"}
RECEIPT_FIELDS = {"id", "receipt_code", "status", "target", "ack_due", "reply_due"}
# The bare app never resolves the code; this stands in for one of about the same length.
BARE_CODE = "bare-app-resolves-no-code"


# ---------------------------------------------------------------------------------------- processes


class StartFailed(RuntimeError):
    pass


def _die_with_parent() -> None:
    # A benchmark killed outright must not leave a service holding its port and database connections.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _failure(message: str, log_path: Path) -> StartFailed:
    return StartFailed(f"{message}\n--- last lines of {log_path} (stdout and stderr) ---\n{tail(log_path, 30)}")


def wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    print(f"  waiting for {name} at {url}/readyz (up to {READY_TIMEOUT:.0f} s) …", flush=True)
    t0 = time.monotonic()
    next_note = t0 + 10
    last = "no answer yet"
    while True:
        if proc.poll() is not None:
            raise _failure(f"{name} exited with {proc.returncode} before it was ready", log_path)
        try:
            resp = httpx.get(f"{url}/readyz", timeout=2)
            if resp.status_code == 200:
                print(f"  {name} ready after {time.monotonic() - t0:.1f} s", flush=True)
                return
            last = f"HTTP {resp.status_code}: {resp.text[:300]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - t0 > READY_TIMEOUT:
            raise _failure(f"{name} not ready at {url}/readyz after {READY_TIMEOUT:.0f} s; last answer: {last}",
                           log_path)
        if now >= next_note:
            print(f"  … still waiting for {name} ({now - t0:.0f} s; last answer: {last})", flush=True)
            next_note += 10
        time.sleep(0.2)


def stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    print(f"stopping {name} …", flush=True)
    proc.terminate()
    try:
        proc.wait(30)  # a service stops within MINYI_STOP_SECONDS (20 s) and 4 s of closing
    except subprocess.TimeoutExpired:
        print(f"  {name} ignored SIGTERM for 30 s; killing it", flush=True)
        proc.kill()
        proc.wait()


@contextmanager
def process(name: str, argv: list[str], env: dict[str, str] | None, port: int, log_dir: Path) -> Iterator[Service]:
    """One server process, yielded once its /readyz answers 200, stopped on the way out."""
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"{name.replace(' ', '-')}-{port}.log"
    print(f"starting {name} on port {port} …", flush=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
        try:
            wait_ready(name, proc, url, log_path)
            yield Service(proc, url)
        finally:
            stop(name, proc)


def bare_app(s: Stack, dsn: str) -> contextlib.AbstractContextManager[Service]:
    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_insert_app.py"), "--port", str(port), "--dsn", dsn]
    return process("bare app", argv, None, port, s.root)


def service(s: Stack, name: str, port: int, identity_port: int, extra_env: dict[str, str] | None = None,
            profile: Path | None = None) -> contextlib.AbstractContextManager[Service]:
    """A service as `minyi serve NAME` runs it, told where identity listens (intake asks it over NATS);
    with `profile`, under cProfile (bench/profile_service.py), its statistics written there when it stops."""
    env = {**s.env(identity_port), f"MINYI_{name.upper()}_PORT": str(port), **(extra_env or {})}
    argv = ([sys.executable, str(BENCH / "profile_service.py"), str(profile.resolve()), name] if profile
            else [sys.executable, "-m", "minyi.cli", "serve", name])
    return process(name, argv, env, port, s.root)


class CpuMeter:
    """CPU time of some processes (with their children) over an interval, in cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.start_times: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for label, pid in self.pids.items():
            seen: dict[int, float] = {}
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        seen[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
            out[label] = seen
        return out

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.start_times = self._sample()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        end = self._sample()
        return {label: sum(cpu - self.start_times.get(label, {}).get(pid, 0.0) for pid, cpu in end[label].items())
                / wall for label in self.pids}


# ---------------------------------------------------------------------------------------- load generator


@dataclass(frozen=True)
class Mix:
    name: str
    real_name_every: int = 0  # every k-th report names its reporter; 0: all anonymous

    def body(self, code: str, n: int) -> bytes:
        report: dict[str, object] = {"channel": "miniprogram", "code": code, "content": f"{CONTENT}#{n}"}
        if self.real_name_every and n % self.real_name_every == 0:
            report |= {"anonymous": False, "reporter": REPORTER}
        else:
            report["anonymous"] = True
        return json.dumps(report, ensure_ascii=False).encode()


ANONYMOUS = Mix("anonymous")
REAL_NAME_THIRD = Mix("1/3 real-name", real_name_every=3)
# One sequence for the whole run, so no two reports anywhere have the same content.
_numbers = itertools.count(1)


@dataclass
class Tally:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(f"{kind}: {detail.strip()[:300]}")


@dataclass
class FlatOut:
    tally: Tally
    elapsed: float
    generator_cpu: float

    @property
    def rate(self) -> float:
        return self.tally.ok / self.elapsed if self.elapsed else 0.0


@dataclass
class FixedRate:
    tally: Tally
    planned: int
    elapsed: float
    lateness: list[float]

    def latency_ms(self, q: float) -> float | None:
        return percentile(self.tally.latencies, q) * 1000 if self.tally.latencies else None

    @property
    def late_p99_ms(self) -> float:
        return percentile(self.lateness, 0.99) * 1000 if self.lateness else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ticking(label: str, tally: Tally) -> contextlib.AbstractAsyncContextManager[None]:
    """Prints the running count every few seconds while a phase runs."""

    async def note() -> str:
        return f"{label}: {tally.ok} × 201, {tally.failed} errors"

    return progress_ticker(note, every=PROGRESS_EVERY)


class Client(Protocol):
    async def post(self, path: str, body: bytes) -> tuple[int, str]: ...

    async def aclose(self) -> None: ...


class HttpxClient:
    """httpx.AsyncClient with a keep-alive pool: the usual Python client, for comparison (--client httpx)."""

    def __init__(self, url: str, connections: int) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(REQUEST_TIMEOUT),
        )

    async def post(self, path: str, body: bytes) -> tuple[int, str]:
        resp = await self.client.post(path, content=body, headers=JSON_HEADERS)
        return resp.status_code, resp.text

    async def aclose(self) -> None:
        await self.client.aclose()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, responses parsed by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        # The last response's headers, names in lower case (bench/web_pages.py checks the content type).
        self.headers: dict[bytes, bytes] = {}
        self.closed = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def on_message_begin(self) -> None:  # httptools callbacks
        self.chunks = []
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.chunks)))

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.transport is None or self.closed:
            raise ConnectionResetError("the connection is closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """HTTP/1.1 over asyncio with httptools, a keep-alive pool of at most `connections`.

    httpx spends about 2 ms of CPU per request (pure-Python h11, anyio), so on a small machine the
    client, not the server, would set the maximum; this one spends a small fraction of that.
    """

    def __init__(self, url: str, connections: int) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        return conn

    async def _exchange(self, request: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
        """Status, body (as sent: not decompressed) and headers of the answer to one request."""
        # Like httpx's pool timeout, waiting for a free connection counts against the request's time.
        async with asyncio.timeout(REQUEST_TIMEOUT), self.slots:
            conn = await self._connection()
            try:
                status, data = await conn.request(request)
            except BaseException:
                conn.close()
                raise
            headers = conn.headers
            if conn.reusable and not conn.closed:
                self.idle.append(conn)
            else:
                conn.close()
        return status, data, headers

    async def post(self, path: str, body: bytes) -> tuple[int, str]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        status, data, _ = await self._exchange(head + body)
        return status, data.decode(errors="replace")

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes, dict[bytes, bytes]]:
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return await self._exchange(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{fields}\r\n".encode())

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


CLIENTS: dict[str, Callable[[str, int], Client]] = {"lean": LeanClient, "httpx": HttpxClient}


class LoadGenerator:
    """The one generator every target gets: pre-encoded JSON bodies over keep-alive connections."""

    def __init__(self, client: Client, connections: int, body: Callable[[], bytes]) -> None:
        self.client = client
        self.connections = connections
        self.body = body

    async def __aenter__(self) -> LoadGenerator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def _send(self, tally: Tally, scheduled: float | None = None) -> None:
        try:
            status, text = await self.client.post(PATH, self.body())
        except TimeoutError:
            tally.fail("TimeoutError", f"no answer within {REQUEST_TIMEOUT:g} s, waiting for a connection included")
            return
        except Exception as exc:  # a benchmark counts every failure rather than dying on the first
            tally.fail(type(exc).__name__, str(exc) or repr(exc))
            return
        if status == 201:
            tally.ok += 1
            if scheduled is not None:
                tally.latencies.append(time.perf_counter() - scheduled)
        else:
            tally.fail(f"HTTP {status}", text)

    async def flat_out(self, seconds: float, label: str) -> FlatOut:
        tally = Tally()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await self._send(tally)

        t0, cpu0 = time.perf_counter(), time.process_time()
        async with ticking(label, tally):
            await asyncio.gather(*(worker() for _ in range(self.connections)))
        elapsed = time.perf_counter() - t0
        return FlatOut(tally, elapsed, (time.process_time() - cpu0) / elapsed)

    async def fixed_rate(self, rate: float, seconds: float, label: str) -> FixedRate:
        tally = Tally()
        planned = int(rate * seconds)
        interval = 1.0 / rate
        in_flight: set[asyncio.Task[None]] = set()
        lateness: list[float] = []
        t0 = time.perf_counter() + 0.01
        async with ticking(label, tally):
            for i in range(planned):
                scheduled = t0 + i * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness.append(max(0.0, time.perf_counter() - scheduled))
                task = asyncio.create_task(self._send(tally, scheduled))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
        return FixedRate(tally, planned, time.perf_counter() - t0, lateness)


# ---------------------------------------------------------------------------------------- phases


@dataclass
class Run:
    target: str
    fixed: FixedRate
    flat: FlatOut
    cpu: dict[str, float]

    @property
    def errors(self) -> Counter[str]:
        return self.fixed.tally.errors + self.flat.tally.errors

    @property
    def samples(self) -> list[str]:
        return (self.fixed.tally.samples + self.flat.tally.samples)[:MAX_SAMPLES]


async def no_drain() -> None:
    return None


def outbox_drain(dsn: str, schema: str) -> Callable[[], Awaitable[None]]:
    """Waits until the service's outbox is published, so the next phase starts without a backlog."""

    async def drain() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            t0 = time.perf_counter()
            next_note = t0 + PROGRESS_EVERY
            while True:
                try:
                    pending = int(await conn.fetchval(
                        f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"))
                except asyncpg.UndefinedTableError:
                    return
                now = time.perf_counter()
                if pending == 0:
                    if now - t0 > 0.5:
                        print(f"    outbox published after {now - t0:.1f} s", flush=True)
                    return
                if now - t0 > DRAIN_TIMEOUT:
                    print(f"    outbox still has {pending} unpublished events after {DRAIN_TIMEOUT:.0f} s; "
                          "going on", flush=True)
                    return
                if now >= next_note:
                    print(f"    … waiting for the outbox: {pending} events unpublished", flush=True)
                    next_note += PROGRESS_EVERY
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    return drain


async def measure(target: str, url: str, body: Callable[[], bytes], args: argparse.Namespace,
                  pids: dict[str, int], drain: Callable[[], Awaitable[None]]) -> Run:
    async with LoadGenerator(CLIENTS[args.client](url, args.connections), args.connections, body) as gen:
        print(f"  {target}: warm-up, {WARMUP_SECONDS:.0f} s flat out …", flush=True)
        warm = await gen.flat_out(WARMUP_SECONDS, "warm-up")
        print(f"    warm-up: {warm.tally.ok} × 201, {warm.tally.failed} errors", flush=True)
        await drain()
        print(f"  {target}: fixed rate, {args.rate:g} req/s for {args.seconds:g} s …", flush=True)
        fixed = await gen.fixed_rate(args.rate, args.seconds, "fixed rate")
        await drain()
        print(f"  {target}: max throughput, {args.connections} connections flat out for {args.seconds:g} s …",
              flush=True)
        meter = CpuMeter(pids)
        meter.start()
        flat = await gen.flat_out(args.seconds, "flat out")
        cpu = {"generator": flat.generator_cpu, **meter.stop()}
        await drain()
    run = Run(target, fixed, flat, cpu)
    print(f"  {target}: {flat.rate:.0f} req/s flat out; p50 {_ms(fixed.latency_ms(0.5))}, "
          f"p99 {_ms(fixed.latency_ms(0.99))} at {args.rate:g} req/s; {sum(run.errors.values())} errors", flush=True)
    return run


async def declare_foreign_streams(nats_url: str, running: set[str]) -> None:
    """Streams of the services this benchmark does not run, so intake's consumers (of routing's events)
    can start and /readyz can say ready, as when those producers had started once."""
    absent = [spec for service_name, spec in STREAMS.items() if service_name not in running]
    print(f"declaring {', '.join(spec.name for spec in absent)} (their producers are not part of this benchmark) …",
          flush=True)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for spec in absent:
            await declare(js, spec, replicas=1)
    finally:
        await nc.close()


def issue_code(identity_url: str, token: str) -> str:
    """Region, deputy and the deputy's QR code, as an admin sets them up before the deputy shows the code."""

    def expect(resp: httpx.Response, ok: set[int]) -> httpx.Response:
        if resp.status_code not in ok:
            raise RuntimeError(f"identity {resp.request.method} {resp.request.url.path} answered "
                               f"{resp.status_code}: {resp.text[:500]}")
        return resp

    print("setting up region 320923 (with its city and province), deputy D1 and D1's code on identity …",
          flush=True)
    with httpx.Client(base_url=identity_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for code, name, parent in REGIONS:
            expect(client.put(f"/v1/regions/{code}", json={"name": name, "parent_code": parent}), {200, 201})
        deputy = {k: v for k, v in DEPUTY.items() if k != "id"}
        expect(client.put(f"/v1/deputies/{DEPUTY['id']}", json=deputy), {200, 201})
        issued = expect(client.post(f"/v1/deputies/{DEPUTY['id']}/code"), {201}).json()
    print(f"  code {issued['code']} ({issued['url']})", flush=True)
    return str(issued["code"])


def preflight(intake_url: str, code: str) -> str | None:
    """One report before the load: what is wrong with the endpoint, or None."""
    print("pre-flight: one anonymous report to intake …", flush=True)
    try:
        resp = httpx.post(f"{intake_url}{PATH}", content=ANONYMOUS.body(code, next(_numbers)),
                          headers=JSON_HEADERS, timeout=30)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if resp.status_code != 201:
        return f"HTTP {resp.status_code}: {resp.text[:500]}"
    try:
        receipt = resp.json()
    except ValueError:
        return f"201 but not JSON: {resp.text[:300]}"
    missing = RECEIPT_FIELDS - set(receipt) if isinstance(receipt, dict) else RECEIPT_FIELDS
    if missing:
        print(f"  warning: the receipt lacks {', '.join(sorted(missing))}: {resp.text[:300]}", flush=True)
    else:
        print(f"  201 receipt {receipt['receipt_code']}, status {receipt['status']}", flush=True)
    return None


# ---------------------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _cores(cpu: dict[str, float]) -> str:
    return ", ".join(f"{label} {value:.2f}" for label, value in cpu.items())


def report(runs: list[Run], problems: list[str], args: argparse.Namespace) -> None:
    print()
    print(f"{'target':34} {'max req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  CPU at max (cores)")
    for run in runs:
        p50, p99 = run.fixed.latency_ms(0.5), run.fixed.latency_ms(0.99)
        print(f"{run.target:34} {run.flat.rate:9.0f} {'-' if p50 is None else f'{p50:.1f}':>8} "
              f"{'-' if p99 is None else f'{p99:.1f}':>8} {sum(run.errors.values()):7d}  {_cores(run.cpu)}")
    print(f"(p50/p99 at {args.rate:g} req/s open loop, from each request's scheduled time; max over "
          f"{args.connections} connections; errors = answers other than 201 in both phases)")

    for run in runs:
        if run.errors:
            kinds = ", ".join(f"{kind} × {n}" for kind, n in run.errors.most_common())
            print(f"\nerrors of {run.target}: {kinds}")
            for sample in run.samples:
                print(f"  {sample}")
        if run.fixed.tally.ok + run.fixed.tally.failed < run.fixed.planned:
            print(f"\nnote: {run.target} got only {run.fixed.tally.ok + run.fixed.tally.failed} of "
                  f"{run.fixed.planned} planned requests at the fixed rate")
        if run.fixed.late_p99_ms > LATE_MS:
            print(f"\nnote: the generator sent 1 % of {run.target}'s fixed-rate requests ≥ "
                  f"{run.fixed.late_p99_ms:.1f} ms late (its event loop was held up, by its own load or a busy "
                  "machine); those delays are in the latencies")

    bare = next((r for r in runs if r.target.startswith("bare")), None)
    ours = [r for r in runs if not r.target.startswith("bare")]
    if bare and bare.cpu.get("generator", 0.0) >= GENERATOR_SATURATED:
        print(f"\nnote: the generator used {bare.cpu['generator']:.2f} cores at the bare app's maximum, so that "
              "maximum is partly the client's; the ratios below flatter ours")

    print()
    for run in ours:
        if bare and bare.flat.rate > 0:
            ratio = run.flat.rate / bare.flat.rate
            verdict = "met" if ratio >= THROUGHPUT_TARGET else "not met"
            print(f"ours/bare throughput, {run.target}: {ratio:.2f} (target ≥ {THROUGHPUT_TARGET:.2f}): {verdict}")
    for run in ours:
        p99 = run.fixed.latency_ms(0.99)
        # Errors at the fixed rate are requests that never got their answer: the target cannot count as met.
        met = p99 is not None and p99 < P99_TARGET_MS and not run.fixed.tally.failed
        print(f"p99 at {args.rate:g} req/s < {P99_TARGET_MS:.0f} ms, {run.target}: {_ms(p99)}"
              f"{f' with {run.fixed.tally.failed} errors' if run.fixed.tally.failed else ''}: "
              f"{'met' if met else 'not met'}")
    if bare:
        print(f"(bare app: p99 {_ms(bare.fixed.latency_ms(0.99))} at {args.rate:g} req/s)")
    for problem in problems:
        print(f"\nnot measured: {problem}")


# ---------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> int:
    runs: list[Run] = []
    problems: list[str] = []
    # uvloop for the generator too: the client's own overhead is what most limits the measurable maximum.
    with stack() as s, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        dsn = s.postgres.url.replace("postgresql+asyncpg", "postgresql")
        pg_pid = {"postgres": s.postgres.child.process.pid} if s.postgres.child and s.postgres.child.process else {}

        print("\n== baseline: bare FastAPI + asyncpg insert ==", flush=True)
        with bare_app(s, dsn) as bare:
            def bare_body() -> bytes:
                return ANONYMOUS.body(BARE_CODE, next(_numbers))

            runs.append(runner.run(measure("bare FastAPI + asyncpg", bare.url, bare_body, args,
                                           {"server": bare.process.pid, **pg_pid}, no_drain)))
            print(f"  bare app RSS {bare.rss / 2**20:.0f} MiB", flush=True)

        if not args.bare_only:
            print("\n== ours: intake service (with identity) ==", flush=True)
            with ExitStack() as services:
                identity_port = free_port()
                identity = services.enter_context(service(s, "identity", identity_port, identity_port))
                code = issue_code(identity.url, s.token("admin"))
                runner.run(declare_foreign_streams(s.nats.url, {"identity", "intake"}))
                intake_port = free_port()
                intake = services.enter_context(service(s, "intake", intake_port, identity_port,
                                                        extra_env={"MINYI_FLOOD_LIMIT": FLOOD_LIMIT},
                                                        profile=args.profile))
                problem = preflight(intake.url, code)
                if problem:
                    problems.append(f"intake's POST {PATH} did not answer 201 to a valid report: {problem}")
                else:
                    pids = {"server": intake.process.pid, "identity": identity.process.pid, **pg_pid}
                    drain = outbox_drain(dsn, "intake")
                    for mix in (ANONYMOUS, REAL_NAME_THIRD):
                        def body(mix: Mix = mix) -> bytes:
                            return mix.body(code, next(_numbers))

                        runs.append(runner.run(measure(f"intake ({mix.name})", intake.url, body, args, pids,
                                                       drain)))
                    print(f"  RSS: intake {intake.rss / 2**20:.0f} MiB, identity {identity.rss / 2**20:.0f} MiB",
                          flush=True)
    report(runs, problems, args)
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase (default 20)")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed request rate in req/s (default 200)")
    parser.add_argument("--connections", type=int, default=32,
                        help="keep-alive connections of the generator (default 32)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="lean",
                        help="HTTP client of the generator: lean (asyncio + httptools, default) or httpx")
    parser.add_argument("--bare-only", action="store_true",
                        help="measure the baseline alone (checks the generator without the services)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run intake under cProfile (CPU clock) and write its statistics to FILE; the "
                             "profiler slows intake about threefold, so its figures are not comparable")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0 or args.connections <= 0:
        parser.error("--seconds, --rate and --connections must be positive")
    sys.exit(main(args))
