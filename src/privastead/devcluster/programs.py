"""Finding the server binaries of the local cluster, portably, with errors that say what to do.

PostgreSQL's server binaries are not on ``PATH`` on Debian and Ubuntu (they live in
``/usr/lib/postgresql/<major>/bin``, and several majors may be installed side by side); other
systems put them on ``PATH``. Garage is built once per machine by ``scripts/garage.sh`` into a
cache directory. HAProxy is on ``PATH`` everywhere.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from privastead.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
GARAGE_VERSION = "2.5.0"  # keep in step with scripts/garage.sh
PG_BINDIR_ENV = "PRIVASTEAD_PG_BINDIR"
GARAGE_ENV = "PRIVASTEAD_GARAGE"
# Where distributions put what is not on PATH: Debian/Ubuntu's versioned PostgreSQL bindirs,
# HAProxy in sbin (not on a normal user's PATH).
PG_SEARCH = (Path("/usr/lib/postgresql"),)
HAPROXY_SEARCH = (Path("/usr/sbin/haproxy"), Path("/usr/local/sbin/haproxy"))


class MissingProgramError(ConfigError):
    """A server binary the cluster needs is not installed; the message says how to get it."""


def _cache_dir() -> Path:
    override = os.environ.get("PRIVASTEAD_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "privastead"


def _major(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (newest major first)."""
    candidates: list[Path] = []
    if os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(os.environ[PG_BINDIR_ENV]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10
        )
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    for base in PG_SEARCH:
        candidates += sorted(base.glob("*/bin"), key=_major, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise MissingProgramError(
        "PostgreSQL's server binaries (initdb, postgres) were not found in "
        f"${PG_BINDIR_ENV}, `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: "
        "install them with scripts/system-deps.sh (Debian/Ubuntu package 'postgresql')"
    )


def haproxy() -> Path:
    found = shutil.which("haproxy") or next((p for p in HAPROXY_SEARCH if p.is_file()), None)
    if found is None:
        raise MissingProgramError(
            "haproxy was not found on PATH: install it with scripts/system-deps.sh "
            "(Debian/Ubuntu package 'haproxy')"
        )
    return Path(found)


def garage_path() -> Path:
    """Where the pinned Garage binary is (or will be, once built)."""
    if os.environ.get(GARAGE_ENV):
        return Path(os.environ[GARAGE_ENV])
    return _cache_dir() / f"garage-{GARAGE_VERSION}" / "bin" / "garage"


def garage(wait: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> Path:
    """The Garage binary. If ``scripts/garage.sh`` is building it right now, wait up to
    ``wait`` seconds for that build; never start one (it takes tens of minutes)."""
    path = garage_path()
    if path.is_file():
        return path
    lock = _cache_dir() / f"garage-{GARAGE_VERSION}.lock"
    log = _cache_dir() / f"garage-{GARAGE_VERSION}.log"
    deadline = time.monotonic() + wait
    while lock.exists() and _locked(lock) and time.monotonic() < deadline:
        sleep(5.0)
    if path.is_file():
        return path
    hint = f"build it once with `scripts/garage.sh build` (Garage {GARAGE_VERSION} from crates.io)"
    if lock.exists() and _locked(lock):
        hint = f"a build is still running (log: {log}); wait for it or raise the wait"
    elif log.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        hint += "; the last build's log ends: " + " | ".join(tail)
    raise MissingProgramError(f"the Garage binary {path} is missing: {hint}")


def _locked(lock: Path) -> bool:
    """True while another process holds ``scripts/garage.sh``'s build lock."""
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


__all__ = [
    "GARAGE_VERSION",
    "MissingProgramError",
    "garage",
    "garage_path",
    "haproxy",
    "postgres_bindir",
]
