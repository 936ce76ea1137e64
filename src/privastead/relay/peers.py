"""Who is on the other end of a request that came through the native front.

The front forwards requests over Unix-socket connections of its own; the first line of each
says which client it carries (``PEER <address>``). The relay's HTTP handler for that socket
(``server.FrontHandler``) records it here against the connection, and the throttle asks
``peer_of`` instead of the socket's peer (which is the front). The line is a property of the
connection, not a header: a client cannot send one, whatever it sends.
"""

from __future__ import annotations

from aiohttp import web

_PEERS: dict[object, str] = {}  # connection (aiohttp's protocol object) -> client address


def remember(connection: object, address: str) -> None:
    _PEERS[connection] = address


def forget(connection: object) -> None:
    _PEERS.pop(connection, None)


def peer_of(request: web.BaseRequest) -> str | None:
    """The client's address: as the front reported it, else the socket's peer."""
    reported = _PEERS.get(request.protocol)
    return reported if reported is not None else request.remote


__all__ = ["forget", "peer_of", "remember"]
