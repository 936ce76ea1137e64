"""`make cluster`: PostgreSQL, a three-node Garage, relay processes and HAProxy on loopback.

    python -m privastead.devcluster [--relays 3] [--port PORT] [--data-dir DIR] [--duration S]

Starts every part as a real process in its own session (logs in ``<data-dir>/logs``), migrates
the PostgreSQL schema with ``privastead-server migrate``, creates the bucket and key in Garage
and the account ``home`` on the relays, prints the addresses, and runs until Ctrl-C (or
``--duration``), then stops everything in reverse order. A part that dies stops the cluster
with its log's last lines. Without ``--data-dir`` everything lives in a temporary directory
that is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import FrameType

from privastead.devcluster import programs
from privastead.devcluster.garage import GarageCluster, GarageNode
from privastead.devcluster.haproxy import HAProxy
from privastead.devcluster.postgres import PostgresServer
from privastead.devcluster.relays import RelayInstance, server_cli, storage_config
from privastead.errors import PrivasteadError

RELAY_CONFIG = "# relays of `make cluster` (privastead.devcluster)\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m privastead.devcluster",
        description="Run the relay as a cluster on this machine: PostgreSQL, a three-node "
        "Garage (S3), several relay processes and HAProxy in front, all on 127.0.0.1. "
        "Ctrl-C stops everything.",
    )
    parser.add_argument("--relays", type=int, default=3, help="relay processes (default 3)")
    parser.add_argument("--port", type=int, default=0, help="HAProxy's port (default: a free one)")
    parser.add_argument(
        "--data-dir", type=Path, help="keep data and logs here (default: a temporary directory)"
    )
    parser.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.relays <= 16:
        parser.error("--relays must be between 1 and 16")
    return args


class Stack:
    """What is running, stopped in reverse order of starting."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._checks: list[tuple[str, Callable[[], bool], Callable[[], str]]] = []

    def started(self, name: str, stop: Callable[[], None]) -> None:
        self._stops.append((name, stop))

    def watch(self, name: str, alive: Callable[[], bool], tail: Callable[[], str]) -> None:
        self._checks.append((name, alive, tail))

    def dead(self) -> tuple[str, str] | None:
        for name, alive, tail in self._checks:
            if not alive():
                return name, tail()
        return None

    def stop_all(self) -> None:
        for name, stop in reversed(self._stops):
            print(f"cluster: stopping {name}", flush=True)
            with contextlib.suppress(Exception):
                stop()
        self._stops.clear()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start(root: Path, args: argparse.Namespace, stack: Stack) -> list[str]:
    """Start every part; returns the lines to print."""
    garage_binary = programs.garage()  # fail before starting anything if it is missing
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    print("cluster: starting PostgreSQL", flush=True)
    postgres = PostgresServer(root / "postgres")
    postgres.init()
    if not postgres.running():
        postgres.start()
    stack.started("PostgreSQL", postgres.stop)
    stack.watch("PostgreSQL", postgres.running, lambda: postgres.log.read_text()[-1500:])
    migrated = (
        server_cli(
            "migrate", "--postgresql", postgres.dsn, "--password-file", str(postgres.password_file)
        )
        .strip()
        .splitlines()[-1]
    )

    print("cluster: starting Garage (3 nodes, replication 3)", flush=True)
    garage = GarageCluster(root / "garage")
    stack.started("Garage", garage.stop)
    credentials = garage.start(garage_binary)
    for node in garage.nodes:
        stack.watch(f"Garage node {node.index}", node.running, partial(_tail, node))

    data, config = root / "relay-data", root / "relay.toml"
    relays = [RelayInstance(i, data, config, logs) for i in range(1, args.relays + 1)]
    # HAProxy first: the relays reach Garage through its S3 frontend (any node may be down).
    balancer = HAProxy(
        root / "haproxy",
        [r.port for r in relays],
        garage=[(n.s3_port, n.admin_port) for n in garage.nodes],
    )
    if args.port:
        balancer.port = args.port
    balancer.start()
    stack.started("HAProxy", balancer.stop)
    stack.watch("HAProxy", balancer.running, partial(_tail, balancer))

    print(f"cluster: starting {args.relays} relays", flush=True)
    config.write_text(
        RELAY_CONFIG
        + storage_config(
            postgres.dsn,
            postgres.password_file,
            credentials,
            balancer.s3_endpoint,
            root / "s3-secret",
        )
    )
    token_file = root / "owner-token"
    if not token_file.exists():
        out = server_cli(
            "accounts", "add", "home", "--config", str(config), "--data-dir", str(data)
        )
        token_file.touch(mode=0o600)
        token_file.write_text(out.strip().splitlines()[-1] + "\n")
    for relay in relays:
        relay.start()
        stack.started(f"relay {relay.index}", relay.stop)
        stack.watch(f"relay {relay.index}", relay.running, partial(_tail, relay))
    return [
        "privastead cluster is up (Ctrl-C stops it)",
        f"  relay URL:     {balancer.url}   (HAProxy -> {args.relays} relay processes)",
        f"  owner token:   {token_file}   (account 'home'; the hub's token_file)",
        f"  PostgreSQL:    {postgres.dsn}   (password in {postgres.password_file}; {migrated})",
        f"  S3 (Garage):   {balancer.s3_endpoint}   bucket {credentials.bucket}"
        f"   (key in {garage.root / 's3-credentials.json'})",
        f"  logs:          {logs} (relays), {postgres.log}, {garage.root}/node*/garage.log,"
        f" {balancer.root / 'haproxy.log'}",
        f'  relay config:  {config}   ([storage] backend = "postgresql")',
    ]


def _tail(part: GarageNode | RelayInstance | HAProxy) -> str:
    """The end of a part's log (it is gone from ``part.server`` once it died and was reaped)."""
    return part.server.tail() if part.server is not None else "(not running)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temporary = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="privastead-cluster-")) if temporary else args.data_dir
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if temporary:
        root.chmod(0o711)  # PostgreSQL's account (when we are root) must be able to enter it
    stack = Stack()
    code = 0
    with sigterm_as_interrupt():
        try:
            for line in start(root, args, stack):
                print(line, flush=True)
            deadline = time.monotonic() + args.duration if args.duration else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
                died = stack.dead()
                if died:
                    print(f"cluster: {died[0]} died; its log ends:\n{died[1]}", file=sys.stderr)
                    code = 1
                    break
        except KeyboardInterrupt:
            print("\ncluster: interrupted", flush=True)
        except PrivasteadError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            code = 1
        finally:
            stack.stop_all()
            if temporary:
                shutil.rmtree(root, ignore_errors=True)
    print("cluster: stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
