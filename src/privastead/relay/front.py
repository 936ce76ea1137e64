"""The native front, from the relay's side: start it, adopt what it hands over, publish what
it stored, start it again if it dies, stop it gracefully.

The front (``rust_ext/relayfront``, run by ``front_child``) is a process of its own that owns
the relay's listening socket and every client connection. It answers the two most frequent
requests itself, a single small upload and the download of one message, with the relay's
own statements on the same database; every other request it forwards byte for byte to this
relay over a Unix socket (one backend connection per client connection) and copies the
answer back. Both sockets are
in a private directory (0700) that only this user, in practice only the front, can reach:

- the HTTP socket: a backend connection starts with one line ``PEER <client address>\n``,
  which the throttle takes as the client's address (``peer_of``), since the socket's own
  peer is the front;
- the control socket (``SOCK_SEQPACKET``): ``S`` + JSON records, messages the front stored,
  each counted and published exactly as an upload served here (``mailbox.stored``:
  subscribers, long-polls, wake-ups); ``M`` + JSON, downloads it answered (for metrics);
  ``R`` + JSON, the front listens (and on which port); to the front, ``B`` + JSON, who is at
  their share of bodies in flight, and ``Q``, stop.

docs/design/relay-front.md has the reasoning (why a process, what the front may answer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privastead import compat
from privastead.errors import ConfigError
from privastead.relay import mailbox, store
from privastead.relay.api import UploadResult
from privastead.relay.backends.migrations import LATEST
from privastead.relay.config import RelayConfig
from privastead.relay.db import lock_path
from privastead.relay.state import RelayState

_log = logging.getLogger(__name__)
UPLOAD_ROUTE = "/v1/mailboxes/{mailbox}/messages"
FETCH_ROUTE = "/v1/mailboxes/{mailbox}/messages/{seq}"
# Largest body the front stores itself: what a listing carries (larger ones, and blobs, take
# the relay's path with its slot accounting and streaming).
BODY_MAX = 16 * 1024
# A request still incomplete after this long goes to the relay, whose own timeouts apply.
HANDOVER_AFTER = 1.0
START_TIMEOUT = 30.0
# A front that dies is started again after this delay; this many deaths within a minute
# end the relay (its supervisor restarts it, and the log says why).
RESTART_DELAY = 0.5
MAX_RESTARTS = 5
_PACKET = 1 << 20
_DIR_PREFIX = "privastead-front-"


def _private_dir() -> tuple[Path, int]:
    """A new private directory (0700) for the front's sockets, and the descriptor of the lock
    this process holds on it for as long as it lives.

    The sockets need a short path (at most 107 bytes), so the directory is in the temporary
    directory, not the data directory. A relay stopped gracefully removes its own; one killed
    (``kill -9``, a crash, the machine's OOM killer) cannot, and its directory stays. The
    kernel drops a dead process's locks, so the next relay removes every such directory whose
    lock it can take: its owner is gone."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob(_DIR_PREFIX + "*"):
        with contextlib.suppress(OSError):
            info = stale.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue  # not one of ours
            fd = os.open(stale / "lock", os.O_RDWR | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(stale, ignore_errors=True)
            finally:
                os.close(fd)
    path = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
    # Locked before it is named "lock": another relay sweeping now must never take it.
    fd = os.open(path / "lock.new", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (path / "lock.new").rename(path / "lock")
    return path, fd


def wanted(config: RelayConfig) -> bool:
    """Whether this relay runs the native front (``config.front``)."""
    possible = config.storage.backend == "sqlite" and config.tls_cert is None
    if config.front == "native" and not possible:
        raise ConfigError(
            'front = "native" needs SQLite storage and no TLS (put a TLS proxy in front);'
            ' use "auto" or "python"'
        )
    return config.front != "python" and possible


def _settings(config: RelayConfig, port: int, control: Path, backend: Path) -> str:
    limits = config.limits
    database = config.data_dir / "relay.sqlite3"
    return json.dumps(
        {
            "host": config.host,
            "port": port,
            "control": str(control),
            "backend": str(backend),
            "parent_pid": os.getpid(),
            "database": str(database),
            "schema_version": LATEST,
            "write_lock": str(lock_path(database)),
            "blobs": str(config.data_dir / "blobs"),
            "durability": config.durability,
            "body_max": min(BODY_MAX, limits.inline_max, limits.max_blob_size),
            "max_push_payload": limits.max_push_payload,
            "default_ttl_seconds": limits.default_ttl_seconds,
            "account_quota_bytes": limits.account_quota_bytes,
            "message_overhead": store.MESSAGE_OVERHEAD,
            "idle_timeout": limits.idle_timeout,
            "handover_after": HANDOVER_AFTER,
            "shutdown_timeout": limits.shutdown_timeout,
        }
    )


class Front:
    """One native front process at a time, restarted when it dies."""

    def __init__(
        self,
        config: RelayConfig,
        state: RelayState,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        on_fatal: Callable[[str], None],
    ) -> None:
        self._config = config
        self._state = state
        self._factory = protocol_factory
        self._on_fatal = on_fatal
        self._loop = asyncio.get_running_loop()
        self._dir, self._lock = _private_dir()
        self._path = self._dir / "control"
        self._backend_path = self._dir / "http"
        self._backend: asyncio.Server | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[int] | None = None
        self._stopping = False
        self._deaths: list[float] = []
        self._watcher: asyncio.Task[None] | None = None
        # The configured port, then the one the first front bound (port 0: a front started
        # again listens where its clients already connect).
        self._port = config.port

    async def start(self) -> int:
        """Start the front; returns the port it listens on."""
        metrics = self._state.metrics

        def connection() -> asyncio.BaseProtocol:
            metrics.inc("relay_front_backend_connections_total")
            return self._factory()

        self._state.shares.bodies.on_change = self.send_saturation
        self._backend = await self._loop.create_unix_server(
            connection, str(self._backend_path), backlog=1024
        )
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(self._path))
        listener.listen(1)
        listener.setblocking(False)
        self._listener = listener
        self._port = await self._spawn()
        return self._port

    async def _spawn(self) -> int:
        assert self._listener is not None
        self._ready = self._loop.create_future()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "privastead.relay.front_child",
            _settings(self._config, self._port, self._path, self._backend_path),
            stdin=asyncio.subprocess.DEVNULL,
        )
        self._proc = proc
        try:
            async with compat.timeout(START_TIMEOUT):
                conn = await self._accept(proc)
                self._conn = conn
                self._loop.add_reader(conn.fileno(), self._readable)
                self.send_saturation()
                port = await self._ready
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            self._disconnect()
            raise
        # Watched only once it runs: a front that failed to start is not started again.
        self._watcher = self._loop.create_task(self._watch(proc))
        _log.info("native front (pid %d) listening on port %d", proc.pid, port)
        return port

    async def _accept(self, proc: asyncio.subprocess.Process) -> socket.socket:
        """The front's control connection, from that process and no other."""
        assert self._listener is not None
        accepting = self._loop.create_task(self._loop.sock_accept(self._listener))
        exited = self._loop.create_task(proc.wait())
        done, _ = await asyncio.wait({accepting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if accepting not in done:
            accepting.cancel()
            raise ConfigError(f"the native front exited at start (code {proc.returncode})")
        exited.cancel()
        conn, _ = accepting.result()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, _uid, _gid = struct.unpack("3i", creds)
        if pid != proc.pid:
            conn.close()
            raise ConfigError("a process other than the native front connected to its socket")
        conn.setblocking(False)
        return conn

    def send_saturation(self) -> None:
        """Tell the front which accounts and tokens are at their share of bodies being
        received (and whether all are): their uploads go to the relay, which refuses them as
        ever. Sent at start and whenever it changes."""
        if self._conn is None:
            return
        accounts, tokens, total = self._state.shares.bodies.saturated()
        message = (
            b"B" + json.dumps({"accounts": accounts, "tokens": tokens, "total": total}).encode()
        )
        try:
            self._conn.send(message)
        except BlockingIOError:  # the front is behind: try again in a moment
            self._loop.call_later(0.01, self.send_saturation)
        except OSError:
            pass  # gone: the next front gets the state at its start

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        while True:
            try:
                data = conn.recv(_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._disconnect()  # the front is gone; _watch starts another
                return
            self._message(data)

    def _message(self, data: bytes) -> None:
        kind, payload = data[:1], data[1:]
        try:
            if kind == b"S":
                self._stored(json.loads(payload))
            elif kind == b"M":
                self._served(json.loads(payload))
            elif kind == b"R":
                port = int(json.loads(payload)["port"])
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(port)
            else:
                _log.error("unknown message from the native front: %r", kind)
        except (ValueError, KeyError, TypeError):
            _log.exception("malformed message from the native front")

    def _stored(self, records: list[dict[str, Any]]) -> None:
        st = self._state
        for r in records:
            push = r.get("push")
            mailbox.stored(
                st,
                appended=store.Appended(
                    UploadResult(seq=int(r["seq"])), devices=list(r.get("devices") or [])
                ),
                mailbox=str(r["mailbox"]),
                account=str(r["account"]),
                uploader=str(r["device"]),
                size=int(r["size"]),
                push=base64.b64decode(push) if push is not None else None,
            )
        st.metrics.inc("relay_front_uploads_total", len(records))
        st.metrics.inc(
            "relay_requests_total", len(records), route=UPLOAD_ROUTE, method="POST", status="201"
        )

    def _served(self, counts: dict[str, Any]) -> None:
        """Downloads the front answered (counted as the relay counts its own)."""
        requests, size = int(counts["requests"]), int(counts["bytes"])
        m = self._state.metrics
        m.inc("relay_front_downloads_total", requests)
        m.inc("relay_sent_bytes_total", size)
        m.inc("relay_requests_total", requests, route=FETCH_ROUTE, method="GET", status="200")

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """When the front dies (not asked to stop), start another one."""
        code = await proc.wait()
        self._disconnect()
        if self._stopping:
            return
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < 60.0] + [now]
        if len(self._deaths) > MAX_RESTARTS:
            self._on_fatal(f"the native front died {len(self._deaths)} times within a minute")
            return
        _log.error("the native front exited (code %s); starting it again", code)
        await asyncio.sleep(RESTART_DELAY)
        if self.stopping():  # (it may have changed while we slept)
            return
        try:
            await self._spawn()
        except (OSError, ConfigError, TimeoutError) as exc:
            self._on_fatal(f"the native front could not be started again: {exc}")

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None

    def stopping(self) -> bool:
        return self._stopping

    def begin_stop(self) -> None:
        """Ask the front to stop accepting and to close idle connections; requests in flight
        (forwarded ones included: the relay's own drain ends WebSockets) finish."""
        if self._stopping:
            return
        self._stopping = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(b"Q")

    async def stop(self) -> None:
        """Stop the front (``begin_stop``) and wait for it to exit."""
        self.begin_stop()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                async with compat.timeout(self._config.limits.shutdown_timeout + 5.0):
                    await proc.wait()
            except TimeoutError:
                _log.warning("the native front did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._disconnect()
        if self._backend is not None:
            # Forwarded requests still running finish in the relay's drain, like any other.
            self._backend.close()
            self._backend = None
        if self._watcher is not None and self._watcher is not asyncio.current_task():
            self._watcher.cancel()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock >= 0:  # once: the number may be another file's after it is closed
            os.close(self._lock)
            self._lock = -1


__all__ = ["BODY_MAX", "FETCH_ROUTE", "UPLOAD_ROUTE", "Front", "wanted"]
