"""`minyi up`: the embedded servers, then the five services, supervised in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from minyi.servers import Child, Nats, Postgres, StartError, Temporal, http_ok, port_is_free, tail
from shared.auth import ensure_dev_signing_key, public_key_file
from shared.settings import SERVICES, Settings

READY_TIMEOUT = 90.0
RESTARTS_ALLOWED = 5
RESTART_WINDOW = 600.0


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class ServiceProcess:
    name: str
    port: int
    child: Child
    restarts: deque[float] = field(default_factory=deque)

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


class Stack:
    """Owns every child process; stops them services first, then Temporal, NATS, PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir
        self.logs = self.home / "logs"
        self.postgres: Postgres | None = None
        self.nats: Nats | None = None
        self.temporal: Temporal | None = None
        self.services: list[ServiceProcess] = []
        self.stopping = threading.Event()
        self.supervising = False

    # -- checks ---------------------------------------------------------------------------------

    def check_ports(self) -> None:
        """Fail before starting anything, with the variable that moves the port."""
        wanted: list[tuple[str, str, int]] = []
        if not self.settings.database_url:
            wanted.append(("PostgreSQL", "MINYI_POSTGRES_PORT", self.settings.postgres_port))
        if not self.settings.nats_url:
            wanted.append(("NATS", "MINYI_NATS_PORT", self.settings.nats_port))
            wanted.append(("NATS monitor", "MINYI_NATS_MONITOR_PORT", self.settings.nats_monitor_port))
        if not self.settings.temporal_address:
            wanted.append(("Temporal", "MINYI_TEMPORAL_PORT", self.settings.temporal_port))
            wanted.append(("Temporal UI", "MINYI_TEMPORAL_UI_PORT", self.settings.temporal_ui_port))
        for svc in SERVICES:
            wanted.append((f"the {svc} service", f"MINYI_{svc.upper()}_PORT", self.settings.port_of(svc)))
        for what, var, port in wanted:
            if not port_is_free(port):
                raise StartError(
                    f"port {port} for {what} is already in use (another `minyi up`?); "
                    f"stop that process or set {var} to a free port"
                )

    # -- start ----------------------------------------------------------------------------------

    def start_servers(self) -> dict[str, str]:
        """Start each server that has no external URL set; return the URLs the services get."""
        s = self.settings
        self.postgres = Postgres(self.home / "postgres" / "data", s.postgres_port, self.logs / "postgres.log")
        self.nats = Nats(self.home / "nats" / "jetstream", s.nats_port, s.nats_monitor_port,
                         self.logs / "nats.log", self.home / "nats" / "nats.conf")
        self.temporal = Temporal(self.home / "temporal" / "temporal.db", s.temporal_port, s.temporal_ui_port,
                                 self.logs / "temporal.log")
        plan: list[tuple[str, str | None, str, str, str]] = [
            ("MINYI_DATABASE_URL", s.database_url,
             f"PostgreSQL on 127.0.0.1:{s.postgres_port} (data in {self.home / 'postgres'})", "PostgreSQL",
             "postgres"),
            ("MINYI_NATS_URL", s.nats_url, f"NATS with JetStream on 127.0.0.1:{s.nats_port}", "NATS", "nats"),
            ("MINYI_TEMPORAL_ADDRESS", s.temporal_address, f"Temporal dev server on 127.0.0.1:{s.temporal_port}",
             "Temporal", "temporal"),
        ]
        env: dict[str, str] = {}
        for step, (var, external, what, name, attr) in enumerate(plan, start=1):
            if external:
                say(f"[{step}/{len(plan)}] {name}: using {var} ({_redact(external)})")
                env[var] = external
                setattr(self, attr, None)  # not ours: never stopped by us
                continue
            server: Postgres | Nats | Temporal = getattr(self, attr)
            say(f"[{step}/{len(plan)}] {what}")
            t0 = time.monotonic()
            server.start(progress=say)
            say(f"      ready in {time.monotonic() - t0:.1f}s")
            env[var] = server.address if isinstance(server, Temporal) else server.url
        return env

    def start_services(self, server_env: dict[str, str]) -> None:
        if not self.settings.jwt_jwks_url and not self.settings.jwt_public_key_file:
            ensure_dev_signing_key(self.settings.dev_signing_key_file)
            server_env["MINYI_JWT_PUBLIC_KEY_FILE"] = str(public_key_file(self.settings.dev_signing_key_file))
        env = {**os.environ, **server_env, "MINYI_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        say(f"starting services: {', '.join(SERVICES)} (logs in {self.logs})")
        for name in SERVICES:
            port = self.settings.port_of(name)
            child = Child(name, [sys.executable, "-m", f"services.{name}"], self.logs / f"{name}.log",
                          env=env)
            child.start()
            self.services.append(ServiceProcess(name, port, child))
        self.wait_services_ready()

    def wait_services_ready(self) -> None:
        start = time.monotonic()
        pending = {svc.name: svc for svc in self.services}
        next_report = start + 3
        while pending:
            if self.stopping.is_set():
                raise KeyboardInterrupt
            for name, svc in list(pending.items()):
                if not svc.child.alive():
                    raise StartError(
                        f"the {name} service exited with code {svc.child.exit_code()} while starting; "
                        f"see {svc.child.log_path}\n{tail(svc.child.log_path)}"
                    )
                if http_ok(svc.ready_url, timeout=1.0):
                    say(f"  {name} ready on :{svc.port} ({time.monotonic() - start:.1f}s)")
                    del pending[name]
            elapsed = time.monotonic() - start
            if pending and elapsed > READY_TIMEOUT:
                names = ", ".join(sorted(pending))
                raise StartError(
                    f"{names} did not answer /readyz with 200 within {READY_TIMEOUT:.0f}s; "
                    f"see {self.logs}/<service>.log"
                )
            if pending and time.monotonic() >= next_report:
                say(f"  … waiting for {', '.join(sorted(pending))} ({elapsed:.0f}s)")
                next_report = time.monotonic() + 5
            time.sleep(0.3)

    # -- run ------------------------------------------------------------------------------------

    def print_urls(self) -> None:
        say("")
        say("Minyi is running:")
        for svc in self.services:
            say(f"  {svc.name:<12} http://127.0.0.1:{svc.port}   (API docs: /docs, spec: /openapi.json)")
        if self.postgres:
            say(f"  PostgreSQL   {self.postgres.url.replace('+asyncpg', '')}")
        if self.nats:
            say(f"  NATS         {self.nats.url}   (monitor http://127.0.0.1:{self.settings.nats_monitor_port})")
        if self.temporal:
            say(f"  Temporal     {self.temporal.address}   (UI http://127.0.0.1:{self.settings.temporal_ui_port})")
        say("")
        say("A token for the APIs:  minyi token --role admin")
        say("Press Ctrl-C to stop everything.")

    def supervise(self) -> int:
        """Restart a service that dies (a few times); stop everything if a server dies."""
        while not self.stopping.wait(1.0):
            for server in (self.postgres, self.nats, self.temporal):
                if server is not None and server.child is not None and not server.child.alive():
                    say(f"error: {server.child.name} exited with code {server.child.exit_code()}; "
                        f"see {server.child.log_path}. Stopping.")
                    return 1
            for svc in self.services:
                if svc.child.alive():
                    continue
                now = time.monotonic()
                while svc.restarts and now - svc.restarts[0] > RESTART_WINDOW:
                    svc.restarts.popleft()
                if len(svc.restarts) >= RESTARTS_ALLOWED:
                    say(f"error: the {svc.name} service keeps exiting (code {svc.child.exit_code()}); "
                        f"see {svc.child.log_path}. Stopping.")
                    return 1
                say(f"warning: the {svc.name} service exited with code {svc.child.exit_code()}; restarting it "
                    f"(see {svc.child.log_path})")
                svc.restarts.append(now)
                svc.child.start()
        return 0

    def stop(self) -> None:
        if self.services:
            say("stopping services …")
        for svc in self.services:
            svc.child.signal(signal.SIGTERM)
        for svc in self.services:
            svc.child.stop(timeout=30)
        for server, name in ((self.temporal, "Temporal"), (self.nats, "NATS"), (self.postgres, "PostgreSQL")):
            if server is not None:
                say(f"stopping {name} …")
                server.stop()
        say("stopped.")


def _redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def up(settings: Settings) -> int:
    stack = Stack(settings)

    def on_signal(signum: int, frame: object) -> None:
        stack.stopping.set()
        if not stack.supervising:
            # Still starting: unwind at once; `finally` stops whatever is already up.
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        stack.check_ports()
        say(f"Minyi: state in {settings.state_dir}")
        server_env = stack.start_servers()
        if stack.stopping.is_set():
            return 130
        stack.start_services(server_env)
        stack.print_urls()
        stack.supervising = True
        code = stack.supervise()
    except StartError as exc:
        say(f"error: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        # A second Ctrl-C must not cut the orderly stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.supervising = True
        stack.stop()
    return code

