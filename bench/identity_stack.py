"""What the benchmarks share: their own servers, the identity service as a real process, and
synthetic people with valid ID numbers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import psutil

from minyi.servers import Nats, Postgres, free_port
from shared import idnumber
from shared.auth import ensure_dev_signing_key, sign_token
from shared.pii import Keyring


@dataclass
class Stack:
    root: Path
    postgres: Postgres
    nats: Nats
    keyring: Keyring
    keys_file: Path

    def env(self, port: int, log_level: str = "WARNING") -> dict[str, str]:
        return {
            **os.environ,
            "MINYI_HOME": str(self.root / "home"),
            "MINYI_DATABASE_URL": self.postgres.url,
            "MINYI_NATS_URL": self.nats.url,
            "MINYI_IDENTITY_PORT": str(port),
            "MINYI_PII_KEYS_FILE": str(self.keys_file),
            "MINYI_DEV_SECRETS": "true",  # the code secret
            "MINYI_LOG_LEVEL": log_level,
        }

    def token(self, role: str, region: str = "") -> str:
        """Region "" (everywhere) is honoured for admin and integration tokens only; staff name theirs."""
        key = ensure_dev_signing_key(self.root / "home" / "keys" / "jwt-signing-key.pem")
        return sign_token(key, issuer="minyi", audience="minyi", sub=f"bench-{role}", roles=[role], region=region)


@contextmanager
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="minyi-bench-") as tmp:
        root = Path(tmp)
        pg = Postgres(root / "pg" / "data", free_port(), root / "pg.log")
        ns = Nats(root / "js", free_port(), free_port(), root / "nats.log", root / "nats.conf")
        print("starting PostgreSQL and NATS …", flush=True)
        pg.start(progress=print)
        ns.start(progress=print)
        keyring = Keyring.generate()
        keys_file = root / "pii-keys.json"
        keys_file.write_text(keyring.to_json())
        try:
            yield Stack(root, pg, ns, keyring, keys_file)
        finally:
            ns.stop()
            pg.stop()


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


@contextmanager
def identity(stack: Stack, log_level: str = "WARNING") -> Iterator[Service]:
    """The identity service as `minyi serve identity` runs it; ready when /readyz says so."""
    port = free_port()
    log = open(stack.root / f"identity-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "minyi.cli", "serve", "identity"], env=stack.env(port, log_level),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"identity exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"identity not ready after 60 s; see {log.name}")
            time.sleep(0.1)
        yield Service(proc, url)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def person_id(n: int, born: date) -> str:
    """A valid ID number for synthetic person n, distinct for n < 10**7."""
    region = f"32{n // 1000:04d}"
    first17 = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return first17 + idnumber.check_character(first17)


def birth_date(n: int, election_day: date) -> date:
    # Spread over 0–90 years (all born by now) so a few percent are under 18 on election day.
    return election_day - timedelta(days=60 + (n * 7919) % (90 * 365))


@contextlib.asynccontextmanager
async def ticking(note: Callable[[], Awaitable[str]], every: float = 5.0) -> AsyncIterator[None]:
    """Prints `note()` with the seconds elapsed every few seconds while the block runs."""
    t0 = time.monotonic()

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                print(f"    … {time.monotonic() - t0:4.0f} s: {await note()}", flush=True)
            except Exception as exc:  # a progress line must never end the run
                print(f"    … (progress unavailable: {type(exc).__name__}: {exc})", flush=True)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_growing(label: str, total: int, count: Callable[[], Awaitable[int]], *, stall_seconds: float,
                       stalled: Callable[[int, float], Awaitable[Exception]], poll: float = 0.5,
                       every: float = 5.0) -> float:
    """Waits until `count()` reaches `total`, printing progress; raises `await stalled(done, waited)`
    when the count stops growing for `stall_seconds`. Returns the seconds waited."""
    t0 = time.monotonic()
    next_note = t0 + every
    last, last_change = -1, t0
    while True:
        done = await count()
        now = time.monotonic()
        if done >= total:
            return now - t0
        if done != last:
            last, last_change = done, now
        if now - last_change > stall_seconds:
            raise await stalled(done, now - t0)
        if now >= next_note:
            print(f"    … {label}: {done:,}/{total:,} after {now - t0:.0f} s", flush=True)
            next_note += every
        await asyncio.sleep(poll)
