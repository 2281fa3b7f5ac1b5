"""The workbench's session cookie: sealed, tamper-evident, ending when idle; safe return paths."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from services.web.work_session import (
    IDLE_SECONDS,
    MAX_AGE_SECONDS,
    TOUCH_EVERY_SECONDS,
    SessionCodec,
    WorkSession,
    login_path,
    safe_next,
    touched,
)

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def a_session(**over: object) -> WorkSession:
    base = WorkSession(sub="d-1", roles=("deputy",), region="330106", access_token="a.b.c", expires_at=NOW + 3600,
                       deputy_id="d-1", name="王丽娟", created_at=NOW, seen_at=NOW)
    return replace(base, **over)  # type: ignore[arg-type]


def test_a_sealed_session_opens_as_it_was_and_only_with_the_same_secret() -> None:
    codec = SessionCodec(SECRET)
    sealed = codec.seal(a_session())
    assert codec.open(sealed) == a_session()
    assert SessionCodec(b"t" * 32).open(sealed) is None
    # Any flipped character, a truncated value or rubbish opens as nobody.
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert codec.open(flipped) is None
    assert codec.open(sealed[:-4]) is None
    assert codec.open("not-a-session") is None and codec.open("") is None and codec.open(None) is None
    # The same session sealed twice looks different (a fresh nonce each time).
    assert codec.seal(a_session()) != sealed


def test_the_cookie_holds_no_readable_claims() -> None:
    sealed = SessionCodec(SECRET).seal(a_session())
    assert "330106" not in sealed and "deputy" not in sealed and "a.b.c" not in sealed


def test_idle_and_old_sessions_end() -> None:
    s = a_session()
    assert not s.idle(NOW + IDLE_SECONDS)
    assert s.idle(NOW + IDLE_SECONDS + 1)
    busy = replace(s, seen_at=NOW + MAX_AGE_SECONDS)  # seen a moment ago, but made 12 hours ago
    assert busy.idle(NOW + MAX_AGE_SECONDS + 1)


def test_a_session_is_rewritten_at_most_once_a_minute() -> None:
    s = a_session()
    assert touched(s, NOW + TOUCH_EVERY_SECONDS - 1) is None
    again = touched(s, NOW + TOUCH_EVERY_SECONDS)
    assert again is not None and again.seen_at == NOW + TOUCH_EVERY_SECONDS


def test_a_token_about_to_run_out_is_refreshed() -> None:
    assert not a_session(expires_at=NOW + 121).needs_refresh(NOW)
    assert a_session(expires_at=NOW + 119).needs_refresh(NOW)


@pytest.mark.parametrize(("wanted", "went"), [
    ("/work/reports/r1?tab=timeline", "/work/reports/r1?tab=timeline"),
    ("https://evil.example/work", "/work"),
    ("//evil.example/work", "/work"),
    ("/\\evil.example", "/work"),
    ("javascript:alert(1)", "/work"),
    ("/work\r\nSet-Cookie: x=1", "/work"),
    ("", "/work"),
    (None, "/work"),
])
def test_only_paths_on_this_site_are_returned_to(wanted: str | None, went: str) -> None:
    assert safe_next(wanted) == went


def test_the_sign_in_link_carries_the_page_to_come_back_to() -> None:
    assert login_path("/work/reports/r1?tab=a&b=c") == "/login?next=/work/reports/r1%3Ftab%3Da%26b%3Dc"
    assert login_path("https://evil.example/") == "/login?next=/work"


def test_the_home_of_congress_staff_is_the_console() -> None:
    assert a_session().home() == "/work"
    assert a_session(roles=("npc_staff",)).home() == "/console"
    assert a_session(roles=("npc_staff", "station_staff")).home() == "/work"


def test_time_is_wall_clock_by_default() -> None:
    fresh = WorkSession(sub="s", roles=("unit",), region="33", access_token="t", expires_at=time.time() + 60)
    assert abs(fresh.created_at - time.time()) < 5 and not fresh.idle(time.time())
