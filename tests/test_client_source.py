"""Whose address flood control counts, at the ASGI level: the connection's, a trusted ingress's
X-Forwarded-For, or the citizen a trusted proxy (the web tier) names with the shared secret; and the
proxy secret as a service loads it."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from shared.client_source import STATE_KEY, ClientPseudonym
from shared.proxy import ADDRESS_HEADER, MIN_CHARS, SECRET_HEADER, load_proxy_secret
from shared.settings import Settings

SECRET = b"proxy-secret-for-the-web-tier-0123456789"
KEY = b"k" * 32


class Seen:
    """The innermost app: keeps the scope every handler, log and trace would get."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)


async def through(wrapper: ClientPseudonym, seen: Seen, headers: list[tuple[str, str]],
                  client: tuple[str, int] = ("10.0.0.8", 40000)) -> Scope:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "client": client,
                             "headers": [(n.lower().encode(), v.encode()) for n, v in headers]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(_message: dict[str, Any]) -> None:
        return None

    await wrapper(scope, receive, send)
    return seen.scopes[-1]


def wrapped(**options: Any) -> tuple[ClientPseudonym, Seen]:
    seen = Seen()
    return ClientPseudonym(seen, key=KEY, **options), seen


def source(scope: Scope) -> str:
    return str(scope["state"][STATE_KEY])


async def test_the_named_citizen_counts_with_the_right_secret_and_the_headers_go() -> None:
    wrapper, seen = wrapped(proxy_secret=SECRET)
    scope = await through(wrapper, seen, [(SECRET_HEADER, SECRET.decode()), (ADDRESS_HEADER, "192.0.2.60"),
                                          ("Accept", "application/json")])
    assert source(scope) == wrapper.pseudonym("192.0.2.60")
    assert scope["client"] is None
    assert scope["headers"] == [(b"accept", b"application/json")], "neither proxy header reaches anything inside"


@pytest.mark.parametrize("headers", [
    [(SECRET_HEADER, "wrong-secret-0123456789-abcdefghijklmnopqr"), (ADDRESS_HEADER, "192.0.2.60")],
    [(SECRET_HEADER, SECRET.decode()[:-1]), (ADDRESS_HEADER, "192.0.2.60")],
    [(ADDRESS_HEADER, "192.0.2.60")],
    [(SECRET_HEADER, SECRET.decode())],
    [(SECRET_HEADER, SECRET.decode()), (SECRET_HEADER, SECRET.decode()), (ADDRESS_HEADER, "192.0.2.60")],
    [(SECRET_HEADER, SECRET.decode()), (ADDRESS_HEADER, "192.0.2.60"), (ADDRESS_HEADER, "192.0.2.61")],
    [(SECRET_HEADER, SECRET.decode()), (ADDRESS_HEADER, "1" * 65)],
], ids=["wrong secret", "secret cut short", "no secret", "no address", "two secrets", "two addresses",
        "not an address"])
async def test_otherwise_the_connection_counts_and_the_headers_still_go(headers: list[tuple[str, str]]) -> None:
    wrapper, seen = wrapped(proxy_secret=SECRET)
    scope = await through(wrapper, seen, [*headers, ("Accept", "*/*")])
    assert source(scope) == wrapper.pseudonym("10.0.0.8")
    assert scope["headers"] == [(b"accept", b"*/*")]


async def test_a_service_without_a_secret_trusts_no_proxy() -> None:
    for secret in (None, b"", lambda: None):
        wrapper, seen = wrapped(proxy_secret=secret)
        scope = await through(wrapper, seen, [(SECRET_HEADER, ""), (ADDRESS_HEADER, "192.0.2.60")])
        assert source(scope) == wrapper.pseudonym("10.0.0.8")
        assert scope["headers"] == []


async def test_the_secret_is_read_when_a_request_comes_not_when_the_app_is_built() -> None:
    loaded: list[bytes | None] = [None]
    wrapper, seen = wrapped(proxy_secret=lambda: loaded[0])
    headers = [(SECRET_HEADER, SECRET.decode()), (ADDRESS_HEADER, "192.0.2.60")]
    assert source(await through(wrapper, seen, headers)) == wrapper.pseudonym("10.0.0.8")
    loaded[0] = SECRET
    assert source(await through(wrapper, seen, headers)) == wrapper.pseudonym("192.0.2.60")


async def test_the_web_tiers_word_wins_over_a_trusted_ingress() -> None:
    wrapper, seen = wrapped(proxy_secret=SECRET, trust_forwarded_for=True)
    forwarded = [("X-Forwarded-For", "198.51.100.1, 10.0.0.8")]
    assert source(await through(wrapper, seen, forwarded)) == wrapper.pseudonym("10.0.0.8")
    scope = await through(wrapper, seen, [*forwarded, (SECRET_HEADER, SECRET.decode()),
                                          (ADDRESS_HEADER, "192.0.2.60")])
    assert source(scope) == wrapper.pseudonym("192.0.2.60")
    assert scope["headers"] == []


# --- the secret as a service loads it -------------------------------------------------------------------------------


def test_without_a_file_or_development_secrets_no_proxy_is_trusted(tmp_path: Path) -> None:
    assert load_proxy_secret(Settings(home=tmp_path / "home", dev_secrets=False)) is None
    assert not (tmp_path / "home").exists(), "nothing made"


def test_a_development_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", dev_secrets=True)
    first = load_proxy_secret(settings)
    assert first is not None and len(first) >= MIN_CHARS and first.isascii()
    path = settings.dev_proxy_secret_file
    assert path == (tmp_path / "home" / "keys" / "proxy-secret.txt").resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_proxy_secret(Settings(home=tmp_path / "home", dev_secrets=True)) == first, "the web tier reads it too"


def test_the_operators_file_is_read_as_text_and_a_poor_one_refused(tmp_path: Path) -> None:
    good = tmp_path / "proxy-secret"
    good.write_text(SECRET.decode() + "\n", encoding="utf-8")
    assert load_proxy_secret(Settings(home=tmp_path, dev_secrets=True, proxy_secret_file=good)) == SECRET
    for content in (b"short", b"x" * 31, "密钥".encode() * 20, b"with space " * 5):
        poor = tmp_path / "poor"
        poor.write_bytes(content)
        with pytest.raises(RuntimeError, match="MINYI_PROXY_SECRET_FILE"):
            load_proxy_secret(Settings(home=tmp_path, proxy_secret_file=poor))
    with pytest.raises(RuntimeError, match=r"MINYI_PROXY_SECRET_FILE .*absent.*No such file"):
        load_proxy_secret(Settings(home=tmp_path, proxy_secret_file=tmp_path / "absent"))
