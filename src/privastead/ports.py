"""Loopback ports for servers that bind them later, chosen below the ephemeral range.

The demo picks a port for its relay, ``privastead-hub run`` one for the camera simulator it
starts without a config, tests and benchmarks ports for the servers they start, a development
cluster ports for PostgreSQL, Garage, HAProxy and its relays: each port is chosen first and
handed to a process that binds it later.

Binding port 0 finds a free port in the kernel's *ephemeral* range, the range it also takes
the source ports of outgoing connections from. Between choosing a server's port and the
server binding it, an outgoing connection (a Garage node dialling its peers, a relay opening
a session to PostgreSQL, a client of an earlier test) may take that very port as its source
port: the server then cannot listen there, and a client connecting to it reaches that
connection instead and is reset. Ports below the ephemeral range are never handed out as
source ports, so ``free_port`` picks its ports there.

A server that binds port 0 itself and reports the port it got has no such gap and needs none
of this.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Where the kernel says which ports are ephemeral.
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Lowest port considered (well above the well-known and registered system ports).
LOWEST = 10000

_given: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = (int(x) for x in RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port() -> int:
    """A loopback TCP port free now, below the ephemeral range, not handed out before by this
    process; one from the ephemeral range only when no such port is free."""
    top = ephemeral_range()[0] - 1
    for _ in range(200) if top > LOWEST else ():
        port = random.randint(LOWEST, top)  # noqa: S311 -- not a secret, only spread out
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["ephemeral_range", "free_port"]
