"""Where a grid platform's URL may lead: the operators' allow/deny policy for outbound tickets.

A platform's URL is given by an admin over the API, and routing POSTs to it from inside the
deployment, so without a policy it could be pointed at the database, the metadata service of the
cloud (169.254.169.254, Alibaba's 100.100.100.200) or any other internal address. The host is
resolved and every address it resolves to must pass:

1. an address or host in `MINYI_GRID_ALLOWED_DESTINATIONS` passes;
2. one in `MINYI_GRID_DENIED_DESTINATIONS` is refused;
3. loopback passes in development (`MINYI_DEV_SECRETS`, where the simulator runs on 127.0.0.1);
4. any address that is not globally routable (private, loopback, link-local, shared, reserved,
   multicast, unspecified) is refused; the rest passes.

The check runs when a platform is registered (422) and again before each send, where the request
then goes to the very address that was checked, so a name that resolves elsewhere a moment later
(DNS rebinding) reaches nothing new.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT_SECONDS = 5.0


class DestinationRefused(ValueError):
    """Why a URL may not be reached, in words for the admin who registered it."""


@dataclass(frozen=True)
class Policy:
    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    denied_networks: tuple[Network, ...] = ()
    denied_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False


def _entries(text: str) -> tuple[tuple[Network, ...], frozenset[str]]:
    networks: list[Network] = []
    hosts: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


def policy_of(settings: Settings) -> Policy:
    allowed_networks, allowed_hosts = _entries(settings.grid_allowed_destinations)
    denied_networks, denied_hosts = _entries(settings.grid_denied_destinations)
    return Policy(allowed_networks, allowed_hosts, denied_networks, denied_hosts,
                  allow_loopback=settings.dev_secrets)


def _plain(address: Address) -> Address:
    """An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(policy: Policy, address: Address) -> str | None:
    """None when `address` may be reached, else why not."""
    address = _plain(address)
    if any(address in n for n in policy.allowed_networks):
        return None
    if any(address in n for n in policy.denied_networks):
        return f"地址 {address} 在禁止访问的范围内"
    if address.is_loopback:
        return None if policy.allow_loopback else f"地址 {address} 是本机回环地址"
    if not address.is_global or address.is_multicast:
        return f"地址 {address} 不是公网地址（内网、链路本地或保留地址）"
    return None


def host_of(url: str) -> tuple[str, int]:
    """The host and port a platform URL names; DestinationRefused when it names none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused("url 格式不正确") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("url 须为 http:// 或 https:// 开头并带主机名")
    return parts.hostname.lower().rstrip("."), port or (443 if parts.scheme == "https" else 80)


def check(policy: Policy, host: str, addresses: Sequence[Address]) -> list[Address]:
    """The addresses of `host` in the order to try; DestinationRefused unless every one may be reached
    (a name with one internal address among public ones could be steered to it)."""
    if host in policy.denied_hosts:
        raise DestinationRefused(f"主机 {host} 在禁止访问的名单中")
    if not addresses:
        raise DestinationRefused(f"主机 {host} 无法解析")
    if host in policy.allowed_hosts:
        return list(addresses)
    for address in addresses:
        reason = refusal(policy, address)
        if reason is not None:
            raise DestinationRefused(f"主机 {host} 不允许访问：{reason}")
    return list(addresses)


def _unique(addresses: Iterable[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                       timeout=RESOLVE_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise DestinationRefused(f"主机 {host} 无法解析") from exc
    return _unique(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos)


async def allowed_addresses(policy: Policy, url: str) -> tuple[str, list[Address]]:
    """The host of `url` and its addresses, each one allowed; DestinationRefused otherwise."""
    host, port = host_of(url)
    if host in policy.denied_hosts:
        raise DestinationRefused(f"主机 {host} 在禁止访问的名单中")
    return host, check(policy, host, await resolve(host, port))
