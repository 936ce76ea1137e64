"""Relay processes of the local cluster: ``privastead-server serve`` several times over.

Until the relay reads its index from PostgreSQL, the processes share one SQLite data
directory on this machine (WAL mode lets several processes use one database). That shares
accounts, mailboxes and blobs, but not what a relay keeps in memory: a long-poll or
WebSocket subscription on one process is woken by an upload on another only when it next
re-lists, and a relay that starts sweeps orphaned blob files that another process may be
committing. Live channels do work across processes: HAProxy routes each session to one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from privastead.devcluster.postgres import free_port
from privastead.devcluster.process import ServerProcess, Supervised
from privastead.errors import StorageError

SRC = Path(__file__).resolve().parents[2]


def relay_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def server_cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run one ``privastead-server`` command; returns its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", *args],
        env=relay_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise StorageError(f"privastead-server {args[0]} failed: {out.stderr.strip()[-1500:]}")
    return out.stdout


@dataclass
class RelayInstance(Supervised):
    stop_grace = 30.0  # SIGTERM lets uploads in flight finish (shutdown_timeout, 20 s)
    index: int
    data_dir: Path
    config: Path
    logs: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    server: ServerProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        args = [
            sys.executable,
            "-m",
            "privastead.cli.server",
            "--log-level",
            "WARNING",
            "serve",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        self.server = ServerProcess(
            f"relay{self.index}", args, self.logs / f"relay{self.index}.log", relay_env(self.env)
        )
        self.server.start()
        deadline = time.monotonic() + timeout
        while True:
            if not self.server.running():
                raise StorageError(f"relay {self.index} exited at start: {self.server.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise StorageError(f"relay {self.index} not healthy after {timeout:.0f} s")
            time.sleep(0.05)


__all__ = ["RelayInstance", "relay_env", "server_cli"]
