"""Routing's pure rules (services/routing/domain.py, destinations.py) against values worked out by hand."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from services.routing import destinations, domain
from services.routing.destinations import DestinationRefused, Policy
from services.routing.domain import Outcome, PlatformScope
from shared.settings import Settings

NOW = datetime(2026, 11, 21, 2, 0, 0, tzinfo=UTC)  # Sat, 21 Nov 2026 02:00:00 GMT


class Fixed:
    """A random source whose `uniform` always lands at one end, so the jitter is known."""

    def __init__(self, end: str) -> None:
        self.end = end

    def uniform(self, low: float, high: float) -> float:
        return low if self.end == "low" else high


# ---- what a platform's answer means -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (201, Outcome.DELIVERED), (204, Outcome.DELIVERED), (299, Outcome.DELIVERED),
    (408, Outcome.RETRY), (425, Outcome.RETRY), (429, Outcome.RETRY),
    (500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY), (599, Outcome.RETRY),
    (300, Outcome.REFUSED), (400, Outcome.REFUSED), (401, Outcome.REFUSED), (404, Outcome.REFUSED),
    (409, Outcome.REFUSED), (422, Outcome.REFUSED), (426, Outcome.REFUSED), (428, Outcome.REFUSED),
])
def test_which_answers_are_tried_again(status: int, outcome: Outcome) -> None:
    assert domain.outcome_of_status(status) == outcome


# ---- Retry-After ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("", None), ("  ", None), ("soon", None), ("-5", None), ("1.5", None), ("١٢", None),
    ("0", 0.0), ("120", 120.0), (" 30 ", 30.0), ("3600", 3600.0),
    # Past the hour a platform may ask for: one hour, not a wait that never ends.
    ("3601", 3600.0), ("1000000000000", 3600.0), ("9" * 400, 3600.0),
    # HTTP dates, from NOW (02:00:00 GMT).
    ("Sat, 21 Nov 2026 02:00:45 GMT", 45.0), ("Sat, 21 Nov 2026 02:30:00 GMT", 1800.0),
    ("Sat, 21 Nov 2026 01:00:00 GMT", 0.0), ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
    ("Sat, 21 Nov 2026 02:00:45", None),  # no zone: not a time we can place
])
def test_retry_after_is_read_and_clamped(header: str | None, seconds: float | None) -> None:
    assert domain.retry_after_seconds(header, NOW) == seconds


def test_retry_after_clamped_below_what_a_datetime_holds() -> None:
    # What the dispatcher adds to now: the largest answer must still give a time.
    wait = domain.retry_after_seconds("1000000000000", NOW)
    assert wait is not None and NOW + timedelta(seconds=wait) == datetime(2026, 11, 21, 3, 0, 0, tzinfo=UTC)
    assert domain.retry_after_seconds("600", NOW, cap=60) == 60.0


# ---- backoff ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "low", "high"), [
    # step = min(cap, base * 2**(failures-1)); the wait is step/2 + uniform(0, step/2).
    (0, 0.5, 1.0), (1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (6, 16.0, 32.0),
    (7, 30.0, 60.0),  # 64 capped at 60
    (50, 30.0, 60.0), (1025, 30.0, 60.0), (10**6, 30.0, 60.0),  # past 2**1024: still the cap
])
def test_backoff_doubles_with_equal_jitter_up_to_the_cap(failures: int, low: float, high: float) -> None:
    assert domain.backoff_seconds(failures, base=1.0, cap=60.0, rng=Fixed("low")) == low  # type: ignore[arg-type]
    assert domain.backoff_seconds(failures, base=1.0, cap=60.0, rng=Fixed("high")) == high  # type: ignore[arg-type]


def test_backoff_with_a_fractional_base() -> None:
    assert domain.backoff_seconds(3, base=0.2, cap=1.0, rng=Fixed("low")) == 0.4  # type: ignore[arg-type]
    assert domain.backoff_seconds(4, base=0.2, cap=1.0, rng=Fixed("high")) == 1.0  # type: ignore[arg-type]


# ---- platform choice ------------------------------------------------------------------------------------


ALL = frozenset({"municipal_facilities", "sanitation_environment", "roads_traffic"})
CITY = PlatformScope("city", ("3301",), ALL)
COUNTY = PlatformScope("county", ("330106",), frozenset({"municipal_facilities"}))
TWIN_B = PlatformScope("b-twin", ("330106",), ALL)
TWIN_A = PlatformScope("a-twin", ("330106",), ALL)


@pytest.mark.parametrize(("region", "category", "platforms", "expected"), [
    # The longest prefix wins.
    ("330106001", "municipal_facilities", [CITY, COUNTY], ("grid", "county", "longest_prefix")),
    # The county platform does not take sanitation: the city's shorter prefix serves it.
    ("330106001", "sanitation_environment", [CITY, COUNTY], ("grid", "city", "longest_prefix")),
    ("330102001", "municipal_facilities", [CITY, COUNTY], ("grid", "city", "longest_prefix")),
    # Equal prefixes: the smaller id, in whatever order the platforms come.
    ("330106001", "roads_traffic", [TWIN_B, TWIN_A], ("grid", "a-twin", "longest_prefix")),
    ("330106001", "roads_traffic", [TWIN_A, TWIN_B], ("grid", "a-twin", "longest_prefix")),
    # Platforms serve the place, none takes the category.
    ("330106001", "roads_traffic", [COUNTY], ("deputy", None, "outside_scope")),
    # No platform serves the place.
    ("320923001", "municipal_facilities", [CITY, COUNTY], ("deputy", None, "no_platform")),
    ("320923001", "municipal_facilities", [], ("deputy", None, "no_platform")),
    # Not a grid matter at all, even where a platform would take everything.
    ("330106001", "social_security", [CITY, COUNTY], ("deputy", None, "not_grid_category")),
])
def test_platform_choice(region: str, category: str, platforms: list[PlatformScope],
                         expected: tuple[str, str | None, str]) -> None:
    decision = domain.choose_platform(region, category, platforms)
    assert (decision.handler, decision.platform_id, decision.reason) == expected


def test_a_platform_with_several_prefixes_counts_its_longest_match() -> None:
    wide = PlatformScope("wide", ("33", "3301061"), ALL)
    assert domain.choose_platform("330106101", "roads_traffic", [wide, TWIN_A]).platform_id == "wide"
    assert domain.choose_platform("330106001", "roads_traffic", [wide, TWIN_A]).platform_id == "a-twin"


# ---- signatures -------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
    assert domain.signature(b"secret", "1700000000", b'{"a":1}') == (
        "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686")


def test_grid_platform_of_a_subject() -> None:
    assert domain.grid_platform_of("grid.gp-1.events") == "gp-1"
    assert domain.grid_platform_of("grid.gp-1.tickets") is None
    assert domain.grid_platform_of("grid..events") is None
    assert domain.grid_platform_of("grid.a.b.events") is None
    assert domain.header({"x-minyi-signature": "v"}, "X-Minyi-Signature") == "v"
    assert domain.header({}, "X-Minyi-Signature") is None


def test_a_stream_timestamp_need_not_be_fresh() -> None:
    assert domain.parse_timestamp("1000", 10**9, fresh=False) == "1000"
    with pytest.raises(domain.SignatureError):
        domain.parse_timestamp("1000", 10**9)
    with pytest.raises(domain.SignatureError):
        domain.parse_timestamp("١٠٠٠", 1000, fresh=False)


# ---- destinations -----------------------------------------------------------------------------------------


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


PRODUCTION = Policy()
DEVELOPMENT = Policy(allow_loopback=True)


@pytest.mark.parametrize(("address", "production", "development"), [
    ("203.0.113.10", False, False),  # documentation range: not global
    ("8.8.8.8", True, True),
    ("2400:3200::1", True, True),
    ("127.0.0.1", False, True), ("127.8.9.10", False, True), ("::1", False, True),
    ("::ffff:127.0.0.1", False, True),  # IPv4 loopback written as IPv6
    ("10.1.2.3", False, False), ("172.16.0.1", False, False), ("192.168.1.1", False, False),
    ("169.254.169.254", False, False),  # cloud metadata
    ("100.100.100.200", False, False),  # Alibaba Cloud metadata (shared address space)
    ("fd00:ec2::254", False, False),  # AWS metadata over IPv6 (unique local)
    ("fe80::1", False, False), ("0.0.0.0", False, False), ("::", False, False),
    ("224.0.0.1", False, False), ("240.0.0.1", False, False), ("::ffff:10.0.0.1", False, False),
])
def test_which_addresses_may_be_reached(address: str, production: bool, development: bool) -> None:
    assert (destinations.refusal(PRODUCTION, ip(address)) is None) == production
    assert (destinations.refusal(DEVELOPMENT, ip(address)) is None) == development


def test_operators_allow_and_deny_by_network_and_host() -> None:
    policy = destinations.policy_of(_settings(allowed="10.20.0.0/16, grid.zj.gov.cn.",
                                              denied="8.8.8.0/24,evil.example"))
    assert destinations.refusal(policy, ip("10.20.3.4")) is None
    assert destinations.refusal(policy, ip("10.21.3.4")) is not None
    assert destinations.refusal(policy, ip("8.8.8.8")) is not None
    assert destinations.refusal(policy, ip("8.8.4.4")) is None
    # An allowed host passes whatever it resolves to; a denied one never does.
    assert destinations.check(policy, "grid.zj.gov.cn", [ip("192.168.9.9")]) == [ip("192.168.9.9")]
    with pytest.raises(DestinationRefused, match="禁止"):
        destinations.check(policy, "evil.example", [ip("1.1.1.1")])


def test_every_address_of_a_host_must_pass() -> None:
    with pytest.raises(DestinationRefused, match=r"10\.0\.0\.1"):
        destinations.check(PRODUCTION, "mixed.example", [ip("1.1.1.1"), ip("10.0.0.1")])
    with pytest.raises(DestinationRefused, match="无法解析"):
        destinations.check(PRODUCTION, "nothing.example", [])
    assert destinations.check(PRODUCTION, "ok.example", [ip("1.1.1.1"), ip("1.0.0.1")]) == [
        ip("1.1.1.1"), ip("1.0.0.1")]


@pytest.mark.parametrize(("url", "host_port"), [
    ("http://grid.example/", ("grid.example", 80)), ("https://Grid.Example.:8443/api", ("grid.example", 8443)),
    ("https://[::1]/", ("::1", 443)), ("http://127.0.0.1:9", ("127.0.0.1", 9)),
])
def test_host_of_a_url(url: str, host_port: tuple[str, int]) -> None:
    assert destinations.host_of(url) == host_port


@pytest.mark.parametrize("url", ["ftp://grid.example/", "http://", "http://grid.example:99999/", "grid.example"])
def test_a_url_without_a_usable_host_is_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        destinations.host_of(url)


async def test_names_are_resolved_and_literals_are_themselves() -> None:
    assert await destinations.resolve("10.9.8.7", 80) == [ip("10.9.8.7")]
    assert ip("127.0.0.1") in await destinations.resolve("localhost", 80)
    with pytest.raises(DestinationRefused, match="localhost"):
        await destinations.allowed_addresses(PRODUCTION, "http://localhost:8080/")
    host, addresses = await destinations.allowed_addresses(DEVELOPMENT, "http://127.0.0.1:8080/")
    assert (host, addresses) == ("127.0.0.1", [ip("127.0.0.1")])


def _settings(*, allowed: str = "", denied: str = "", dev: bool = False) -> Settings:
    return Settings(grid_allowed_destinations=allowed, grid_denied_destinations=denied, dev_secrets=dev)
