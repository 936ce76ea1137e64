"""HAProxy in front of relay processes (and, optionally, Garage's S3 endpoints), on loopback.

Routing (the reasons are in ``docs/design/relay-cluster.md``):
- ``/v1/live/{session}``: hashed on the path with consistent hashing, so a session's publisher
  and all its viewers reach the same relay process, whose in-memory fan-out and per-viewer
  back-pressure then work unchanged; when that process dies, the hash moves the session to
  the next live one for every party at once.
- everything else: least connections (WebSockets and long-polls are long-lived), with
  health checks on ``/healthz`` and a retry on another relay when a connection is refused.
- ``X-Forwarded-For`` carries the client's address to the relay.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from privastead.devcluster import programs
from privastead.devcluster.process import ServerProcess, Supervised
from privastead.errors import StorageError
from privastead.ports import free_port


def config_text(
    port: int,
    relays: list[int],
    s3_port: int | None = None,
    garage: Sequence[tuple[int, int]] = (),
    admin_socket: Path | None = None,
) -> str:
    """The HAProxy config: ``relays`` are relay ports; ``garage`` (S3 port, admin port) pairs;
    ``admin_socket``: HAProxy's runtime API (server states), a unix socket of mode 0600."""
    stats = f"    stats socket {admin_socket} mode 600 level operator\n" if admin_socket else ""
    servers = "\n".join(
        f"    server relay{i} 127.0.0.1:{p} check" for i, p in enumerate(relays, start=1)
    )
    text = f"""# privastead.devcluster: load balancer of a loopback relay cluster
global
    # each connection costs two descriptors (client and relay side); a systemd unit raises
    # LimitNOFILE for more (docs/deploy-cluster.md)
    maxconn 4000
    log stderr format short local0 warning
{stats}
defaults
    mode http
    log global
    option httplog
    option dontlognull
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 75s
    timeout server 75s
    timeout http-request 15s
    timeout http-keep-alive 15s
    # WebSockets (subscriptions, live channels): the relay pings every 30 s
    timeout tunnel 1h
    default-server inter 500ms fall 2 rise 2

frontend relay
    bind 127.0.0.1:{port}
    option forwardfor
    acl live path_beg /v1/live/
    use_backend relay_live if live
    default_backend relay_any

backend relay_any
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
{servers}

backend relay_live
    balance uri path-only
    hash-type consistent
    option httpchk GET /healthz
    http-check expect status 200
{servers}
"""
    if s3_port is not None and garage:
        nodes = "\n".join(
            f"    server garage{i} 127.0.0.1:{s3} check port {admin}"
            for i, (s3, admin) in enumerate(garage)
        )
        text += f"""
frontend s3
    bind 127.0.0.1:{s3_port}
    # bodies of up to a few MiB, streamed through
    default_backend garage_s3

backend garage_s3
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
{nodes}
"""
    return text


@dataclass
class HAProxy(Supervised):
    root: Path
    relays: list[int]
    port: int = field(default_factory=free_port)
    garage: list[tuple[int, int]] = field(default_factory=list)
    s3_port: int | None = None
    server: ServerProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_socket(self) -> Path:
        return self.root / "admin.sock"

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API (its admin socket); returns the answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.admin_socket))
            s.sendall(line.encode() + b"\n")
            return b"".join(iter(lambda: s.recv(65536), b"")).decode()

    def streams_on(self, backend: str) -> list[str]:
        """The server of each request in progress on ``backend`` (``show sess``): which
        relay process is handling a request right now."""
        return re.findall(rf"\bbe={re.escape(backend)} srv=(\S+)", self.command("show sess"))

    def server_states(self, backend: str) -> dict[str, str]:
        """``{server name: "UP" | "DOWN" | ...}`` of ``backend``, from HAProxy's runtime API."""
        rows = self.command("show stat").lstrip("# ").splitlines()
        header = rows[0].split(",")
        out = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(","), strict=False))
            if cells.get("pxname") == backend and cells.get("svname") not in (
                "FRONTEND",
                "BACKEND",
            ):
                out[cells["svname"]] = cells["status"].split(" ")[0]
        return out

    def wait_state(self, backend: str, server: str, state: str, timeout: float = 30.0) -> None:
        """Wait until HAProxy's health checks see ``server`` as ``state`` (UP or DOWN)."""
        deadline = time.monotonic() + timeout
        while self.server_states(backend).get(server) != state:
            if time.monotonic() > deadline:
                raise StorageError(f"haproxy: {backend}/{server} not {state} in {timeout} s")
            time.sleep(0.05)

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = programs.haproxy()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.garage and self.s3_port is None:
            self.s3_port = free_port()
        cfg = self.root / "haproxy.cfg"
        cfg.write_text(
            config_text(self.port, self.relays, self.s3_port, self.garage, self.admin_socket)
        )
        # -db: stay in the foreground (we supervise it); -W master-worker is not needed.
        self.server = ServerProcess(
            "haproxy", [str(binary), "-db", "-f", str(cfg)], self.root / "haproxy.log"
        )
        self.server.start()
        deadline = time.monotonic() + timeout
        while True:
            if not self.server.running():
                raise StorageError(f"haproxy exited at start: {self.server.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):  # noqa: S310
                    return
            except urllib.error.HTTPError:
                return  # HAProxy answers (503 until a relay is up): it is listening
            except OSError:
                if time.monotonic() > deadline:
                    raise StorageError("haproxy did not start listening") from None
                time.sleep(0.05)


__all__ = ["HAProxy", "config_text"]
