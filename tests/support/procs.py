"""Real server processes for tests: privastead-camsim and GStreamer's RTSP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


class Proc:
    """A server subprocess that prints its URLs on stdout once it is ready."""

    def __init__(self, args: list[str], ready_lines: int = 1, timeout: float = 90.0) -> None:
        self.args = args
        self.ready_lines = ready_lines
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.urls: list[str] = []

    def start(self) -> Proc:
        # stderr goes to a file: a pipe nobody reads would block a chatty server.
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self.errors, text=True, env=_env()
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        self.urls = []
        while len(self.urls) < self.ready_lines:
            line = self.proc.stdout.readline()
            if not line:
                self.errors.seek(0)
                err = self.errors.read()
                self.stop()
                raise RuntimeError(f"{self.args[:4]} exited before it was ready: {err[-2000:]}")
            if line.startswith("rtsp://"):
                self.urls.append(line.split()[0])
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in time")
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def camsim(
    port: int,
    cache: Path,
    *extra: str,
    scene: str = "static",
    size: str = "160x120",
    fps: float = 15,
    duration: float = 2.0,
) -> Proc:
    args = [
        sys.executable,
        "-m",
        "privastead.cli.camsim",
        "--port",
        str(port),
        "--scene",
        scene,
        "--size",
        size,
        "--fps",
        str(fps),
        "--duration",
        str(duration),
        "--cache-dir",
        str(cache),
        *extra,
    ]
    lines = 2 if "--sub" in extra else 1
    return Proc(args, ready_lines=lines)


def gstreamer_available() -> str | None:
    """None if Debian's GStreamer RTSP server works here, else why not."""
    python = Path("/usr/bin/python3")
    if not python.exists():
        return "/usr/bin/python3 (Debian's interpreter with python3-gi) is missing"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', "
        "'1.0'); from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "assert Gst.ElementFactory.find('rtph264pay') and Gst.ElementFactory.find('appsrc')"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if result.returncode:
        return (
            "GStreamer RTSP server packages missing (run scripts/system-deps.sh): "
            + result.stderr.strip().splitlines()[-1:][0]
            if result.stderr
            else ""
        )
    return None


def gstreamer(
    port: int,
    h264_file: Path,
    fps: float,
    path: str = "/cam",
    *,
    auth: str | None = None,
    user: str = "admin",
    password_file: Path | None = None,
    audio: str | None = None,
) -> Proc:
    """GStreamer's RTSP server; ``auth`` "basic"/"digest" with the password read from a file
    (never on the command line), ``audio`` "pcmu"/"pcma"/"opus"/"aac" adds a tone."""
    script = ROOT / "tests" / "support" / "gst_rtsp_server.py"
    args = ["/usr/bin/python3", str(script), str(h264_file), str(port), path, str(fps)]
    if auth is not None:
        assert password_file is not None
        args += ["--auth", auth, "--user", user, "--password-file", str(password_file)]
    if audio is not None:
        args += ["--audio", audio]
    return Proc(args)
