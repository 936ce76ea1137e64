"""`privastead-hub detect` prints the events of a file, as JSON with --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privastead.camsim.scene import make_scene
from privastead.camsim.suite import encode_scene
from privastead.cli.hub import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scene = make_scene("demo", width=640, height=360, fps=10, seed=0, duration=16)
    return encode_scene(scene, tmp_path_factory.mktemp("v") / "demo.mp4")


def test_json_lines(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(demo), "--json", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert set(event) == {"start", "end", "peak_score", "boxes"}
    assert 4.0 < event["start"] < 6.0 and 10.0 < event["end"] < 13.0
    assert event["peak_score"] > 0 and len(event["boxes"][0]) == 4


def test_keyframes_mode_and_human_output(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(demo), "--mode", "keyframes", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "score" in out and len(out.splitlines()) == 1


def test_errors_say_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "missing.mp4")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "missing.mp4"), "--sensitivity", "3"]) == 2
    assert "sensitivity" in capsys.readouterr().err
    config = tmp_path / "hub.toml"
    config.write_text('[[cameras]]\nname = "door"\n[cameras.detection]\nsensitivty = 0.5\n')
    assert main(["detect", str(tmp_path / "x.mp4"), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "sensitivty" in err and "unknown key" in err
