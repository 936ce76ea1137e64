"""One server child process: started in its own session, logged to a file, stopped on purpose.

Own session: Ctrl-C in the terminal reaches only the orchestrator, which stops its children in
order. ``kill9`` is for the fault tests (a crash, not a shutdown).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from privastead.errors import ConfigError


def unprivileged_user() -> pwd.struct_passwd | None:
    """As root, the account servers that refuse root (PostgreSQL) run as; None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def hand_over(path: Path, user: pwd.struct_passwd | None) -> None:
    """Make ``path`` (a fresh directory or file of ours) owned by ``user`` (when root)."""
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def check_reachable(path: Path, user: pwd.struct_passwd | None) -> None:
    """Raise unless ``user`` may traverse every existing ancestor of ``path`` (a server
    running as another account than ours cannot reach a directory inside a 0700 one)."""
    if user is None:
        return
    for parent in path.absolute().parents:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid == user.pw_gid:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            raise ConfigError(
                f"{path}: the server runs as {user.pw_name!r}, which cannot enter {parent}; "
                "choose a directory outside it (for example under /tmp or /var/lib)"
            )


@dataclass
class ServerProcess:
    name: str
    args: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    user: pwd.struct_passwd | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                list(self.args),
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
                user=self.user.pw_uid if self.user else None,
                group=self.user.pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = 20.0) -> int | None:
        """Send ``sig``, wait up to ``grace`` s, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        """A crash: SIGKILL to the whole process group (a server's forked workers included,
        as when its machine dies), no chance to clean up."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # its own session: pgid == pid
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


class Supervised:
    """A part of the cluster that runs as one ``ServerProcess`` (``self.server``)."""

    server: ServerProcess | None
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM  # the part's graceful shutdown
    stop_grace: ClassVar[float] = 20.0

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(self.stop_signal, grace=self.stop_grace)
            self.server = None

    def kill9(self) -> None:
        """A crash (see ``ServerProcess.kill9``)."""
        if self.server is not None:
            self.server.kill9()
            self.server = None

    def running(self) -> bool:
        return self.server is not None and self.server.running()


__all__ = ["ServerProcess", "Supervised", "check_reachable", "hand_over", "unprivileged_user"]
