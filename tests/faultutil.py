"""What the fault tests need: servers of their own (they are restarted), the five services as real
processes started the way `minyi up` starts them, a steady load of citizens' reports over HTTP, and
readers of what the services wrote. Every wait has a deadline and fails with the logs that explain it."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from identityutil import KEY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from minyi.servers import Child, Nats, Postgres, Temporal, free_port, tail
from shared.auth import public_pem
from shared.settings import SERVICES

_FIRST_WORD: list[float] = []


def say(line: str) -> None:
    """Progress, with the seconds since the first word, so a slow step shows where the time went."""
    now = time.monotonic()
    _FIRST_WORD[:] = _FIRST_WORD or [now]
    print(f"[faults +{now - _FIRST_WORD[0]:6.1f}s] {line}", flush=True)


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str,
                explain: Callable[[], Awaitable[str] | str] | None = None, every: float = 5.0,
                interval: float = 0.3) -> float:
    """Wait for `check`, saying every few seconds that we still wait; on the deadline, fail with
    what was awaited and `explain()` (counts, log tails). Returns the seconds it took."""
    start = time.monotonic()
    next_word = start + every
    while True:
        if await check():
            return time.monotonic() - start
        now = time.monotonic()
        if now - start > timeout:
            said = explain() if explain is not None else ""
            detail = await said if inspect.isawaitable(said) else said
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        if now >= next_word:
            say(f"  … still waiting for {what} ({now - start:.0f}s)")
            next_word = now + every
        await asyncio.sleep(interval)


# ---- servers ------------------------------------------------------------------------------------


@dataclass
class OwnServers:
    """PostgreSQL, NATS and Temporal of this module alone: the tests restart them."""

    postgres: Postgres
    nats: Nats
    temporal: Temporal

    @classmethod
    def under(cls, root: Path) -> OwnServers:
        logs = root / "logs"
        return cls(Postgres(root / "postgres" / "data", free_port(), logs / "postgres.log"),
                   Nats(root / "nats" / "js", free_port(), free_port(), logs / "nats.log", root / "nats" / "nats.conf"),
                   Temporal(root / "temporal" / "temporal.db", free_port(), free_port(), logs / "temporal.log"))

    def start(self) -> None:
        # From this (the main) thread: a server is told to stop when the thread that started it ends.
        for server in (self.postgres, self.nats, self.temporal):
            t0 = time.monotonic()
            server.start()
            say(f"{type(server).__name__} up in {time.monotonic() - t0:.1f}s")

    def stop(self) -> None:
        for server in (self.temporal, self.nats, self.postgres):
            server.stop()


# ---- services -----------------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    name: str
    port: int
    child: Child
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Short delays so that recovery fits in a test; the mechanisms are the production ones. The
# consumers keep their default retries (deliveries 1, 2, 4 and 8 s apart), which the PostgreSQL
# outage of the test outlasts on purpose; small pools, as five services share one small server.
FAST = {
    "MINYI_OUTBOX_POLL_SECONDS": "0.2",
    "MINYI_ACK_WAIT_SECONDS": "10",
    "MINYI_GRID_RETRY_BASE_SECONDS": "0.2",
    "MINYI_GRID_RETRY_MAX_SECONDS": "2",
    "MINYI_GRID_DISPATCH_POLL_SECONDS": "0.2",
    "MINYI_GRID_LEASE_SECONDS": "5",
    "MINYI_GRID_TIMEOUT_SECONDS": "5",
    "MINYI_DB_POOL_SIZE": "5",
    "MINYI_FLOOD_LIMIT": "100000/minute",
}


class Stack:
    """The servers, the five services as processes, and where their logs are."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.servers = OwnServers.under(root)
        self.ports = {name: free_port() for name in SERVICES}
        self.services: dict[str, ServiceProcess] = {}
        key_file = root / "keys" / "jwt-public-key.pem"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_bytes(public_pem(KEY))  # the key the tests' tokens are signed with
        self.key_file = key_file

    @property
    def database_url(self) -> str:
        return self.servers.postgres.url

    @property
    def nats_url(self) -> str:
        return self.servers.nats.url

    def env(self) -> dict[str, str]:
        """What `minyi up` gives its services, pointed at this module's servers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
        env.update({
            "MINYI_DATABASE_URL": self.database_url, "MINYI_NATS_URL": self.nats_url,
            "MINYI_TEMPORAL_ADDRESS": self.servers.temporal.address, "MINYI_HOME": str(self.root / "home"),
            "MINYI_JWT_PUBLIC_KEY_FILE": str(self.key_file), "MINYI_DEV_SECRETS": "true", "PYTHONUNBUFFERED": "1",
            **FAST,
        })
        env.update({f"MINYI_{name.upper()}_PORT": str(port) for name, port in self.ports.items()})
        return env

    def start_services(self) -> None:
        env = self.env()
        for name in SERVICES:
            child = Child(name, [sys.executable, "-m", f"services.{name}"], self.logs / f"{name}.log", env=env,
                          cwd=Path(__file__).resolve().parent.parent)
            child.start()
            self.services[name] = ServiceProcess(name, self.ports[name], child)

    def url(self, name: str) -> str:
        return self.services[name].url

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, whatever was in hand is cut off."""
        self.services[name].child.kill()

    def restart(self, name: str) -> None:
        """What `minyi up`'s supervisor does for a service that exited."""
        svc = self.services[name]
        with svc.child.log_path.open("a") as log:
            log.write(f"\n===== restarted by the fault test (restart {svc.restarts + 1}) =====\n")
        svc.child.start()
        svc.restarts += 1

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.services.values())

    def tails(self, names: Iterable[str] | None = None, lines: int = 15) -> str:
        chosen = list(names) if names is not None else list(self.services)
        out = []
        for name in chosen:
            path = self.services[name].child.log_path if name in self.services else self.logs / f"{name}.log"
            out.append(f"--- {name} ({path}) ---\n{tail(path, lines)}")
        return "\n".join(out)

    async def readiness(self, name: str) -> tuple[int, str]:
        try:
            async with httpx.AsyncClient(timeout=3, trust_env=False) as http:
                resp = await http.get(f"{self.url(name)}/readyz")
                return resp.status_code, resp.text
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}"

    async def wait_ready(self, names: Iterable[str] | None = None, *, timeout: float = 90, why: str = "") -> float:
        pending = set(names) if names is not None else set(self.services)
        last: dict[str, str] = {}

        async def ready() -> bool:
            for name in sorted(pending):
                svc = self.services[name]
                if not svc.child.alive():
                    raise AssertionError(f"{name} exited with code {svc.child.exit_code()} ({why})\n"
                                         + self.tails([name], 40))
                status, body = await self.readiness(name)
                last[name] = f"{status} {body[:300]}"
                if status == 200:
                    pending.discard(name)
            return not pending

        async def explain() -> str:
            return "\n".join(f"{n}: /readyz {last.get(n)}" for n in sorted(pending)) + "\n" + self.tails(pending, 30)

        return await until(ready, timeout=timeout, what=f"/readyz of {', '.join(sorted(pending))} ({why})",
                           explain=explain)

    def stop(self) -> None:
        for svc in self.services.values():
            svc.child.stop(timeout=20)


