"""A throwaway PostgreSQL server: ``initdb`` into a directory, ``postgres`` on loopback.

Layout of ``root`` (mode 0700, owned by the server's user):

    data/        the cluster (initdb)
    socket/      the unix socket directory (nothing in /var/run, no system service)
    password     the role's password (0600), for clients: never in a DSN or argv
    postgres.log the server's log

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` account that the
Debian package creates. Every connection authenticates with SCRAM-SHA-256, over TCP on
127.0.0.1 and over the socket alike, as a production server would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from privastead.devcluster import programs
from privastead.devcluster.process import (
    ServerProcess,
    Supervised,
    check_reachable,
    hand_over,
    unprivileged_user,
)
from privastead.errors import StorageError
from privastead.ports import free_port

ROLE = "privastead"
DATABASE = "privastead"


@dataclass
class PostgresServer(Supervised):
    """``init()`` once, then ``start()`` / ``stop()`` / ``kill9()`` / ``restart()`` at will.

    ``stop``: fast shutdown (SIGINT), sessions end, everything committed is kept. ``kill9``:
    postmaster and backends die at once; the next start recovers from the WAL, as after a
    power cut."""

    stop_signal = signal.SIGINT
    stop_grace = 30.0

    root: Path
    port: int = field(default_factory=free_port)
    # fsync off is for tests only: a killed server process loses nothing committed without it
    # (the kernel keeps the written WAL); only a crash of the whole machine would.
    fsync: bool = True
    server: ServerProcess | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.bindir = programs.postgres_bindir()
        self.user = unprivileged_user()
        check_reachable(self.root, self.user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def dsn(self) -> str:
        """Where clients connect; the password comes from ``password_file``."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def init(self) -> None:
        """Create the cluster, the role (with a random password) and the database."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        for path in (self.root, self.socket_dir, self.password_file):
            hand_over(path, self.user)
        out = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                ROLE,
                "--pwfile",
                str(self.password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",  # a fresh throwaway cluster: its files need not hit the disk now
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            extra_groups=[] if self.user else None,
            cwd=self.root,
        )
        if out.returncode != 0:
            raise StorageError(f"initdb failed: {out.stderr.strip()[-1500:]}")
        self.start()
        try:
            # On a thread of its own: callers may be inside an event loop (async tests).
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(lambda: asyncio.run(self._create_database())).result()
        except BaseException:
            self.stop()
            raise

    async def _create_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=self.port,
            user=ROLE,
            password=self.password,
            database="postgres",
        )
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    def start(self, timeout: float = 60.0) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on" if self.fsync else "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self.server = ServerProcess("postgres", args, self.log, user=self.user)
        self.server.start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if not self.server.running():
                raise StorageError(f"postgres exited at start: {self.server.tail()}")
            if time.monotonic() > deadline:
                self.server.kill9()
                raise StorageError(
                    f"postgres not ready after {timeout:.0f} s: {self.server.tail()}"
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        """The postmaster writes "ready" into postmaster.pid once it accepts connections.

        After a SIGKILL the dead postmaster's file is still there and says "ready" until the
        new one (still in crash recovery) replaces it: only the file of our process counts.
        """
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if self.server is None or len(lines) < 8 or lines[0].strip() != str(self.server.pid):
            return False
        return lines[7].strip() == "ready"

    def restart(self) -> None:
        self.stop()
        self.start()


__all__ = ["DATABASE", "ROLE", "PostgresServer"]
