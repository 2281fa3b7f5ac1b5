"""What the fault tests need: servers of their own (they are restarted), the five services as real
processes started the way `minyi up` starts them, two replicas of each as a deployment runs them, a
steady load of citizens' reports over HTTP spread across intake's replicas, and readers of what the
services wrote. Every wait has a deadline and fails with the logs that explain it."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
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
    """One replica of a service: its own process on its own port."""

    name: str
    replica: int  # 1, 2, …
    port: int
    child: Child
    restarts: int = 0

    @property
    def label(self) -> str:
        return f"{self.name}-{self.replica}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# How long a claimed ticket is held before another sender may take it.
LEASE_SECONDS = 5
# Short delays so that recovery fits in a test; the mechanisms are the production ones. The
# consumers keep their default retries (deliveries 1, 2, 4 and 8 s apart), which the PostgreSQL
# outage of the test outlasts on purpose; small pools, as five services share one small server.
FAST = {
    "MINYI_OUTBOX_POLL_SECONDS": "0.2",
    "MINYI_ACK_WAIT_SECONDS": "10",
    "MINYI_GRID_RETRY_BASE_SECONDS": "0.2",
    "MINYI_GRID_RETRY_MAX_SECONDS": "2",
    "MINYI_GRID_DISPATCH_POLL_SECONDS": "0.2",
    "MINYI_GRID_LEASE_SECONDS": str(LEASE_SECONDS),
    "MINYI_GRID_TIMEOUT_SECONDS": "5",
    "MINYI_DB_POOL_SIZE": "5",
    "MINYI_FLOOD_LIMIT": "100000/minute",
}


# Replicas of every service, as the smallest production overlay runs them: events are shared by
# the replicas' consumers, outboxes relayed by both, tickets and clocks claimed by either.
REPLICAS = 2


class Stack:
    """The servers, every service as `replicas` processes, and where their logs are."""

    def __init__(self, root: Path, replicas: int = REPLICAS) -> None:
        self.root = root
        self.logs = root / "logs"
        self.servers = OwnServers.under(root)
        self.ports = {name: [free_port() for _ in range(replicas)] for name in SERVICES}
        self.services: dict[str, list[ServiceProcess]] = {}
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

    def env(self, name: str, port: int) -> dict[str, str]:
        """What `minyi up` gives a service, pointed at this module's servers, listening on `port`.
        Each routing replica names itself in the tickets it opens as where callbacks go."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
        env.update({
            "MINYI_DATABASE_URL": self.database_url, "MINYI_NATS_URL": self.nats_url,
            "MINYI_TEMPORAL_ADDRESS": self.servers.temporal.address, "MINYI_HOME": str(self.root / "home"),
            "MINYI_JWT_PUBLIC_KEY_FILE": str(self.key_file), "MINYI_DEV_SECRETS": "true", "PYTHONUNBUFFERED": "1",
            **FAST,
        })
        env.update({f"MINYI_{other.upper()}_PORT": str(ports[0]) for other, ports in self.ports.items()})
        env[f"MINYI_{name.upper()}_PORT"] = str(port)
        return env

    def start_services(self) -> None:
        for name in SERVICES:
            self.services[name] = []
            for replica, port in enumerate(self.ports[name], start=1):
                child = Child(f"{name}-{replica}", [sys.executable, "-m", f"services.{name}"],
                              self.logs / f"{name}-{replica}.log", env=self.env(name, port),
                              cwd=Path(__file__).resolve().parent.parent)
                child.start()
                self.services[name].append(ServiceProcess(name, replica, port, child))

    def replica(self, name: str, replica: int = 1) -> ServiceProcess:
        return self.services[name][replica - 1]

    def processes(self, names: Iterable[str] | None = None) -> list[ServiceProcess]:
        """Every replica of the named services (all services when None)."""
        chosen = list(names) if names is not None else list(self.services)
        return [svc for name in chosen for svc in self.services[name]]

    def url(self, name: str, replica: int = 1) -> str:
        return self.replica(name, replica).url

    def urls(self, name: str) -> list[str]:
        return [svc.url for svc in self.services[name]]

    def kill(self, name: str, replica: int = 1) -> None:
        """SIGKILL one replica: no shutdown hook runs, whatever was in hand is cut off."""
        self.replica(name, replica).child.kill()

    def restart(self, name: str, replica: int = 1) -> None:
        """What `minyi up`'s supervisor (or a Deployment) does for a replica that exited."""
        svc = self.replica(name, replica)
        with svc.child.log_path.open("a") as log:
            log.write(f"\n===== restarted by the fault test (restart {svc.restarts + 1}) =====\n")
        svc.child.start()
        svc.restarts += 1

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.processes())

    def tails(self, names: Iterable[str] | None = None, lines: int = 15) -> str:
        """Log tails of every replica of the named services (or of other children by log name)."""
        out = []
        for name in (list(names) if names is not None else list(self.services)):
            paths = ([svc.child.log_path for svc in self.services[name]] if name in self.services
                     else [self.logs / f"{name}.log"])
            out.extend(f"--- {path.stem} ({path}) ---\n{tail(path, lines)}" for path in paths)
        return "\n".join(out)

    @staticmethod
    async def readiness(svc: ServiceProcess) -> tuple[int, dict[str, str]]:
        """/readyz of one replica: the status code (0 when it does not answer) and its checks."""
        try:
            async with httpx.AsyncClient(timeout=3, trust_env=False) as http:
                resp = await http.get(f"{svc.url}/readyz")
        except httpx.HTTPError as exc:
            return 0, {"http": type(exc).__name__}
        try:
            checks = dict(resp.json().get("checks", {}))
        except ValueError:
            checks = {"body": resp.text[:300]}
        return resp.status_code, checks

    async def wait_ready(self, names: Iterable[str] | None = None, *, replica: int | None = None,
                         timeout: float = 90, why: str = "", ignore: Iterable[str] = ()) -> float:
        """Every replica of the named services (or only `replica`) answers /readyz with 200, or fails
        no check but those in `ignore`."""
        ignored = set(ignore)
        pending = {svc.label: svc for svc in self.processes(names) if replica is None or svc.replica == replica}
        last: dict[str, str] = {}

        async def ready() -> bool:
            for label, svc in sorted(pending.items()):
                if not svc.child.alive():
                    raise AssertionError(f"{label} exited with code {svc.child.exit_code()} ({why})\n"
                                         + tail(svc.child.log_path, 40))
                status, checks = await self.readiness(svc)
                last[label] = f"{status} {checks}"
                if status == 200 or (status == 503 and all(v == "ok" for k, v in checks.items() if k not in ignored)):
                    del pending[label]
            return not pending

        async def explain() -> str:
            return "\n".join(f"{label}: /readyz {last.get(label)}" for label in sorted(pending)) + "\n" + \
                "\n".join(f"--- {label} ---\n{tail(svc.child.log_path, 30)}" for label, svc in sorted(pending.items()))

        return await until(ready, timeout=timeout, what=f"/readyz of {', '.join(sorted(pending))} ({why})",
                           explain=explain)

    async def wait_noticed(self, check: str, *, timeout: float = 30, why: str = "") -> float:
        """Every replica's /readyz names `check` failing: each has noticed what the test took away."""
        pending = {svc.label: svc for svc in self.processes()}

        async def noticed() -> bool:
            for label, svc in sorted(pending.items()):
                _status, checks = await self.readiness(svc)
                if checks.get(check, "ok") != "ok":
                    del pending[label]
            return not pending

        return await until(noticed, timeout=timeout, what=f"{', '.join(sorted(pending))} to report {check} "
                           f"failing ({why})", explain=lambda: self.tails(lines=10))

    def stop(self) -> None:
        for svc in self.processes():
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
    n: int
    key: str
    body: dict[str, Any]
    started: float
    report_id: str | None = None
    accepted_at: float | None = None
    attempts: int = 0
    seen: list[str] = field(default_factory=list)
    refused: str | None = None


