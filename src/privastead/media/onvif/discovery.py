"""WS-Discovery (2005/04, as ONVIF uses it): find cameras with one Probe and their answers.

A Probe for ``dn:NetworkVideoTransmitter`` goes to the multicast group 239.255.255.250:3702;
every ONVIF camera on the local network answers with a ProbeMatch (unicast, to the port the
probe came from) naming its device service address (``XAddrs``) and scopes (name, hardware).

Targets are configurable: the multicast group by default, or any unicast ``host:port``. Tests
use unicast on loopback (multicast on loopback is not available in every sandbox or
container); unicast probes also reach cameras on other subnets, which multicast does not.

What a device says is untrusted. Answers must relate to this probe's message id, only
``http(s)`` service addresses are kept, and each one's host is replaced by the address the
answer came from: a device on the LAN cannot make the hub send credentials (in the later
ONVIF calls) to some other machine, and a camera behind a NAT that reports its inner address
still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from privastead.media.onvif.soap import (
    OnvifError,
    children,
    envelope,
    find,
    message_id,
    parse,
    text,
)

log = logging.getLogger(__name__)

MULTICAST = ("239.255.255.250", 3702)
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
DISCOVERY = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ONVIF_NETWORK = "http://www.onvif.org/ver10/network/wsdl"
PROBE_ACTION = f"{DISCOVERY}/Probe"
MATCHES_ACTION = f"{DISCOVERY}/ProbeMatches"
MAX_DATAGRAM = 65_535


@dataclass(frozen=True)
class Device:
    """One camera that answered: where its device service is and what it says it is."""

    address: str  # the IP address the answer came from
    endpoint: str  # its stable WS-Addressing endpoint reference (urn:uuid:...)
    xaddrs: tuple[str, ...]  # device service URLs, host = ``address``
    scopes: tuple[str, ...]

    def scope(self, kind: str) -> str:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope ("" if none)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for scope in self.scopes:
            if scope.startswith(prefix):
                return scope[len(prefix) :].replace("%20", " ")
        return ""


def probe_message(probe_id: str) -> bytes:
    header = (
        f'<a:Action s:mustUnderstand="1">{PROBE_ACTION}</a:Action>'
        f"<a:MessageID>{probe_id}</a:MessageID>"
        f"<a:ReplyTo><a:Address>{ADDRESSING}/role/anonymous</a:Address></a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
    )
    body = "<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>"
    return envelope(
        body, header, f'xmlns:a="{ADDRESSING}" xmlns:d="{DISCOVERY}" xmlns:dn="{ONVIF_NETWORK}"'
    )


def _pinned(url: str, host: str) -> str | None:
    """``url`` with its host replaced by ``host`` (None unless http/https with a host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def parse_matches(data: bytes, address: str, probe_id: str) -> list[Device]:
    """The devices of one ProbeMatches datagram from ``address`` answering ``probe_id``."""
    root = parse(data)
    if text(root, "Header", "RelatesTo") != probe_id:
        return []  # not an answer to us (or another probe's): ignore
    found = []
    matches = find(root, "ProbeMatches")
    for match in children(matches, "ProbeMatch") if matches is not None else ():
        types = text(match, "Types")
        if types and "NetworkVideoTransmitter" not in types:
            continue
        xaddrs = [_pinned(u, address) for u in text(match, "XAddrs").split()]
        kept = tuple(dict.fromkeys(u for u in xaddrs if u is not None))
        if not kept:
            continue
        endpoint = text(match, "EndpointReference", "Address") or kept[0]
        found.append(Device(address, endpoint, kept, tuple(text(match, "Scopes").split())))
    return found


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, probe_id: str, expected: set[tuple[str, int]] | None = None) -> None:
        self.probe_id = probe_id
        self.devices: dict[str, Device] = {}
        self.ignored = 0
        # Unicast probes: once every probed address has answered there is nothing left to wait
        # for (multicast has no such end: anyone on the LAN may answer late).
        self._waiting = set(expected) if expected else None
        self.complete = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            devices = parse_matches(data, str(addr[0]), self.probe_id)
        except OnvifError as exc:
            self.ignored += 1
            log.debug("ignored a WS-Discovery answer from %s: %s", addr[0], exc)
            return
        for device in devices:
            self.devices.setdefault(device.endpoint, device)
        if devices and self._waiting is not None:
            self._waiting.discard((str(addr[0]), int(str(addr[1]))))
            if not self._waiting:
                self.complete.set()


def parse_target(text: str, default_port: int = 3702) -> tuple[str, int]:
    """``host[:port]`` (IPv6 in brackets) as an address pair."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    if not host or not 0 < port < 65_536:
        raise ValueError(f"not a host[:port]: {text!r}")
    return host, port


async def discover(
    targets: list[tuple[str, int]] | None = None,
    *,
    timeout: float = 3.0,  # how long to listen, not a deadline to cancel at
    interface: str = "0.0.0.0",  # noqa: S104 - the local address to probe from
    repeat: int = 2,
) -> list[Device]:
    """Probe ``targets`` (default: the multicast group) and collect answers for ``timeout``
    seconds, or until every unicast target has answered; the probe is sent ``repeat`` times (UDP
    may drop one), answers are deduplicated by endpoint."""
    targets = targets or [MULTICAST]
    expected = None if MULTICAST in targets else set(targets)
    loop = asyncio.get_running_loop()
    probe_id = message_id()
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(probe_id, expected), local_addr=(interface, 0), family=family
    )
    try:
        sock = transport.get_extra_info("socket")
        if family == socket.AF_INET:
            with contextlib.suppress(OSError):  # the LAN only: one hop
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        message = probe_message(probe_id)
        gap = min(0.5, timeout / 4)
        for attempt in range(max(1, repeat)):
            for target in targets:
                try:
                    transport.sendto(message, target)
                except OSError as exc:
                    raise OnvifError(
                        f"cannot send a WS-Discovery probe to {target}: {exc}"
                    ) from exc
            if attempt + 1 < repeat:
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(collector.complete.wait(), gap)
                if collector.complete.is_set():
                    break
        rest = max(0.0, timeout - gap * (max(1, repeat) - 1))
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(collector.complete.wait(), rest)
        return sorted(collector.devices.values(), key=lambda d: (d.address, d.endpoint))
    finally:
        transport.close()


__all__ = [
    "MULTICAST",
    "Device",
    "discover",
    "parse_matches",
    "parse_target",
    "probe_message",
]
