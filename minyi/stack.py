"""`minyi up`: the embedded servers, then the five services, supervised in the foreground."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minyi import demo, demo_county
from minyi.demo import Endpoints, GridPlatform, Loaded
from minyi.servers import (
    Child,
    Nats,
    Postgres,
    StartError,
    Temporal,
    ensure_nats_passwords,
    http_ok,
    port_is_free,
    referenced_variables,
    tail,
)
from shared.auth import ensure_dev_signing_key, public_key_file, sign_token
from shared.settings import SERVICES, Settings, nats_password_variable

WEB = "web"

READY_TIMEOUT = 90.0
# The demo's stand-in for a grid-governance platform: a separate process, never part of production.
GRID_SIMULATOR = Path(__file__).resolve().parent.parent / "deploy" / "gridsim" / "grid_platform_simulator.py"
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
        self.simulator: Child | None = None
        self.demo_loaded: Loaded | None = None
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
        for svc in (*SERVICES, WEB):
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
            if isinstance(server, Nats):
                self._nats_users(server)
            server.start(progress=say)
            say(f"      ready in {time.monotonic() - t0:.1f}s")
            env[var] = server.address if isinstance(server, Temporal) else server.url
        return env

    def _nats_users(self, server: Nats) -> None:
        """One NATS user per service, per grid platform and registry source the settings name, and `ops`,
        with the permissions each needs; their passwords are made once and kept in the state directory,
        never written into nats.conf."""
        # In a child process: the service modules it imports would otherwise stay in this long-lived
        # supervisor's memory (about 100 MB) for nothing.
        made = subprocess.run([sys.executable, "-m", "minyi.cli", "nats-auth", "--print"], capture_output=True,
                              text=True, check=False)
        if made.returncode != 0:
            raise StartError(f"could not derive the NATS users from the services: {made.stderr.strip()[-500:]}")
        server.authorization = made.stdout
        server.environment = ensure_nats_passwords(self.settings.dev_nats_passwords_file,
                                                   referenced_variables(made.stdout))
        say(f"      {len(server.environment)} NATS users; passwords in {self.settings.dev_nats_passwords_file}")

    def _nats_credentials(self, service: str) -> dict[str, str]:
        """The service's own user on the embedded NATS; nothing for an external one (its environment decides)."""
        if self.nats is None or not self.nats.environment:
            return {}
        return {"MINYI_NATS_USER": service,
                "MINYI_NATS_PASSWORD": self.nats.environment[nats_password_variable(service)]}

    def start_services(self, server_env: dict[str, str]) -> None:
        if not self.settings.jwt_jwks_url and not self.settings.jwt_public_key_file:
            ensure_dev_signing_key(self.settings.dev_signing_key_file)
            server_env["MINYI_JWT_PUBLIC_KEY_FILE"] = str(public_key_file(self.settings.dev_signing_key_file))
        # The stack's own keyring and code secret under MINYI_HOME, unless the operator named files.
        env = {**os.environ, **server_env, "MINYI_HOME": str(self.home), "MINYI_DEV_SECRETS": "true",
               "PYTHONUNBUFFERED": "1"}
        # A scanned code opens the pages of this stack, wherever its port was moved.
        env.setdefault("MINYI_PUBLIC_BASE_URL", f"http://127.0.0.1:{self.settings.web_port}")
        say(f"starting services: {', '.join(SERVICES)} (logs in {self.logs})")
        for name in SERVICES:
            port = self.settings.port_of(name)
            child = Child(name, [sys.executable, "-m", f"services.{name}"], self.logs / f"{name}.log",
                          env={**env, **self._nats_credentials(name)})
            child.start()
            self.services.append(ServiceProcess(name, port, child))
        self.wait_services_ready()
        # The pages last: their readiness is that of the services they call.
        say(f"starting the web pages on :{self.settings.web_port}")
        web = Child(WEB, [sys.executable, "-m", "services.web"], self.logs / f"{WEB}.log", env=env)
        web.start()
        self.services.append(ServiceProcess(WEB, self.settings.web_port, web))
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

    def start_demo(self) -> None:
        """The grid platform simulator, then the demo county loaded through the APIs."""
        if not GRID_SIMULATOR.exists():
            raise StartError(f"--demo needs a source checkout: {GRID_SIMULATOR} is missing")
        port = self.settings.gridsim_port
        if not port_is_free(port):
            raise StartError(f"port {port} for the grid platform simulator is taken; set MINYI_GRIDSIM_PORT")
        secret_file = self.home / "keys" / "gridsim-secret.txt"
        if not secret_file.exists():
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        say(f"demo: starting the grid platform simulator on :{port}")
        self.simulator = Child("gridsim", [sys.executable, str(GRID_SIMULATOR), "--port", str(port),
                                           "--secret-file", str(secret_file), "--callback-delay-ms", "3000"],
                               self.logs / "gridsim.log")
        self.simulator.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not http_ok(f"{url}/healthz"):
            if not self.simulator.alive() or time.monotonic() > deadline:
                raise StartError(f"the grid platform simulator did not start; see {self.simulator.log_path}\n"
                                 f"{tail(self.simulator.log_path)}")
            time.sleep(0.2)
        say("  grid platform simulator up; it calls back accepted → in_progress → resolved after each ticket")
        self.demo_loaded = self.load_demo(GridPlatform(url, secret_file.read_text().strip()))

    def endpoints(self) -> Endpoints:
        urls = {name: f"http://127.0.0.1:{self.settings.port_of(name)}" for name in SERVICES}
        return Endpoints(**urls, web=f"http://127.0.0.1:{self.settings.web_port}")

    def load_demo(self, grid: GridPlatform) -> Loaded:
        key = ensure_dev_signing_key(self.settings.dev_signing_key_file)

        def sign(roles: Sequence[str], region: str) -> str:
            return sign_token(key, issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience,
                              sub="minyi-demo", roles=list(roles), region=region, ttl_seconds=600,
                              # The demo county loads these two registries.
                              sources=("population", "migrant") if "integration" in roles else ())

        codes_file = self.home / "demo" / "codes.json"
        known = json.loads(codes_file.read_text()) if codes_file.exists() else {}
        try:
            loaded = asyncio.run(demo.load(demo_county.county(), self.endpoints(), sign, grid=grid,
                                           known_codes=known, say=say))
        except demo.DemoError as exc:
            raise StartError(f"loading the demo county failed: {exc}") from exc
        codes_file.parent.mkdir(parents=True, exist_ok=True)
        codes_file.write_text(json.dumps(loaded.codes, indent=2))
        return loaded

    # -- run ------------------------------------------------------------------------------------

    def print_urls(self) -> None:
        say("")
        say("Minyi is running:")
        for svc in self.services:
            if svc.name == WEB:
                say(f"  {svc.name:<12} http://127.0.0.1:{svc.port}   (the pages: a QR code opens /q/<code>)")
            else:
                say(f"  {svc.name:<12} http://127.0.0.1:{svc.port}   (API docs: /docs, spec: /openapi.json)")
        if self.postgres:
            say(f"  PostgreSQL   {self.postgres.url.replace('+asyncpg', '')}")
        if self.nats:
            say(f"  NATS         {self.nats.url}   (monitor http://127.0.0.1:{self.settings.nats_monitor_port})")
        if self.temporal:
            say(f"  Temporal     {self.temporal.address}   (UI http://127.0.0.1:{self.settings.temporal_ui_port})")
        if self.simulator:
            say(f"  grid platform simulator  http://127.0.0.1:{self.settings.gridsim_port}/_sim/tickets")
        if self.demo_loaded is not None:
            for line in demo.next_steps(self.demo_loaded, self.endpoints()):
                say(line)
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
        if self.simulator is not None:
            self.simulator.stop(timeout=10)
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


def up(settings: Settings, *, demo: bool = False) -> int:
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
        if demo:
            stack.start_demo()
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