# ---- a steady load of reports ---------------------------------------------------------------------

CONTENTS = (
    "人民路和建设路交叉口的红绿灯坏了两天了，早高峰车辆乱成一团",
    "幸福小区12号楼门口的路灯不亮了，晚上走路很危险",
    "菜市场旁边的垃圾站三天没清运，味道很大",
    "东门桥下的下水道堵了，污水漫到路面上",
)
RETRYABLE = frozenset({429, 500, 502, 503, 504})


@dataclass
class Submission:
    key: str
    body: dict[str, Any]
    started: float
    report_id: str | None = None
    accepted_at: float | None = None
    attempts: int = 0
    seen: list[str] = field(default_factory=list)
    refused: str | None = None


class Load:
    """Reports at a steady rate, each with its own Idempotency-Key; what is refused while intake (or
    what it needs) is down is sent again with the same key and body, as a real client would."""

    def __init__(self, url: str, code: str, *, rate: float, give_up_after: float = 150.0) -> None:
        self.url, self.code, self.rate, self.give_up_after = url, code, rate, give_up_after
        self.submissions: list[Submission] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(15, connect=3), trust_env=False,
                                       limits=httpx.Limits(max_connections=50))

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="report-load")

    async def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            sub = Submission(f"fault-load-{n}", {"channel": "h5", "code": self.code, "anonymous": True,
                                                 "content": f"{CONTENTS[n % len(CONTENTS)]}（第{n}条）"},
                             time.monotonic())
            self.submissions.append(sub)
            task = asyncio.create_task(self._submit(sub))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=1 / self.rate)
            except TimeoutError:
                pass

    async def _submit(self, sub: Submission) -> None:
        while time.monotonic() - sub.started < self.give_up_after:
            sub.attempts += 1
            try:
                resp = await self._http.post(f"{self.url}/v1/reports", json=sub.body,
                                             headers={"Idempotency-Key": sub.key})
            except httpx.HTTPError as exc:
                sub.seen.append(type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            sub.seen.append(str(resp.status_code))
            if resp.status_code == 201:
                sub.report_id = str(resp.json()["id"])
                sub.accepted_at = time.monotonic()
                return
            if resp.status_code not in RETRYABLE:
                sub.refused = f"{resp.status_code} {resp.text[:300]}"
                return
            await asyncio.sleep(0.5)
        sub.refused = f"not accepted within {self.give_up_after:.0f}s: {sub.seen[-5:]}"

    async def stop(self, timeout: float = 60) -> None:
        """Stop sending new reports and wait (bounded) for those in flight to be answered."""
        self._stop.set()
        if self._runner is not None:
            await self._runner

        async def settled() -> bool:
            return not self._tasks

        def explain() -> str:
            waiting = [s for s in self.submissions if s.report_id is None and s.refused is None]
            return "still unanswered: " + "; ".join(f"{s.key} got {s.seen[-3:]}" for s in waiting[:10])

        try:
            await until(settled, timeout=timeout, what=f"{len(self._tasks)} reports in flight to be answered",
                        explain=explain)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self._http.aclose()

    async def abort(self) -> None:
        """Stop at once (a step failed): nothing more is sent and nothing awaited."""
        self._stop.set()
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    @property
    def accepted(self) -> dict[str, str]:
        """Idempotency-Key → report id, of every report intake answered 201."""
        return {s.key: s.report_id for s in self.submissions if s.report_id is not None}

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for s in self.submissions if s.accepted_at is not None and start <= s.accepted_at <= end)

    @property
    def retried(self) -> int:
        """Requests sent again with the same key after a refusal or a lost answer."""
        return sum(s.attempts - 1 for s in self.submissions if s.attempts)

    @property
    def refused(self) -> list[Submission]:
        return [s for s in self.submissions if s.refused is not None]


