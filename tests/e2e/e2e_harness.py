"""End-to-end harness: a real relay, a camsim camera, `privastead-hub` and `privastead-app`
processes on loopback, and helpers to pair, run and inspect them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "relay"))

from relay_harness import RelayProcess, make_process

from privastead.client.app import Client
from privastead.client.device import DataDir
from privastead.clock import SystemClock
from privastead.hub.sample_config import loopback_config
from privastead.ports import free_port
from support.procs import Proc, camsim

SRC = Path(__file__).resolve().parents[2] / "src"

# Plaintext signatures that must never reach the relay: MP4 boxes and JPEG markers (4 bytes
# each, so random ciphertext matches one with probability ~2^-32 per position).
PLAINTEXT_MARKERS = (b"ftyp", b"moof", b"mdat", b"moov", b"JFIF", b"\xff\xd8\xff\xe0", b"Lavf")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("NUMBA_CACHE_DIR", str(SRC.parent / ".cache" / "numba"))
    return e


def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "privastead.cli.hub", *args]


def app_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "privastead.cli.app", *args]


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Home:
    """One hub (config, data) with its relay and camera."""

    root: Path
    relay: RelayProcess
    camera_url: str
    keep_plaintext: bool = True
    hub: subprocess.Popen[str] | None = None
    camera: Proc | None = None  # the camsim process (tests freeze or kill it)
    hub_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.root / "hub"
        self.config = self.root / "hub.toml"
        self.hub_log = self.root / "hub.log"
        token = self.root / "owner-token"
        token.write_text(self.relay.owner_token)
        self.config.write_text(
            loopback_config(
                data_dir=self.data,
                relay_url=self.relay.url,
                token_file=token,
                camera_url=self.camera_url,
                keep_plaintext_clips=self.keep_plaintext,
            )
        )

    # -- pairing ------------------------------------------------------------------------------

    def start_pairing(self, *extra: str) -> tuple[subprocess.Popen[str], str, Path]:
        """Start `privastead-hub pair`; returns the process, the long code and the PNG (the
        short code is in ``last_short``). Its stdin is a pipe: ``confirm`` answers the
        prompt; closing it leaves the decision to `devices approve|reject`."""
        png = self.root / f"qr-{time.monotonic_ns()}.png"
        proc = subprocess.Popen(
            hub_cmd("pair", "--config", str(self.config), "--no-qr", "--png", str(png), *extra),
            env=env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        self.last_short = ""
        for line in proc.stdout:
            if line.startswith("short code:"):
                self.last_short = line.split(":", 1)[1].strip()
            if line.startswith("privastead:"):
                return proc, line.strip(), png
        proc.kill()
        raise RuntimeError(
            "hub pair printed no code: " + (proc.stderr.read() if proc.stderr else "")
        )

    @staticmethod
    def await_pending(proc: subprocess.Popen[str]) -> str:
        """The hub pair's output up to the pending device's key fingerprint."""
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("device key fingerprint:"):
                return "".join(lines)
        raise AssertionError(
            "hub pair never showed a pending device: "
            + "".join(lines)
            + (proc.stderr.read() if proc.stderr else "")
        )

    def confirm(self, proc: subprocess.Popen[str], answer: str = "y") -> str:
        """Answer the hub's y/N prompt once it shows the pending device; what it printed."""
        shown = self.await_pending(proc)
        assert proc.stdin is not None
        proc.stdin.write(answer + "\n")
        proc.stdin.flush()
        return shown

    def start_app_pair(
        self, client: Path, name: str, *args: str, code: str | None = None
    ) -> subprocess.Popen[str]:
        """`privastead-app pair ARGS`, the code (if any) typed on its standard input."""
        app = subprocess.Popen(
            app_cmd("pair", *args, "--data-dir", str(client), "--name", name),
            env=env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert app.stdin is not None
        if code is not None:
            app.stdin.write(code + "\n")
        close_stdin(app)
        return app

    def pair(
        self, client: Path, name: str, *, use_qr: bool = False, short: bool = False
    ) -> tuple[str, str]:
        """Pair ``client`` (by the long code typed at its prompt, the QR, or the short code),
        confirming it on the hub; returns (hub safety code, client safety code)."""
        proc, code, png = self.start_pairing()
        if use_qr:
            app = self.start_app_pair(client, name, "--qr", str(png))
        elif short:
            app = self.start_app_pair(client, name, "--relay", self.relay_url, code=self.last_short)
        else:
            app = self.start_app_pair(client, name, code=code)
        shown = self.confirm(proc)
        hub_out, hub_err = proc.communicate(timeout=60)
        out, err = app.communicate(timeout=60)
        assert app.returncode == 0, err
        assert proc.returncode == 0, hub_err
        self.last_code = code
        return _safety(shown + hub_out), _safety(out)

    @property
    def relay_url(self) -> str:
        """The relay URL the hub's config names (a test may point it at a proxy)."""
        section = ""
        for raw in self.config.read_text().splitlines():
            line = raw.strip()
            if line.startswith("["):
                section = line
            elif section == "[relay]" and line.startswith("url"):
                return line.split("=", 1)[1].strip().strip('"')
        return self.relay.url

    # -- running ------------------------------------------------------------------------------

    def start_hub(self) -> None:
        with self.hub_log.open("a") as log:
            self.hub = subprocess.Popen(
                hub_cmd("--log-level", "INFO", "run", "--config", str(self.config)),
                env=env(),
                stdout=log,
                stderr=log,
                text=True,
            )

    def stop_hub(self) -> None:
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(40)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait(10)
        self.hub = None

    def kill_hub(self) -> None:
        if self.hub is not None:
            self.hub.kill()
            self.hub.wait(10)
        self.hub = None

    def recorded_clips(self) -> list[Path]:
        return sorted((self.data / "clips").glob("*/*.mp4"))


def close_stdin(proc: subprocess.Popen[str]) -> None:
    """End the process's input (``communicate`` then leaves it alone)."""
    if proc.stdin is not None:
        proc.stdin.close()
        proc.stdin = None


def _safety(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("safety code:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no safety code in {text!r}")


async def sync_until(clients: list[Path], done, limit: float = 90.0) -> list[Client]:  # type: ignore[no-untyped-def]
    """Sync every client repeatedly until ``done(syncers)`` or ``limit`` seconds."""
    syncers = [Client(DataDir(c), clock=SystemClock()) for c in clients]
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            for s in syncers:
                await s.sync_once()
            if done(syncers):
                break
            await asyncio.sleep(0.5)
    finally:
        for s in syncers:
            await s.close()
    return syncers


class Listener:
    """`privastead-app listen` as a process; its output lines are collected as they come."""

    def __init__(self, client: Path, *extra: str) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            app_cmd("listen", "--poll", "1", "--data-dir", str(client), *extra),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def wait_for(self, done: Callable[[list[str]], bool], limit: float = 120.0) -> bool:
        """Poll ``done(stdout lines)`` until true (returns True) or ``limit`` seconds pass."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if done(list(self.stdout)):
                return True
            if self.proc.poll() is not None:
                return done(list(self.stdout))
            time.sleep(0.2)
        return False

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for t in self._threads:
            t.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    def output(self) -> str:
        return "\n".join(["-- stdout", *self.stdout, "-- stderr", *self.stderr])


def scan_for_plaintext(root: Path) -> list[tuple[Path, bytes]]:
    hits: list[tuple[Path, bytes]] = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits.extend((path, m) for m in PLAINTEXT_MARKERS if m in data)
    return hits


__all__ = [
    "Home",
    "Listener",
    "make_process",
    "run",
    "scan_for_plaintext",
    "sync_until",
]


@contextlib.contextmanager
def running_home(
    root: Path,
    *camsim_args: str,
    relay_config: str = "",
    size: str = "320x180",
    fps: float = 10,
    duration: float = 14,
) -> Iterator[Home]:
    """A relay process and a camsim camera (demo scene) under ``root``; the hub is started by
    the test (``Home.start_hub``) and killed on the way out, then the camera and the relay."""
    relay = make_process(root / "relay", relay_config)
    try:
        with camsim(
            free_port(),
            root / "cache",
            *camsim_args,
            scene="demo",
            size=size,
            fps=fps,
            duration=duration,
        ) as cam:
            home = Home(root, relay, cam.urls[0], camera=cam)
            try:
                yield home
            finally:
                home.kill_hub()
    finally:
        relay.kill9()
