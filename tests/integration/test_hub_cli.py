"""`privastead-hub run` and `check-config` as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.ports import free_port
from support.procs import ROOT, camsim


def _hub(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "privastead.cli.hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_check_config_accepts_a_good_file_and_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "hub.toml"
    good.write_text(
        '[hub]\ndata_dir = "/tmp/x"\n\n[[cameras]]\nname = "door"\n'
        'url = "rtsp://10.0.0.2/main"\ndecode = "full"\n'
    )
    result = _hub("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "camera door: full decoding, detection on the main stream" in result.stdout
    assert "continuous" not in result.stdout  # off by default

    recording = tmp_path / "recording.toml"
    recording.write_text(
        '[storage]\nrecording_days = 3\n\n[[cameras]]\nname = "door"\n'
        'url = "rtsp://10.0.0.2/main"\ncontinuous = true\nrecording_gb = 20\n'
    )
    result = _hub("check-config", str(recording))
    assert result.returncode == 0, result.stderr
    assert "continuous recording in 60 s segments kept 3 days, 20 GB at most" in result.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[cameras]]\nname = "door"\nurl = "rtsp://10.0.0.2/main"\ndecode = "sometimes"\n'
    )
    result = _hub("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: cameras[0].decode: must be one of 'full', 'keyframes'" in result.stderr


@pytest.mark.slow
def test_run_reads_a_camera_prints_status_and_stops(tmp_path: Path) -> None:
    port = free_port()
    with camsim(port, tmp_path / "cache") as cam:
        config = tmp_path / "hub.toml"
        config.write_text(
            f'[hub]\ndata_dir = "{tmp_path / "data"}"\nstatus_interval = 1\n\n'
            f'[[cameras]]\nname = "porch"\nurl = "{cam.urls[0]}"\n'
        )
        result = _hub("run", "--config", str(config), "--duration", "4")
    assert result.returncode == 0, result.stderr
    assert "porch: connected" in result.stderr
    assert (tmp_path / "data" / "clips").is_dir()


_TERM_WHILE_OPENING = """
import asyncio, contextlib, os, signal, sys
from privastead.hub import app
from privastead.cli.hub import main
opened = app.Hub.open
@contextlib.asynccontextmanager
async def open_with_term(*args, **kwargs):
    async with opened(*args, **kwargs) as hub:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)  # the signal lands while the hub is still opening
        yield hub
app.Hub.open = open_with_term
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_hub_opens_is_a_graceful_stop(tmp_path: Path) -> None:
    """Signals are handled from before the hub opens its state: a SIGTERM that lands while it
    opens (a supervisor stopping it as it starts) stops it gracefully, closing what was
    opened, instead of killing it with the default action (exit -15)."""
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[[cameras]]\nname = "porch"\nurl = "rtsp://127.0.0.1:{free_port()}/main"\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", _TERM_WHILE_OPENING, "run", "--config", str(config)],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "porch: connected" not in result.stderr  # no camera was started