# ---- readers --------------------------------------------------------------------------------------


class Db:
    """Direct reads of the services' tables (a new connection each time: the server is restarted)."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def dispose(self) -> None:
        await self.engine.dispose()


async def consumer_backlog(nats_url: str) -> dict[str, int]:
    """Every durable consumer with messages not yet delivered or not yet acknowledged."""
    nc = await nats.connect(nats_url, allow_reconnect=False, connect_timeout=3)
    try:
        js = nc.jetstream()
        out: dict[str, int] = {}
        for stream in await js.streams_info():
            for info in await js.consumers_info(stream.config.name or ""):
                behind = (info.num_pending or 0) + (info.num_ack_pending or 0)
                if behind:
                    out[f"{stream.config.name}/{info.name}"] = behind
        return out
    finally:
        await nc.close()


async def outbox_backlog(db: Db) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in SERVICES:
        n = int(await db.scalar(f"SELECT count(*) FROM {name}.outbox WHERE published_at IS NULL") or 0)
        if n:
            out[name] = n
    return out


async def publish_raw(nats_url: str, subject: str, body: bytes, headers: dict[str, str] | None = None) -> bool:
    """Publish to JetStream; True when the stream dropped it as a duplicate of a message it holds."""
    nc = await nats.connect(nats_url)
    try:
        ack = await nc.jetstream().publish(subject, body, headers=headers, timeout=5)
        return bool(ack.duplicate)
    finally:
        await nc.close()


def metric(text_: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text_.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        got = head[len(name):].strip("{}")
        if ",".join(sorted(got.split(","))) == want or (not want and not got):
            return float(value)
    return 0.0


def event_json(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
