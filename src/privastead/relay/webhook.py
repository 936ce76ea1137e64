"""Where a webhook may point: public Internet addresses only (SSRF protection).

A webhook URL is chosen by a device, so without care the relay would send attacker-chosen
bytes to its own loopback, the operator's private network, a cloud metadata service
(link-local), a CGNAT or ULA range, or any of them disguised as IPv4-mapped, 6to4, NAT64 or
Teredo IPv6. So:

- at registration, a URL whose host is a literal non-public address is refused (400);
- at send time the host name is resolved again (DNS may have changed since: rebinding), every
  address it resolves to must be public, and the connection is made to exactly those
  addresses (aiohttp connects to what the resolver returned; nothing resolves twice), with
  redirects off;
- the operator may allow networks for private setups (``push.webhook_allow_networks``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from privastead.errors import RelayRejectedError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's own address
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address (and what an IPv6 one embeds)."""
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        inner = _embedded(address)
        if inner is not None:
            return is_public(inner)
    return True


class TargetPolicy:
    """Public addresses, plus the operator's allowed networks."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self._allowed: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed
        )

    def permits(self, address: IpAddress) -> bool:
        if any(address in net for net in self._allowed):
            return True
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in net for net in self._allowed):
            return True
        return is_public(address)

    def check_literal(self, host: str) -> None:
        """Refuse a URL host that is a literal address we may not reach (else: a name,
        checked when it is resolved)."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        if not self.permits(address):
            raise _refused(host)


def _refused(host: str) -> RelayRejectedError:
    return RelayRejectedError(
        f"webhook host {host[:100]} is not a public Internet address", 400, "bad_webhook_url"
    )


class PublicResolver(AbstractResolver):
    """aiohttp resolver: resolves at send time and returns only permitted addresses, or
    fails if any address of the name is not permitted (a name that also points inside is
    refused whole, so no retry on another address can reach it)."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG
        )
        out: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            if not self._policy.permits(address):
                raise OSError(f"webhook host resolves to a non-public address: {address}")
            out.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=int(sockaddr[1]),
                    family=fam,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not out:
            raise OSError(f"webhook host {host} has no address")
        return out

    async def close(self) -> None:
        return None


def connector_options(policy: TargetPolicy) -> dict[str, Any]:
    """TCPConnector arguments: our resolver, and no DNS cache (resolve at each send)."""
    return {"resolver": PublicResolver(policy), "use_dns_cache": False}


__all__ = ["PublicResolver", "TargetPolicy", "connector_options", "is_public"]
