"""Throttling of failed authentication: per token id and per client address, growing delays.

What it guarantees:

- Only failing requests are ever slowed down or refused. A request whose token checks out is
  served whatever anybody else did from its address (a household shares one NAT address, a
  reverse proxy shares one for everybody) or with its token id (which is not a secret: it is
  the first part of every token). Tokens carry 256 random bits, so online guessing is hopeless
  at any rate; the throttle exists to make failures cheap for the relay and loud for the
  operator, and to slow down broken or hostile clients, not to protect the secrets.
- Every failure counts: a missing or malformed header, a non-ASCII secret, an unknown token
  and a wrong secret count against the client address; a wrong secret for a token id that
  exists (or was revoked) also counts against that token id, from any address.
- Delays grow: the first ``max_failures`` failures of a key within ``window_seconds`` are
  free; each further one locks that key for ``base_delay_seconds`` doubled per failure, up
  to ``max_delay_seconds``. While a key is locked, a failing request from it gets 429 with
  ``Retry-After`` instead of 401. A key that stays quiet for ``window_seconds`` after its
  lock ends starts afresh.
- A token that is right but over (revoked: 401 ``device_removed``; expired) is not a failure:
  its holder is told, and nothing is counted.

The client address is the TCP peer, or, when the peer is one of ``trusted_proxies``, the
right-most address in ``client_address_header`` that is not itself a trusted proxy. IPv6
clients are keyed by their /64 network (one subscriber holds a whole /64), IPv4-mapped IPv6
addresses by their IPv4 address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from privastead.clock import Clock
from privastead.relay.config import AuthConfig
from privastead.relay.peers import peer_of

_log = logging.getLogger(__name__)
_MAX_TRACKED = 100_000  # bounded memory under a flood of distinct addresses or token ids
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class FailureRecord:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


def count_failure(record: FailureRecord, now: float, c: AuthConfig) -> bool:
    """One more failure of ``record``'s key at ``now`` (in place); True when it has just
    become locked. The same arithmetic for this process's keys and for the shared ones."""
    if record.failures and now - max(record.last, record.locked_until) >= c.window_seconds:
        record.failures = 0  # quiet long enough: start afresh
    record.failures += 1
    record.last = now
    excess = record.failures - c.max_failures
    if excess <= 0:
        return False
    delay = min(c.max_delay_seconds, c.base_delay_seconds * 2.0 ** min(excess - 1, 60))
    record.locked_until = max(record.locked_until, now + delay)
    return excess == 1


class SharedThrottle(Protocol):
    """Failures counted by several relay processes together (``backends.pg_throttle``)."""

    async def retry_after(self, keys: Iterable[str]) -> float: ...

    async def fail(self, keys: Iterable[str]) -> float:
        """Count one failure of each key; returns ``retry_after`` of them."""


class Throttle:
    """Failure counts per key (``addr:...``, ``tid:...``) on the injected clock."""

    def __init__(self, config: AuthConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._keys: dict[str, FailureRecord] = {}

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until the most locked of ``keys`` may fail again unpunished (0: none)."""
        now = self._clock.monotonic()
        wait = 0.0
        for key in keys:
            record = self._keys.get(key)
            if record is not None:
                wait = max(wait, record.locked_until - now)
        return wait

    def fail(self, keys: Iterable[str]) -> None:
        """Count one failure against each of ``keys``."""
        c = self._config
        now = self._clock.monotonic()
        if len(self._keys) >= _MAX_TRACKED:
            self._prune(now)
        for key in keys:
            record = self._keys.get(key)
            if record is None:
                record = self._keys[key] = FailureRecord()
            if count_failure(record, now, c):
                _log.warning("auth failures throttled (%s)", key.partition(":")[0])

    def _prune(self, now: float) -> None:
        horizon = self._config.window_seconds
        for key in [
            k for k, r in self._keys.items() if now - max(r.last, r.locked_until) >= horizon
        ]:
            del self._keys[key]
        if len(self._keys) >= _MAX_TRACKED:  # still full: forget the oldest half
            for key in list(self._keys)[: _MAX_TRACKED // 2]:
                del self._keys[key]


class ClientAddress:
    """Who is on the other end, for the throttle: the peer, or what a trusted proxy says."""

    def __init__(self, config: AuthConfig) -> None:
        self._proxies: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in config.trusted_proxies
        )
        self._header = config.client_address_header

    def key(self, request: web.BaseRequest) -> str:
        """The throttle key of the client behind ``request`` (``addr:...``)."""
        peer = _parse(peer_of(request))
        if peer is not None and self._proxies and self._trusted(peer):
            # A chain "client, proxy1, proxy2": walk from the right past our own proxies.
            hops = ",".join(request.headers.getall(self._header, [])).split(",")
            for raw in reversed(hops):
                hop = _parse(raw.strip())
                if hop is None:
                    break  # garbage from the client side of the chain: stop at the last proxy
                peer = hop
                if not self._trusted(hop):
                    break
        return "addr:" + _network_of(peer) if peer is not None else "addr:?"

    def _trusted(self, address: IpAddress) -> bool:
        return any(address in net for net in self._proxies)


def _parse(raw: str | None) -> IpAddress | None:
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network_of(address: IpAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


__all__ = ["ClientAddress", "FailureRecord", "SharedThrottle", "Throttle", "count_failure"]
