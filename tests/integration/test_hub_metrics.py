"""The hub's metrics and health endpoint (``[metrics]``) on a real `privastead-hub run` process
reading a real camsim camera: Prometheus text while the camera streams, /health turning to 503
once the camera is killed, JSON errors for anything else; and the config rules (off by default,
local addresses only, the removed ``hub_name`` named with what to do)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from privastead.errors import ConfigError
from privastead.hub import config as hubconfig
from privastead.ports import free_port
from support.procs import ROOT, camsim


def _get(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def _until(probe: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = probe()
        except OSError:
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.mark.slow
def test_metrics_and_health_follow_a_camera_that_goes_away(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cam = camsim(free_port(), tmp_path / "cache", duration=2.0).start()
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndata_dir = "{tmp_path / "data"}"\nstatus_interval = 0\n\n'
        f'[[cameras]]\nname = "porch"\nurl = "{cam.urls[0]}"\ncontinuous = true\n'
        "segment_seconds = 1\n\n"
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    log = (tmp_path / "hub.log").open("w")
    hub = subprocess.Popen(
        [sys.executable, "-m", "privastead.cli.hub", "run", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> dict[str, Any] | None:
            status, _kind, body = _get(f"{base}/health")
            report = json.loads(body)
            # The first seconds count as connected (a grace period): wait for a real frame.
            return report if status == 200 and report["cameras"]["porch"]["last_frame"] else None

        report = _until(healthy, 60)
        assert report is not None, (tmp_path / "hub.log").read_text()[-3000:]
        assert report["status"] == "ok"
        porch = report["cameras"]["porch"]
        assert porch["connected"] is True and porch["last_frame"] > time.time() - 30

        def measured() -> str | None:
            # fps is measured over the last few seconds: right after the first frame it can
            # still read 0 on a loaded machine, so wait for the first measurement.
            status, kind, text = _get(f"{base}/metrics")
            assert status == 200 and kind.startswith("text/plain")
            fps = next(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith('privastead_hub_camera_fps{camera="porch"}')
            )
            return text if fps > 0 else None

        text = _until(measured, 60)
        assert text is not None, "the camera's fps never became positive"
        assert 'privastead_hub_camera_connected{camera="porch"} 1' in text
        assert "# TYPE privastead_hub_camera_reconnects_total counter" in text

        def recorded() -> str | None:
            text = _get(f"{base}/metrics")[2]
            done = 'privastead_hub_continuous_segments_total{camera="porch"} 0' not in text
            return text if done and "privastead_hub_disk_free_bytes" in text else None

        text = _until(recorded, 60)
        assert text is not None, (tmp_path / "hub.log").read_text()[-3000:]
        assert 'privastead_hub_continuous_recording{camera="porch"} 1' in text
        states = [x for x in text.splitlines() if x.startswith("privastead_hub_disk_state{")]
        assert len(states) == 3 and sum(float(x.split()[-1]) for x in states) == 1, states
        disk = json.loads(_get(f"{base}/health")[2])["disk"]
        assert disk["state"] in ("ok", "low") and disk["free"] > 0  # this machine's disk

        # Bad requests: JSON errors, never a 500 or an HTML page.
        for url, method, code in (
            (f"{base}/nothing", "GET", 404),
            (f"{base}/metrics", "POST", 405),
            (f"{base}/health", "DELETE", 405),
        ):
            status, kind, body = _get(url, method)
            assert status == code and kind.startswith("application/json"), (url, body)
            assert "error" in json.loads(body)

        cam.stop()  # the camera dies: health says so (the hub keeps running)

        def degraded() -> dict[str, Any] | None:
            status, _kind, body = _get(f"{base}/health")
            return json.loads(body) if status == 503 else None

        report = _until(degraded, 60)
        assert report is not None and report["status"] == "degraded"
        assert report["cameras"]["porch"]["connected"] is False
        status, kind, text = _get(f"{base}/metrics")
        assert 'privastead_hub_camera_connected{camera="porch"} 0' in text
        assert hub.poll() is None
    finally:
        cam.stop()
        hub.send_signal(signal.SIGTERM)
        hub.wait(60)
        log.close()


def test_metrics_are_off_by_default_and_listen_only_locally() -> None:
    camera = '[[cameras]]\nname = "door"\nurl = "rtsp://10.0.0.2/main"\n'
    assert hubconfig.parse(camera).metrics.enabled is False
    for listen in ("192.168.1.5:9814", "[::1]:9100", "localhost:9814"):
        parsed = hubconfig.parse(f'{camera}\n[metrics]\nenabled = true\nlisten = "{listen}"\n')
        assert parsed.metrics.enabled
    for listen, why in (
        ("0.0.0.0:9814", "not a loopback or private address"),
        ("8.8.8.8:9814", "not a loopback or private address"),
        ("127.0.0.1", "must be HOST:PORT"),
        ("127.0.0.1:70000", "must be HOST:PORT"),
        ("example.org:9814", "is not an IP address"),
    ):
        text = f'{camera}\n[metrics]\nenabled = true\nlisten = "{listen}"\n'
        with pytest.raises(ConfigError, match=why) as err:
            hubconfig.parse(text)
        assert "<hub.toml>:5" in str(err.value)  # the line of the [metrics] table


def test_an_old_hub_name_line_is_refused_with_what_to_do() -> None:
    text = '[relay]\nhub_name = "home"\n\n[[cameras]]\nname = "door"\nurl = "rtsp://10.0.0.2/m"\n'
    with pytest.raises(ConfigError, match=r"relay\.hub_name: no longer a setting") as err:
        hubconfig.parse(text)
    assert "<hub.toml>:2" in str(err.value) and "delete the line" in str(err.value)
