"""Relay processes of the local cluster: ``privastead-server serve`` several times over.

Every process runs with ``[storage] backend = "postgresql"`` (``storage_config``): the index
in PostgreSQL, blobs in Garage through HAProxy's S3 frontend, wake-ups over LISTEN/NOTIFY,
so any process serves any request. Live channels are routed by HAProxy, each session to one.
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

from privastead.devcluster.garage import S3Credentials
from privastead.devcluster.process import ServerProcess, Supervised
from privastead.errors import StorageError
from privastead.ports import free_port

SRC = Path(__file__).resolve().parents[2]


def storage_config(
    pg_dsn: str, pg_password_file: Path, s3: S3Credentials, s3_endpoint: str, secret_file: Path
) -> str:
    """The ``[storage]`` tables of the relays' ``relay.toml``; the S3 secret goes into
    ``secret_file`` (0600), never into the file itself."""
    if not secret_file.exists():
        secret_file.touch(mode=0o600)
    secret_file.write_text(s3.secret_access_key + "\n")
    return f"""
[storage]
backend = "postgresql"

[storage.postgresql]
dsn = "{pg_dsn}"
password_file = "{pg_password_file}"

[storage.s3]
endpoint = "{s3_endpoint}"
public_endpoint = "{s3_endpoint}"
bucket = "{s3.bucket}"
region = "{s3.region}"
access_key_id = "{s3.access_key_id}"
secret_key_file = "{secret_file}"
"""


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


__all__ = ["RelayInstance", "relay_env", "server_cli", "storage_config"]
