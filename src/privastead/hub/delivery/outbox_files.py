"""On-disk primitives of the outbox: durable atomic writes and the entry file format.

An entry file is ``<seq:020d>.msg`` in its mailbox directory::

    magic     4 bytes  b"PVOB"
    version   u8       1
    meta_len  u32 BE
    crc32     u32 BE   of meta and ciphertext (a torn or rotted file is detected on read)
    meta      canonical JSON: seq, kind, clip_id, push_payload (base64 or null), app_seq
              (the envelope's seq of an application message, null for commits; absent in
              files written before it existed), so that an archived message can be found by
              the seq a client asks to have resent, also after a restart
    ciphertext

Files are written as ``<name>.tmp`` (mode 0600), fsynced, renamed into place, and the directory
is fsynced, so after a crash a file is either complete or absent; leftover ``.tmp`` files are
removed on open.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead.atomic_file import TMP_SUFFIX, fsync_dir, write_atomic
from privastead.errors import StorageError

MAGIC = b"PVOB"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sBII")
MAX_META = 64 << 10
SUFFIX = ".msg"


def entry_name(seq: int) -> str:
    return f"{seq:020d}{SUFFIX}"


def parse_entry_name(name: str) -> int | None:
    """The seq of an entry file name, or None for anything else."""
    stem = name.removesuffix(SUFFIX)
    if stem == name or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


@dataclass(frozen=True)
class EntryMeta:
    seq: int
    kind: str
    clip_id: str | None
    push_payload: bytes | None
    app_seq: int | None = None

    def to_json(self) -> bytes:
        push = None if self.push_payload is None else base64.b64encode(self.push_payload).decode()
        value: dict[str, object] = {
            "seq": self.seq,
            "kind": self.kind,
            "clip_id": self.clip_id,
            "push": push,
        }
        if self.app_seq is not None:  # commits have none; older entries lack the key
            value["app_seq"] = self.app_seq
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def pack_entry(meta: EntryMeta, ciphertext: bytes) -> bytes:
    meta_bytes = meta.to_json()
    crc = zlib.crc32(ciphertext, zlib.crc32(meta_bytes))
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(meta_bytes), crc)
    return b"".join((prefix, meta_bytes, ciphertext))


def _parse_meta(raw: bytes, path: Path) -> EntryMeta:
    try:
        value: Any = json.loads(raw)
        push = value["push"]
        meta = EntryMeta(
            seq=value["seq"],
            kind=value["kind"],
            clip_id=value["clip_id"],
            push_payload=None if push is None else base64.b64decode(push, validate=True),
            app_seq=value.get("app_seq"),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise StorageError(f"outbox entry {path} has corrupt metadata: {e}") from None
    if (
        not isinstance(meta.seq, int)
        or not isinstance(meta.kind, str)
        or not (meta.app_seq is None or isinstance(meta.app_seq, int))
    ):
        raise StorageError(f"outbox entry {path} has corrupt metadata")
    return meta


def read_meta(path: Path) -> tuple[EntryMeta, int]:
    """The metadata of an entry and the length of its ciphertext, without reading the body."""
    try:
        with path.open("rb") as f:
            prefix = f.read(_PREFIX.size)
            _magic, _version, meta_len, _crc = _check_prefix(prefix, path)
            meta = _parse_meta(f.read(meta_len), path)
            size = path.stat().st_size - _PREFIX.size - meta_len
    except OSError as e:
        raise StorageError(f"cannot read outbox entry {path}: {e.strerror or e}") from e
    if size < 0:
        raise StorageError(f"outbox entry {path} is truncated")
    return meta, size


def read_entry(path: Path) -> tuple[EntryMeta, bytes]:
    """Metadata and ciphertext of an entry, checking its CRC."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StorageError(f"cannot read outbox entry {path}: {e.strerror or e}") from e
    _magic, _version, meta_len, crc = _check_prefix(data[: _PREFIX.size], path)
    meta_end = _PREFIX.size + meta_len
    meta_bytes, ciphertext = data[_PREFIX.size : meta_end], data[meta_end:]
    if len(meta_bytes) != meta_len or zlib.crc32(ciphertext, zlib.crc32(meta_bytes)) != crc:
        raise StorageError(f"outbox entry {path} is corrupt (checksum mismatch)")
    return _parse_meta(meta_bytes, path), ciphertext


def _check_prefix(prefix: bytes, path: Path) -> tuple[bytes, int, int, int]:
    if len(prefix) != _PREFIX.size:
        raise StorageError(f"outbox entry {path} is truncated")
    magic, version, meta_len, crc = _PREFIX.unpack(prefix)
    if magic != MAGIC or version != FORMAT_VERSION or meta_len > MAX_META:
        raise StorageError(f"{path} is not an outbox entry of format {FORMAT_VERSION}")
    return magic, version, meta_len, crc


__all__ = [
    "TMP_SUFFIX",
    "EntryMeta",
    "entry_name",
    "fsync_dir",
    "pack_entry",
    "parse_entry_name",
    "read_entry",
    "read_meta",
    "write_atomic",
]
