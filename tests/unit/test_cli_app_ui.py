"""`privastead-app ui` as a program: prints its secret address, serves the demo household, and
stops cleanly on SIGTERM; a non-loopback --host is refused with a message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
RUN = [sys.executable, "-c", "from privastead.cli.app import main; raise SystemExit(main())"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def test_demo_serves_at_a_secret_address_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [*RUN, "ui", "--demo"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("Privastead UI: http://127.0.0.1:"), line
            url = line.split(": ", 1)[1].strip()
            secret = url.rstrip("/").rsplit("/", 1)[1]
            assert len(secret) >= 43  # 256 bits, URL-safe base64
            with urllib.request.urlopen(url + "api/cameras", timeout=30) as r:
                assert b"front-door" in r.read()
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(url.replace(secret, "x" * len(secret)), timeout=30)
            info.value.close()
            assert info.value.code == 403
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_refuses_to_listen_beyond_loopback() -> None:
    out = subprocess.run(
        [*RUN, "ui", "--demo", "--host", "0.0.0.0"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "127.0.0.1 or ::1 only" in out.stderr and "Traceback" not in out.stderr
