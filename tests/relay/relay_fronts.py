"""The relay's front from the tests' side: a config that chooses it, the front's child
process, and a kill -9 that takes it along. Apart from relay_harness.py because of psutil,
which the lowest-versions run (scripts/test-lowest.sh) does not install."""

from __future__ import annotations

import contextlib
import time

import psutil
from relay_harness import RelayProcess

FRONT_CHILD = "privastead.relay.front_child"


def front_config(mode: str, rest: str = "") -> str:
    """A relay config with ``front = mode`` (a top-level key: before any table)."""
    return f'front = "{mode}"\n{rest}'


def front_children(relay: RelayProcess) -> list[psutil.Process]:
    """The relay's front child processes (``python -m privastead.relay.front_child``)."""
    assert relay.proc is not None
    found = []
    for child in psutil.Process(relay.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if FRONT_CHILD in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped yet counts as exited)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def kill_with_front(relay: RelayProcess) -> None:
    """kill -9 the relay, then its front by its pid should it outlive its parent (the bug
    the crash tests look for): it would keep the port and the database."""
    alive = relay.proc is not None and relay.proc.poll() is None
    fronts = front_children(relay) if alive else []
    relay.kill9()
    deadline = time.monotonic() + 5
    for front in fronts:
        while not gone(front.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(psutil.NoSuchProcess):
            if not gone(front.pid):
                front.kill()
