"""Crash-safe file writes: a reader sees the old file or the new one, never a mix.

tmp (mode 0600) → write → fsync → rename over the target → fsync the directory. Used for every
small state file (outbox entries and state, clip sidecars); leftover ``*.tmp`` files after a
crash are the caller's to remove when it opens its directory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from privastead.errors import StorageError

TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make renames and unlinks in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    ``sync_dir=False`` leaves the directory's fsync to the caller: several files renamed into
    one directory need it once, after the last (until then a power cut may lose the renames,
    a killed process does not)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        if sync_dir:
            fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e


__all__ = ["TMP_SUFFIX", "fsync_dir", "write_atomic"]
