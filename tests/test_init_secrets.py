"""`minyi init-secrets` and the docker-compose NATS configuration it feeds, on the real nats-server."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from busutil import eventually

from minyi.servers import binary, free_port, tail
from shared.auth import TokenVerifier
from shared.proxy import load_proxy_secret
from shared.settings import Settings, nats_inbox_prefix

REPO = Path(__file__).resolve().parent.parent
USERS = ("intake", "routing", "suggestions", "scoring", "identity", "ops")


def init_secrets(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minyi.cli", "init-secrets", str(directory), *extra],
                          capture_output=True, text=True, timeout=120)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets")
    done = init_secrets(directory, "--dev-jwt")
    assert done.returncode == 0, done.stderr
    assert "made pii-keys.json, code-secret, proxy-secret, web-secret, nats/intake" in done.stdout, done.stdout
    return directory


def test_every_secret_is_made_private(made: Path) -> None:
    files = snapshot(made)
    expected = {"pii-keys.json", "code-secret", "proxy-secret", "web-secret", "nats-users.conf", "jwt-signing-key.pem",
                "jwt-public-key.pem", *(f"nats/{user}" for user in USERS)}
    assert set(files) == expected
    for name in files:
        assert stat.S_IMODE((made / name).stat().st_mode) == 0o600, name
    assert len(files["code-secret"]) == 32
    assert len(files["web-secret"]) == 32
    # The proxy secret travels in a header: text the services load as it is.
    assert load_proxy_secret(Settings(proxy_secret_file=made / "proxy-secret")) == files["proxy-secret"]
    passwords = {files[f"nats/{user}"].decode() for user in USERS}
    assert len(passwords) == len(USERS), "each user has a password of its own"
    for user in USERS:
        password = files[f"nats/{user}"].decode()
        assert f'user: "{user}"\n      password: "{password}"' in files["nats-users.conf"].decode()


def test_a_second_run_keeps_every_file(made: Path) -> None:
    before = snapshot(made)
    done = init_secrets(made, "--dev-jwt")
    assert done.returncode == 0, done.stderr
    assert "made" not in done.stdout and "kept pii-keys.json" in done.stdout, done.stdout
    assert snapshot(made) == before


def test_a_lost_user_password_is_made_again_and_the_variables_follow(tmp_path: Path) -> None:
    first = init_secrets(tmp_path)
    assert first.returncode == 0, first.stderr
    keyring = (tmp_path / "pii-keys.json").read_bytes()
    (tmp_path / "nats" / "scoring").unlink()
    second = init_secrets(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "made nats/scoring, nats-users.conf" in second.stdout, second.stdout
    assert (tmp_path / "pii-keys.json").read_bytes() == keyring
    password = (tmp_path / "nats" / "scoring").read_text()
    assert f'user: "scoring"\n      password: "{password}"' in (tmp_path / "nats-users.conf").read_text()
    assert not (tmp_path / "jwt-signing-key.pem").exists(), "no token key unless asked for"


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    done = init_secrets(tmp_path / "absent")
    assert done.returncode != 0
    assert f"error: {tmp_path / 'absent'}: no such directory" in done.stderr


def test_the_token_key_signs_what_the_services_accept(made: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "minyi.cli", "token", "--key", str(made / "jwt-signing-key.pem"),
                           "--role", "deputy", "--deputy", "D1", "--region", "330110"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    verifier = TokenVerifier(issuer="minyi", audience="minyi",
                             public_key_pem=(made / "jwt-public-key.pem").read_bytes())
    principal = verifier.verify(done.stdout.strip())
    assert principal.deputy_id == "D1" and principal.region == "330110"
    missing = subprocess.run([sys.executable, "-m", "minyi.cli", "token", "--key", str(made / "absent.pem"),
                              "--role", "deputy"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "error: --key" in missing.stderr
    assert not (made / "absent.pem").exists(), "an operator's key is never made up"


@pytest.fixture
def compose_nats(made: Path, tmp_path: Path) -> Iterator[str]:
    """nats-server on docker-compose's files, laid out as the compose file mounts them."""
    etc = tmp_path / "etc-nats"
    etc.mkdir()
    conf = (REPO / "deploy/nats/nats.conf").read_text()
    assert "store_dir: /data/jetstream" in conf
    (etc / "nats.conf").write_text(conf.replace("store_dir: /data/jetstream", f"store_dir: {tmp_path / 'store'}"))
    (etc / "secrets").symlink_to(made)
    port = free_port()
    log = tmp_path / "nats.log"
    with log.open("wb") as out:
        # The compose file's command, with this machine's ports.
        child = subprocess.Popen([binary("nats-server"), "--config", str(etc / "nats.conf"), "-js",
                                  "-p", str(port), "-m", str(free_port())],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "Server is ready" not in log.read_text(errors="replace"):
            assert child.poll() is None, f"nats-server exited with {child.returncode}: {tail(log)}"
            assert time.monotonic() < deadline, f"nats-server not ready in 20 s: {tail(log)}"
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)


async def test_compose_nats_takes_each_service_by_its_password_file_only(made: Path, compose_nats: str) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(compose_nats, allow_reconnect=False, connect_timeout=3)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(compose_nats, user="intake", password=(made / "nats" / "routing").read_text(),
                           allow_reconnect=False, connect_timeout=3)
    # What a compose service reads: MINYI_NATS_USER and MINYI_NATS_PASSWORD_FILE.
    settings = Settings(nats_user="intake", nats_password_file=made / "nats" / "intake")
    assert settings.nats_password is not None
    refusals: list[str] = []

    async def on_error(exc: Exception) -> None:
        refusals.append(str(exc).lower())

    nc = await nats.connect(compose_nats, user="intake", password=settings.nats_password.get_secret_value(),
                            inbox_prefix=nats_inbox_prefix("intake"), error_cb=on_error, allow_reconnect=False,
                            connect_timeout=3)
    try:
        await nc.publish("intake.report.received", b"{}")
        await nc.publish("scoring.entry.recorded", b"{}")
        await nc.flush()

        async def refused() -> bool:
            return any("permissions violation" in r and '"scoring.entry.recorded"' in r for r in refusals)

        await eventually(refused, timeout=5, what="the server to refuse intake publishing scoring's event")
        assert not any("intake.report.received" in r for r in refusals), refusals
    finally:
        await nc.close()
