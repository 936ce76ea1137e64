"""`privastead-hub discover` against camsim acting as ONVIF cameras, all real processes.

WS-Discovery probes go unicast to each camsim's UDP port on loopback: multicast on loopback is
not available in every sandbox or CI container, and the unicast path (``--probe``) is the same
code with another destination. The blocks discover prints must be ready to use: they load as
hub.toml, and the hub's ingest reads the camera through them with the password from the file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from privastead.hub import config as hubconfig
from privastead.media.ingest import Ingest, IngestEvent, MediaPacket
from privastead.ports import free_port
from support.procs import ROOT, Proc, camsim

SECRET = "onvif-Secret-42"


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _onvif_camsim(cache: Path, secret: Path, probe_port: int, name_seed: int = 0) -> Proc:
    return camsim(
        free_port(),
        cache,
        "--sub",
        "320x180",
        "--user",
        "admin",
        "--password-file",
        str(secret),
        "--onvif-port",
        "0",
        "--onvif-discovery",
        f"127.0.0.1:{probe_port}",
        "--seed",
        str(name_seed),
        size="640x360",
    )


@pytest.fixture(scope="module")
def cameras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[int]]]:
    """Two ONVIF camsims with the same login; (password file, their discovery ports)."""
    root = tmp_path_factory.mktemp("onvif")
    secret = root / "cams.pass"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    ports = [_udp_port(), _udp_port()]
    procs = [_onvif_camsim(root / "cache", secret, port, i) for i, port in enumerate(ports)]
    for proc in procs:
        proc.start()
    try:
        yield secret, ports
    finally:
        for proc in procs:
            proc.stop()


def _discover(
    *args: str, env: dict[str, str] | None = None, wait: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run ``discover``; it returns as soon as every probed camera answered, so a generous
    ``wait`` costs nothing when they do and keeps a loaded machine from losing an answer."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = str(ROOT / "src")
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "privastead.cli.hub", "discover", "--timeout", f"{wait:g}", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def _probes(ports: list[int]) -> list[str]:
    return [a for port in ports for a in ("--probe", f"127.0.0.1:{port}")]


def test_discover_prints_ready_blocks_the_hub_can_read(
    cameras: tuple[Path, list[int]], tmp_path: Path
) -> None:
    secret, ports = cameras
    result = _discover(*_probes(ports), "--user", "admin", "--password-file", str(secret))
    assert result.returncode == 0, result.stderr
    assert "2 ONVIF camera(s) answered" in result.stderr
    config = hubconfig.parse("[hub]\n" + result.stdout)
    assert sorted(c.name for c in config.cameras) == ["camsim", "camsim-2"]
    for camera in config.cameras:
        assert camera.url.endswith("/main") and camera.substream_url is not None
        assert camera.substream_url.endswith("/sub")  # 320x180: detection on the small one
        assert camera.username == "admin" and camera.password_file == secret.resolve()
        assert camera.password() == SECRET
    assert SECRET not in result.stdout + result.stderr
    # The block is ready: the hub's ingest reads the main stream with it.
    events: list[IngestEvent] = []
    camera = config.cameras[0]
    ingest = Ingest(camera.with_credentials(camera.url), events.append, name=camera.name)
    ingest.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(isinstance(e, MediaPacket) for e in events) < 10:
        time.sleep(0.05)
    ingest.stop()
    assert sum(isinstance(e, MediaPacket) for e in events) >= 10, ingest.health()


def test_append_adds_new_cameras_once_and_keeps_the_file_valid(
    cameras: tuple[Path, list[int]], tmp_path: Path
) -> None:
    _, ports = cameras
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(
        '[hub]\ndata_dir = "/tmp/x"\n\n[[cameras]]\nname = "camsim"\nurl = "rtsp://10.0.0.9/s"\n'
    )
    hub_toml.chmod(0o640)
    args = [*_probes(ports), "--user", "admin", "--password-env", "CAMS_PW", "--append"]
    first = _discover(*args, "--config", str(hub_toml), env={"CAMS_PW": SECRET})
    assert first.returncode == 0, first.stderr
    assert "appended 2 camera(s)" in first.stderr
    config = hubconfig.load(hub_toml)
    names = [c.name for c in config.cameras]
    assert names[0] == "camsim" and len(set(names)) == 3  # the existing name is not reused
    assert all(c.password_env == "CAMS_PW" for c in config.cameras[1:])
    assert hub_toml.stat().st_mode & 0o777 == 0o640
    before = hub_toml.read_text()
    again = _discover(*args, "--config", str(hub_toml), env={"CAMS_PW": SECRET})
    assert again.returncode == 0 and "already in the config" in again.stderr
    assert hub_toml.read_text() == before


def test_a_wrong_password_says_so_and_writes_nothing(
    cameras: tuple[Path, list[int]], tmp_path: Path
) -> None:
    _, ports = cameras
    hub_toml = tmp_path / "hub.toml"
    result = _discover(
        *_probes(ports[:1]),
        "--user",
        "admin",
        "--password-env",
        "CAMS_PW",
        "--append",
        "--config",
        str(hub_toml),
        env={"CAMS_PW": "wrong-" + SECRET},
    )
    assert result.returncode == 1
    assert "refused the login" in result.stderr
    assert not hub_toml.exists()
    assert SECRET not in result.stderr + result.stdout


def test_nobody_answering_is_explained() -> None:
    result = _discover("--probe", f"127.0.0.1:{_udp_port()}", wait=1.5)
    assert result.returncode == 1
    assert "no camera answered" in result.stderr and "--probe" in result.stderr
