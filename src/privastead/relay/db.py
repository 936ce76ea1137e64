"""One SQLite connection on one thread, with group commit.

Every database operation is a plain function ``fn(conn) -> T``. The worker thread takes all
operations waiting at that moment, runs each inside its own SAVEPOINT of one transaction,
commits once (one fsync in WAL mode for the whole batch) and only then resolves the callers'
futures. So an upload is acknowledged only after its row is durable, yet a burst of small
uploads costs one fsync, not one each. An operation that raises rolls back to its savepoint
and leaves its neighbours in the batch untouched.

A second writer may share the database: the relay's native front, a process of its own
(``relay/front.py``). Both take an exclusive ``flock`` on ``<database>.lock`` around each
transaction, so a writer that finds the other one committing sleeps in the kernel until the
lock is free and starts at once, instead of in SQLite's busy handler, which polls with
growing sleeps (1, 2, 5, 10 ... ms) and would add them to every upload's answer.

Reads (``db.read(fn)``) take another path: a second, read-only connection used directly on
the event loop. They are short indexed lookups (tens of microseconds), cheaper than a hop to
a thread, and in WAL mode they never wait for the writer, whose batch may be sitting in an
fsync for milliseconds. They see every committed write, so a reader never sees an upload
before it was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from privastead.errors import StorageError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_log = logging.getLogger(__name__)
_MAX_BATCH = 512
CHECKPOINT_INTERVAL = 0.5  # seconds between PASSIVE WAL checkpoints


# The index holds push tokens, webhook URLs and token hashes: owner-only, like its directory.
DIR_MODE = 0o700
FILE_MODE = 0o600


def secure_dir(path: Path) -> None:
    """Create the data directory 0700 (or tighten an existing one, and the database files
    already in it: a relay of an older version, or another umask, may have left them open)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    for name in ("relay.sqlite3", "relay.sqlite3-wal", "relay.sqlite3-shm", "relay.sqlite3.lock"):
        with contextlib.suppress(FileNotFoundError):
            (path / name).chmod(FILE_MODE)


def connect(path: Path, durability: Literal["full", "normal"] = "full") -> sqlite3.Connection:
    """Open the index database in WAL mode (also used directly by the CLI). SQLite creates
    the -wal and -shm files with the database file's mode, so 0600 carries over."""
    if not path.exists():
        # Create it 0600 whatever the umask, before SQLite creates it with 0644.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={durability.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def lock_path(path: Path) -> Path:
    """The file both writers of ``path`` lock around a transaction."""
    return path.with_name(path.name + ".lock")


class Database:
    """Serialises operations onto a worker thread; ``await db.run(fn)``."""

    def __init__(self, path: Path, durability: Literal["full", "normal"] = "full") -> None:
        self._path = path
        self._durability = durability
        self._queue: queue.SimpleQueue[tuple[Op, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._fault: Callable[[], None] | None = None  # tests inject disk errors here
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._lock_fd: int | None = None

    @property
    def path(self) -> Path:
        return self._path

    def open(self, init: Op) -> None:
        self._lock_fd = os.open(lock_path(self._path), os.O_RDWR | os.O_CREAT, FILE_MODE)
        self._conn = connect(self._path, self._durability)
        init(self._conn)
        # Checkpoints (copying the WAL into the database file, with its own fsyncs) would
        # otherwise run inside whichever COMMIT crosses the threshold and stall that batch;
        # a separate thread does them in PASSIVE mode, which never blocks the writer.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        # Each operation runs in a savepoint, which copies every page it is about to change
        # into the transaction's sub-journal; past 64 KiB (a batch of a dozen uploads) SQLite
        # moves that into a temporary file, a write syscall per page. In memory it stays a
        # copy: at most a batch's changed pages, freed at COMMIT.
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._reader = connect(self._path, self._durability)
        self._reader.execute("PRAGMA query_only=ON")
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="relay-db-ckpt", daemon=True
        )
        self._checkpointer.start()
        self._thread = threading.Thread(target=self._work, name="relay-db", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish every queued operation, then close (graceful shutdown)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join()
            self._checkpointer = None
        for conn in (self._conn, self._reader):
            if conn is not None:
                conn.close()
        self._conn = self._reader = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def inject_fault(self, fault: Callable[[], None] | None) -> None:
        """Call ``fault`` before each commit; raising OSError simulates a full or failed disk."""
        self._fault = fault

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            raise StorageError("database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((fn, future))
        return await future

    def _checkpoints(self) -> None:
        conn = connect(self._path, self._durability)
        conn.execute("PRAGMA busy_timeout=1000")  # a RESTART waits this long for readers
        lock = os.open(lock_path(self._path), os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL):
                try:
                    # The bulk beside the writers, then the few frames left with the writers
                    # held off, in RESTART mode: the next transaction writes the WAL from its
                    # start again. Without that, a writer that never pauses (a busy relay)
                    # always holds frames the checkpoint has not copied, SQLite can never
                    # restart the log, and the WAL grows for as long as the load lasts
                    # (200 MB in a 4 s benchmark), every commit appending to new file blocks.
                    _busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > 0:
                        fcntl.flock(lock, fcntl.LOCK_EX)
                        try:
                            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                        finally:
                            fcntl.flock(lock, fcntl.LOCK_UN)
                except sqlite3.Error as exc:  # retried next interval; the WAL just grows
                    _log.warning("WAL checkpoint failed: %s", exc)
            # Stopping: fold the whole WAL back so the data directory is compact at rest.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            _log.warning("final WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
            os.close(lock)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a short read-only ``fn`` now, on the calling thread (see the module doc)."""
        if self._reader is None:
            raise StorageError("database is closed")
        try:
            return fn(self._reader)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc
        finally:
            if self._reader.in_transaction:  # never hold a snapshot between calls
                self._reader.execute("ROLLBACK")

    def _work(self) -> None:
        conn = self._conn
        assert conn is not None
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]
    ) -> None:
        outcomes: list[tuple[bool, Any]] = []
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # waits without the GIL
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _ in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((True, result))
            if self._fault is not None:
                self._fault()
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            # The whole batch failed to become durable: nobody gets a success.
            _log.error("database commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, _storage_error(exc)) for _ in batch]
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        # One wake-up of the event loop per batch, not per operation.
        pairs = [(future, outcome) for (_, future), outcome in zip(batch, outcomes, strict=True)]
        batch[0][1].get_loop().call_soon_threadsafe(_resolve_all, pairs)


def _storage_error(cause: BaseException) -> StorageError:
    error = StorageError(f"storage failure: {cause}")
    error.__cause__ = cause  # the middleware tells a full disk (507) from other failures
    return error


def _resolve_all(pairs: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for future, (ok, value) in pairs:
        if future.done():  # the caller went away (cancelled); the work is done regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


__all__ = ["DIR_MODE", "FILE_MODE", "Database", "connect", "lock_path", "secure_dir"]
