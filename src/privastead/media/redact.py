"""Log-safe texts for camera errors: no credentials, whatever FFmpeg put in its message.

The camera's username and password travel inside the RTSP URL that FFmpeg is given (FFmpeg's
RTSP client takes them from nowhere else), and PyAV repeats that URL in its exception texts.
Everything the ingest logs or reports goes through ``describe_error`` or ``redact``.
"""

from __future__ import annotations

import re

import av

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with the user information (``user:password@``) of every URL removed."""
    return _USERINFO.sub(r"\1", text)


def describe_error(exc: BaseException) -> str:
    """A log-safe sentence for an error of FFmpeg or the OS: PyAV puts the URL it was given
    (with the camera's credentials) into its messages, so only the error string is kept."""
    if isinstance(exc, (av.FFmpegError, OSError)) and exc.strerror:
        return f"{type(exc).__name__}: {redact(str(exc.strerror))}"
    return f"{type(exc).__name__}: {redact(str(exc))}"


__all__ = ["describe_error", "redact"]
