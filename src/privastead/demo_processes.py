"""The child processes of `make demo`: started in their own session, logged to files, stopped.

Each child gets its own session so that Ctrl-C in the terminal reaches only the orchestrator,
which then stops the children in reverse start order (SIGTERM, then SIGKILL after a grace
period): the client before the hub, the hub before its camera and relay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SRC = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """This interpreter's environment with our sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env.setdefault("NUMBA_CACHE_DIR", str(SRC.parent / ".cache" / "numba"))
    return env


def program(module: str, *args: str) -> list[str]:
    """The command line of one of our programs, run by this interpreter."""
    return [sys.executable, "-m", module, *args]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Children:
    """Every process the demo started, in start order."""

    logs: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], *, stdout_pipe: bool = False) -> Child:
        """Start ``cmd``; stderr (and stdout unless piped) go to ``<logs>/<name>.log``."""
        log = self.logs / f"{name}.log"
        with log.open("a") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                cmd,
                env=child_env(),
                stdout=subprocess.PIPE if stdout_pipe else out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.started.append(child)
        return child

    def finished(self, child: Child, timeout: float = 30.0) -> int:
        """Wait for a one-shot ``child`` to exit by itself; it is no longer watched."""
        code = child.proc.wait(timeout)
        _stop(child, 0)
        self.started.remove(child)
        return code

    def dead(self) -> list[Child]:
        return [c for c in self.started if not c.running()]

    def stop_all(self, grace: float = 20.0) -> None:
        for child in reversed(self.started):
            _stop(child, grace)
        self.started.clear()


def _stop(child: Child, grace: float) -> None:
    if child.running():
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(grace)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(10)
    stream: IO[str] | None = child.proc.stdout
    if stream is not None:
        stream.close()
