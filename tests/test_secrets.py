"""A service without its secrets refuses to start, and says which one; only the embedded stack
(MINYI_DEV_SECRETS) makes development secrets of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from busutil import declare_all_streams, fresh_database
from conftest import Servers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from minyi.servers import free_port
from shared.pii import Keyring

START_TIMEOUT = 60


def run_service(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"services.{name}"], env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT)


def production_env(server_env: dict[str, str], home: Path, database_url: str, name: str) -> dict[str, str]:
    """A service's environment as a production operator would write it, with no secret files yet."""
    env = {k: v for k, v in server_env.items()
           if k not in ("MINYI_PII_KEYS_FILE", "MINYI_CODE_SECRET_FILE", "MINYI_DEV_SECRETS")}
    env.update({"MINYI_HOME": str(home), "MINYI_DATABASE_URL": database_url, "MINYI_DEV_SECRETS": "false",
                f"MINYI_{name.upper()}_PORT": str(free_port())})
    return env


async def schemas(database_url: str) -> set[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT schema_name FROM information_schema.schemata"))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


def write_keyring(path: Path) -> Path:
    path.write_text(Keyring.generate().to_json(), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("name", ["intake", "routing", "identity"])
async def test_a_service_that_keeps_personal_data_refuses_to_start_without_its_keyring(
    name: str, servers: Servers, server_env: dict[str, str], tmp_path: Path
) -> None:
    database_url = await fresh_database(servers.database_url, f"secrets_{name}")
    done = run_service(name, production_env(server_env, tmp_path / "home", database_url, name))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{name} cannot start: MINYI_PII_KEYS_FILE is not set" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, "a configuration error is one line, not a crash"
    # Nothing made on the way: no development keys, no schema.
    assert not (tmp_path / "home").exists()
    assert name not in await schemas(database_url)


async def test_identity_names_the_missing_code_secret_and_a_short_one(
    servers: Servers, server_env: dict[str, str], tmp_path: Path
) -> None:
    database_url = await fresh_database(servers.database_url, "secrets_identity_codes")
    env = production_env(server_env, tmp_path / "home", database_url, "identity")
    env["MINYI_PII_KEYS_FILE"] = str(write_keyring(tmp_path / "pii-keys.json"))
    done = run_service("identity", env)
    assert done.returncode == 2 and "cannot start: MINYI_CODE_SECRET_FILE is not set" in done.stderr, \
        done.stderr[-2000:]

    short = tmp_path / "code-secret"
    short.write_bytes(b"x" * 16)
    env["MINYI_CODE_SECRET_FILE"] = str(short)
    done = run_service("identity", env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"MINYI_CODE_SECRET_FILE ({short}) must hold at least 32 bytes" in done.stderr, done.stderr[-2000:]
    assert "identity" not in await schemas(database_url)


async def test_a_service_without_personal_data_needs_no_keyring(servers: Servers, tmp_path: Path) -> None:
    from serviceutil import served

    from services.scoring.service import SPEC
    from shared.settings import Settings

    await declare_all_streams(servers.nats_url)
    port = free_port()
    settings = Settings(database_url=servers.database_url, nats_url=servers.nats_url, home=tmp_path / "home",
                        scoring_port=port, dev_secrets=False)
    async with served(SPEC, settings, port) as service:
        ready = await service.client.get("/readyz")
        assert ready.status_code == 200, ready.text
    assert not (tmp_path / "home" / "keys").exists()


def test_development_secrets_are_made_only_when_asked_for(tmp_path: Path) -> None:
    from shared.settings import Settings

    home = tmp_path / "home"
    refused = Settings(home=home, dev_secrets=False)
    with pytest.raises(RuntimeError, match="MINYI_PII_KEYS_FILE is not set"):
        refused.secret_file("pii_keys_file", refused.dev_pii_keys_file)
    allowed = Settings(home=home, dev_secrets=True)
    assert allowed.secret_file("pii_keys_file", allowed.dev_pii_keys_file) == (allowed.dev_pii_keys_file, True)
    named = Settings(home=home, dev_secrets=True, pii_keys_file=tmp_path / "operator.json")
    assert named.secret_file("pii_keys_file", named.dev_pii_keys_file) == (tmp_path / "operator.json", False)


async def test_a_service_names_a_missing_proxy_secret_file(
    servers: Servers, server_env: dict[str, str], tmp_path: Path
) -> None:
    database_url = await fresh_database(servers.database_url, "secrets_scoring_proxy")
    env = production_env(server_env, tmp_path / "home", database_url, "scoring")
    env["MINYI_PROXY_SECRET_FILE"] = str(tmp_path / "absent")
    done = run_service("scoring", env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"scoring cannot start: MINYI_PROXY_SECRET_FILE ({tmp_path / 'absent'})" in done.stderr, \
        done.stderr[-2000:]
    assert "Traceback" not in done.stderr
