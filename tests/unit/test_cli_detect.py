"""`privastead-hub detect` prints the events of a file, as JSON with --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from privastead.camsim.scene import make_scene
from privastead.camsim.suite import encode_scene
from privastead.cli.hub import main
from privastead.media.detector import STARTUP_SECONDS
from support.clips import DEMO_ENTERS, demo_clip

#: The demo's person enters after the detector's start-up, walks for about 7 s.
ENTERS = DEMO_ENTERS + STARTUP_SECONDS
SECONDS = ENTERS + 11.5


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "demo.mp4"
    return demo_clip(path, width=640, height=360, duration=SECONDS, delay=STARTUP_SECONDS)


def test_json_lines(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(demo), "--json", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert set(event) == {"start", "end", "peak_score", "boxes"}
    assert ENTERS - 0.5 < event["start"] < ENTERS + 1.5
    assert ENTERS + 5.5 < event["end"] < ENTERS + 8.5
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


@pytest.fixture(scope="module")
def lamp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scene = make_scene("lamp", width=640, height=360, fps=10, seed=0, duration=16)
    return encode_scene(scene, tmp_path_factory.mktemp("v") / "lamp.mp4")


def test_explain_says_why_an_event_started(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(demo), "--explain", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1  # the events stay on stdout, alone
    log = captured.err
    start = log.index("EVENT START")
    # Before the event: the quiet start, then the blob that became the event and why it did
    # not count at once.
    before = log[:start]
    assert "nothing object-sized" in before
    assert "cells over threshold" in before
    assert "not coherent" in before or "not moving yet" in before
    assert "object (new)" in before
    assert "EVENT END" in log[start:]
    assert "chronic motion" in log.splitlines()[-1]


def test_explain_says_when_the_start_up_ends(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(demo), "--explain", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    over = next(i for i, line in enumerate(lines) if "start-up over" in line)
    # Learning lasts the start-up, and it ends with it, not at the first frame looked at again.
    learning = lines[over - 1].split()
    assert lines[over - 1].split(":")[1].strip() == "settling"
    assert float(learning[0]) == 0.0
    assert STARTUP_SECONDS - 0.25 <= float(learning[3]) <= STARTUP_SECONDS
    assert float(lines[over].split()[0]) == float(learning[3])
    assert "frames from 0." in lines[over]


def test_explain_in_idle_mode_shows_the_rewind(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(demo), "--explain", "--mode", "keyframes", "--quiet"]) == 0
    log = capsys.readouterr().out
    rewind = log.index("rewinding to")
    assert rewind < log.index("EVENT START")


def test_explain_shows_light_taken_for_light(
    lamp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(lamp), "--explain", "--quiet"]) == 0
    log = capsys.readouterr().out
    assert "EVENT START" not in log
    # The lamp's step is explained away, in words an owner can act on.
    assert "light changed over the whole view" in log or "global change" in log


def test_debug_video_paints_what_the_detector_saw(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "debug.mp4"
    assert main(["detect", str(demo), "--debug-video", str(out), "--quiet"]) == 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    # one picture per analysed frame (10 fps)
    assert 10 * SECONDS - 10 <= len(frames) <= 10 * SECONDS + 1
    height = frames[0].shape[0] * 2 // 3
    width = frames[0].shape[1]

    # (the video is lossy: painted levels come back within a few steps)
    def red(f: np.ndarray) -> bool:  # cells over threshold: V (Cr) painted at 210
        v = f[height + height // 4 :]
        return int((v > 190).sum()) >= 4

    def event_border(f: np.ndarray) -> bool:  # a white frame border while an event runs
        return float(f[:2, :width].mean()) > 235

    during = [i for i, f in enumerate(frames) if event_border(f)]
    assert during, "no picture shows the running event"
    # The event (motion for about 7 s from ENTERS, then post-roll past the end of the file) is
    # painted from the frame that started it on, without a gap; the quiet start is not.
    assert 10 * ENTERS - 5 <= during[0] <= 10 * ENTERS + 15
    assert during[-1] >= 10 * (ENTERS + 7)
    assert during == list(range(during[0], during[-1] + 1))
    assert any(red(frames[i]) for i in during)
    assert not any(event_border(f) for f in frames[: int(10 * ENTERS) - 15])


def test_explain_into_a_closed_pipe_is_no_error(demo: Path) -> None:
    # ``detect --explain | head``: a real process whose reader goes away after one line.
    with subprocess.Popen(
        [sys.executable, "-m", "privastead.cli.hub", "detect", str(demo), "--explain", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait() == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
