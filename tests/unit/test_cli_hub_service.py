"""`privastead-hub service` writes a systemd unit that systemd accepts and that starts this hub.

systemd itself does not run here (no init in the test machine), so the unit is checked with
`systemd-analyze verify` (skipped where it is not installed) and its ExecStart is run for real
with `check-config` in place of `run`, through the same argv systemd would use.
"""

from __future__ import annotations

import getpass
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from privastead.cli.hub import main
from privastead.cli.hub.init import render


def _config(tmp_path: Path, data: Path, clips: Path | None = None) -> Path:
    path = tmp_path / "hub.toml"
    text = render([("door", "rtsp://127.0.0.1:8554/door")], data_dir=data)
    if clips is not None:
        text = text.replace("[hub]\n", f'[hub]\nclips_dir = "{clips}"\n', 1)
    path.write_text(text)
    return path


def _unit(tmp_path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> str:
    config = tmp_path / "hub.toml"
    assert main(["service", "--config", str(config), *extra]) == 0
    return capsys.readouterr().out


def _settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_confines_writes_to_the_hubs_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, clips = tmp_path / "data", tmp_path / "elsewhere" / "clips"
    data.mkdir()
    clips.mkdir(parents=True)
    _config(tmp_path, data, clips)
    s = _settings(_unit(tmp_path, capsys=capsys))
    assert s["User"] == [getpass.getuser()]
    assert s["ReadWritePaths"] == [f"{data} {clips}"]
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["UMask"] == ["0077"] and s["CapabilityBoundingSet"] == [""]
    assert "MemoryDenyWriteExecute" not in s  # Numba writes machine code at start
    assert any(v.startswith("NUMBA_CACHE_DIR=/var/cache/") for v in s["Environment"])
    assert s["Restart"] == ["always"]


def test_execstart_runs_this_installations_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "my data"  # a space: ExecStart and ReadWritePaths must quote it
    data.mkdir()
    config = _config(tmp_path, data)
    s = _settings(_unit(tmp_path, capsys=capsys))
    assert s["ReadWritePaths"] == [f'"{data}"']
    argv = shlex.split(s["ExecStart"][0])
    assert argv[-3:] == ["run", "--config", str(config)]
    # The same program and config, asked to validate instead of run.
    checked = subprocess.run(
        [*argv[:-3], "check-config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_systemd_accepts_the_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data 100%"  # a space and a systemd specifier sign
    data.mkdir()
    _config(tmp_path, data)
    unit = tmp_path / "privastead-hub.service"
    assert main(["service", "--config", str(tmp_path / "hub.toml"), "--out", str(unit)]) == 0
    assert "systemctl daemon-reload" in capsys.readouterr().err
    assert _settings(unit.read_text())["ReadWritePaths"] == [f'"{tmp_path}/data 100%%"']
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Warnings about the account (e.g. root) are fine; unknown settings or bad syntax are not.
    assert verified.returncode == 0, verified.stderr
    assert "Unknown" not in verified.stderr and "Invalid" not in verified.stderr, verified.stderr


def test_a_missing_data_dir_or_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, tmp_path / "not-yet")
    assert main(["service", "--config", str(tmp_path / "hub.toml")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "install -d -m 0700" in err
    assert main(["service", "--config", str(tmp_path / "none.toml")]) == 2
    assert "privastead-hub init" in capsys.readouterr().err
