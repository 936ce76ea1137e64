"""``privastead.ports.free_port``: the ports the demo, the tests, the benchmarks and a
development cluster choose for their servers come from below the kernel's ephemeral range.

Ports found by binding port 0 are ephemeral: between choosing one for a server and the server
binding it, an outgoing connection of another process (a Garage node dialling its peers) can
take it as its source port, and the server's clients are then reset. That was seen as
``garage admin GetNodeInfo: Connection reset by peer`` while a cluster started."""

from __future__ import annotations

import socket

from privastead.ports import LOWEST, ephemeral_range, free_port


def test_ports_are_free_distinct_and_never_ephemeral() -> None:
    low, high = ephemeral_range()
    assert 0 < low <= high
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)  # never handed out twice by one process
    assert all(LOWEST <= p < low for p in ports)
    with socket.socket() as s:  # and free: a server can listen there
        s.bind(("127.0.0.1", ports[-1]))
        s.listen()
