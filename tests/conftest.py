"""Real servers for the whole test session: PostgreSQL, NATS with JetStream, Temporal.

They are the same binaries `minyi up` runs, started on free ports under a temporary directory,
and stopped (with every child process) when the session ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minyi.servers import Nats, Postgres, Temporal, free_port

# Services in tests make their keyring and code secret under their MINYI_HOME, as `minyi up`'s do;
# tests of the refusal without them set it back to false.
os.environ.setdefault("MINYI_DEV_SECRETS", "true")


@dataclass
class Servers:
    root: Path
    postgres: Postgres
    nats: Nats
    temporal: Temporal

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def temporal_address(self) -> str:
        return self.temporal.address


def _progress(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("servers")
    t0 = time.monotonic()
    postgres = Postgres(root / "postgres" / "data", free_port(), root / "logs" / "postgres.log")
    nats = Nats(root / "nats" / "js", free_port(), free_port(), root / "logs" / "nats.log", root / "nats" / "nats.conf")
    temporal = Temporal(root / "temporal" / "temporal.db", free_port(), free_port(), root / "logs" / "temporal.log")
    started: list[Postgres | Nats | Temporal] = []
    try:
        for server in (postgres, nats, temporal):
            server.start(progress=_progress)
            started.append(server)
        _progress(f"test servers up in {time.monotonic() - t0:.1f}s under {root}")
        yield Servers(root, postgres, nats, temporal)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="session")
def server_env(servers: Servers) -> dict[str, str]:
    """Environment for a Minyi process that should use the session's servers."""
    return {
        **os.environ,
        "MINYI_DATABASE_URL": servers.database_url,
        "MINYI_NATS_URL": servers.nats_url,
        "MINYI_TEMPORAL_ADDRESS": servers.temporal_address,
    }


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[Nats]:
    """A NATS server of the test's own: one it may kill and restart, or fill without touching others'."""
    server = Nats(tmp_path / "js", free_port(), free_port(), tmp_path / "nats.log", tmp_path / "nats.conf")
    server.start()
    try:
        yield server
    finally:
        server.stop()
