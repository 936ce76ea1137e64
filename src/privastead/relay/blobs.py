"""Blob files: large message bodies streamed to disk, never held whole in memory.

A blob is written to ``tmp/``, fsynced, renamed into ``<2 hex>/<name>`` and the directory
fsynced; only then does its index row commit (see ``store``). Names are random, unrelated
to mailbox ids, and checked before any file-system call, so no request can steer a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from privastead.errors import StorageError

_NAME = re.compile(r"\A[0-9a-f]{32}\Z")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenBlob:
    name: str
    size: int
    digest: bytes  # SHA-256 of the bytes, for the idempotency check


class TooLarge(Exception):
    """The body grew past the limit while streaming."""


class BlobNotFoundError(StorageError):
    """The blob is gone (deleted by an ack, an expiry or a sweep since its row was read)."""


class BlobStore:
    """The file half of storage. An S3-compatible store would implement the same four calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def open(self) -> None:
        self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.tmp.chmod(0o700)
        for leftover in self.tmp.iterdir():  # uploads cut short by a crash
            leftover.unlink(missing_ok=True)

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise StorageError("bad blob name")
        return self.root / name[:2] / name

    async def write(
        self, chunks: AsyncIterator[bytes], limit: int, head: bytes = b""
    ) -> WrittenBlob:
        """Stream ``head`` + ``chunks`` into a new blob; raises ``TooLarge`` past ``limit``.

        Chunk writes go straight to the page cache (fast, bounded by the chunk size); the
        fsync, which can take milliseconds, runs on a worker thread.
        """
        name = secrets.token_hex(16)
        tmp = self.tmp / name
        digest = hashlib.sha256()
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        done = False
        try:
            if head:
                digest.update(head)
                size = len(head)
                _write_all(fd, head)
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge
                digest.update(chunk)
                _write_all(fd, chunk)
            final = self.path(name)
            # One hop to a worker thread for all that may wait on the disk: the file's fsync,
            # the rename into place and the directory's fsync.
            await asyncio.to_thread(_install, fd, tmp, final)
            fd = -1  # closed by _install
            done = True
        except OSError as exc:
            raise StorageError(f"cannot write blob: {exc.strerror or exc}") from exc
        finally:
            if fd >= 0:
                os.close(fd)
            if not done:
                tmp.unlink(missing_ok=True)
        return WrittenBlob(name=name, size=size, digest=digest.digest())

    async def delete(self, names: list[str]) -> None:
        if names:
            await asyncio.to_thread(self._delete, names)

    def _delete(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError, StorageError):
                self.path(name).unlink(missing_ok=True)

    def sweep(self, referenced: set[str]) -> int:
        """Remove files no index row points to (left by a crash between rename and commit)."""
        removed = 0
        for sub in self.root.iterdir():
            if sub == self.tmp or not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name not in referenced:
                    f.unlink(missing_ok=True)
                    removed += 1
        if removed:
            _log.info("removed %d orphaned blob files", removed)
        return removed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _install(fd: int, tmp: Path, final: Path) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    final.parent.mkdir(mode=0o700, exist_ok=True)
    tmp.rename(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = ["BlobNotFoundError", "BlobStore", "TooLarge", "WrittenBlob"]
