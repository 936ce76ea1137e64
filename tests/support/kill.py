"""Killing a child process at a random point of its work, for crash-safety tests."""

from __future__ import annotations

import signal
import subprocess
import time


def kill_after_progress(proc: subprocess.Popen[bytes], lines: int, extra: float) -> bytes:
    """SIGKILL ``proc`` at a random moment *after* it reported ``lines`` lines of progress
    (waiting for progress, not for a fixed time, keeps the test valid on a loaded machine)."""
    assert proc.stdout is not None
    seen = []
    while len(seen) < lines and (line := proc.stdout.readline()):
        seen.append(line)
    time.sleep(extra)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return b"".join(seen) + out