class Load:
    """Reports at a steady rate, each with its own Idempotency-Key, spread over intake's replicas in
    turn as a load balancer would; what is refused while intake (or what it needs) is down is sent
    again with the same key and body, to the next replica, as a real client behind one would."""

    def __init__(self, urls: Sequence[str], code: str, *, rate: float, give_up_after: float = 150.0) -> None:
        self.urls, self.code, self.rate, self.give_up_after = list(urls), code, rate, give_up_after
        self.submissions: list[Submission] = []
        self.unreachable: Counter[str] = Counter()  # connections refused or cut, by replica URL
        self.accepted_by: Counter[str] = Counter()  # reports answered 201, by replica URL
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
            sub = Submission(n, f"fault-load-{n}", {"channel": "h5", "code": self.code, "anonymous": True,
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
            url = self.urls[(sub.n + sub.attempts) % len(self.urls)]
            sub.attempts += 1
            try:
                resp = await self._http.post(f"{url}/v1/reports", json=sub.body,
                                             headers={"Idempotency-Key": sub.key})
            except httpx.HTTPError as exc:
                sub.seen.append(type(exc).__name__)
                if isinstance(exc, httpx.TransportError):
                    self.unreachable[url] += 1
                await asyncio.sleep(0.5)
                continue
            sub.seen.append(str(resp.status_code))
            if resp.status_code == 201:
                sub.report_id = str(resp.json()["id"])
                sub.accepted_at = time.monotonic()
                self.accepted_by[url] += 1
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


async def undelivered(nats_url: str, streams: Iterable[str]) -> dict[str, int]:
    """Durable consumers of `streams` with messages not yet delivered to any replica."""
    nc = await nats.connect(nats_url, allow_reconnect=False, connect_timeout=3)
    try:
        js = nc.jetstream()
        out: dict[str, int] = {}
        for stream in streams:
            for info in await js.consumers_info(stream):
                if info.num_pending:
                    out[f"{stream}/{info.name}"] = info.num_pending
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
