"""Logging set-up shared by every program: ``key=value`` lines or JSON, never secrets.

Log calls use lazy ``%s`` formatting and pass identifiers, sizes and counts. Keys, tokens,
pairing secrets and plaintext never go into a log record; ``redact`` shortens an identifier
to a prefix that is enough to correlate lines without revealing a secret.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

LogFormat = Literal["text", "json"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def setup(level: str | int = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger once for a program (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )
        formatter.converter = time.localtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def redact(identifier: bytes | str, keep: int = 6) -> str:
    """A short, non-secret prefix of an identifier for log lines (``ab12cd…``)."""
    text = identifier.hex() if isinstance(identifier, bytes) else identifier
    return text[:keep] + "…" if len(text) > keep else text


__all__ = ["LogFormat", "redact", "setup"]
