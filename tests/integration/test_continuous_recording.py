"""Continuous recording with real processes: `privastead-hub run` reads a camsim camera (video
and AAC audio) with ``continuous = true`` and writes 2 s segments. Checked: every segment plays
alone in PyAV with video and audio, their durations add up to the time recorded (no gap at the
cuts), files are 0600 in 0700 directories, the index matches the files; a hub killed with
SIGKILL mid-segment leaves a ``.part`` that the next start finishes and indexes; a size limit
deletes the oldest segments first."""

from __future__ import annotations

import io
import itertools
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from privastead.ports import free_port
from support.procs import ROOT, camsim

pytestmark = pytest.mark.slow

SEGMENT = 2.0


def _config(path: Path, data: Path, url: str, extra: str = "") -> None:
    path.write_text(
        f'[hub]\ndata_dir = "{data}"\nstatus_interval = 0\n\n'
        f"[storage]\nsegment_seconds = {SEGMENT}\ncheck_interval = 1\nsweep_interval = 1\n"
        "min_free_gb = 0\nmin_free_percent = 0\nfull_below_mb = 0\n\n"
        f'[[cameras]]\nname = "porch"\nurl = "{url}"\ncontinuous = true\n{extra}'
    )


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "privastead.cli.hub", "run", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=out,
        )


def _rows(data: Path) -> list[tuple[float, float, str, int]]:
    db = data / "recordings" / "index.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT start, end, path, bytes FROM segments ORDER BY start")
        return [(float(a), float(b), str(c), int(d)) for a, b, c, d in rows]


def _wait(what, limit: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.25)
    return False


def _probe(path: Path) -> tuple[float, int, bool]:
    """(video seconds, video frames, has decodable audio) of one segment file."""
    with av.open(io.BytesIO(path.read_bytes())) as container:
        video = container.streams.video[0]
        audio = bool(container.streams.audio)
        frames = [f for f in container.decode(video=0)]
        span = float((frames[-1].pts - frames[0].pts) * video.time_base) if frames else 0.0
    if audio:
        with av.open(io.BytesIO(path.read_bytes())) as container:
            audio = any(True for _ in container.decode(audio=0))
    return span, len(frames), audio


def test_a_hub_records_continuously_survives_kill_and_keeps_within_its_size(
    tmp_path: Path,
) -> None:
    data, config, log = tmp_path / "data", tmp_path / "hub.toml", tmp_path / "hub.log"
    with camsim(free_port(), tmp_path / "cache", "--audio", "aac", fps=15, duration=4.0) as cam:
        _config(config, data, cam.urls[0])
        hub = _start(config, log)
        try:
            got = _wait(lambda: len(_rows(data)) >= 3)
            assert got, log.read_text()[-3000:]
            # SIGKILL while a segment is being written: the .part is what a crash leaves.
            assert _wait(lambda: any((data / "recordings" / "porch").glob("*/*.mp4.part")))
            time.sleep(SEGMENT / 2)
            hub.send_signal(signal.SIGKILL)
            hub.wait(30)
        finally:
            if hub.poll() is None:
                hub.kill()
        parts = list((data / "recordings" / "porch").glob("*/*.mp4.part"))
        assert len(parts) == 1, parts
        before = {r[2] for r in _rows(data)}
        # 1. Restart: the .part is finished and indexed before recording goes on.
        hub = _start(config, log)
        try:
            assert _wait(lambda: len(_rows(data)) >= len(before) + 3), log.read_text()[-3000:]
        finally:
            hub.send_signal(signal.SIGTERM)
            assert hub.wait(60) == 0, log.read_text()[-3000:]
        recovered = parts[0].with_name(parts[0].name.removesuffix(".part"))
        assert recovered.exists() and not parts[0].exists()
        rows = _rows(data)
        assert str(recovered.relative_to(data / "recordings")) in {r[2] for r in rows}

        # Every segment plays alone, with audio; frames and durations match the index.
        root = data / "recordings"
        files = sorted(root.glob("porch/*/*.mp4"))
        assert {str(f.relative_to(root)) for f in files} == {r[2] for r in rows}
        assert not list(root.glob("porch/*/*.part"))
        for start, end, rel, size in rows:
            path = root / rel
            assert path.stat().st_size == size
            span, frames, audio = _probe(path)
            assert frames > 0 and audio, rel
            assert abs(span + 1 / 15 - (end - start)) < 0.2, (rel, span, end - start)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for directory in (root, root / "porch"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((root / "index.sqlite").stat().st_mode) == 0o600
        # Within one run the segments follow each other: their durations add up.
        # (the segments of the second run: neither indexed before the kill nor recovered)
        crashed = str(recovered.relative_to(root))
        second = [r for r in rows if r[2] not in before and r[2] != crashed]
        assert len(second) >= 3
        for (_, end, _, _), (start, _, _, _) in itertools.pairwise(second):
            assert abs(start - end) < 0.25, second
        covered = second[-1][1] - second[0][0]
        assert abs(sum(e - s for s, e, _, _ in second) - covered) < 0.25 * len(second)
        assert all(SEGMENT - 0.1 <= e - s <= SEGMENT + 1.1 for s, e, _, _ in second[:-1])

        # 2. A size limit: the oldest segments go first, the newest stay.
        total = sum(r[3] for r in rows)
        keep_gb = (total * 0.5) / 1e9
        _config(config, data, cam.urls[0], f"recording_gb = {keep_gb:.9f}\n")
        oldest = rows[0][2]
        hub = _start(config, log)
        try:
            assert _wait(lambda: oldest not in {r[2] for r in _rows(data)}), log.read_text()[-3000:]
            kept = _rows(data)
            assert sum(r[3] for r in kept) <= keep_gb * 1e9 + max(r[3] for r in kept)
        finally:
            hub.send_signal(signal.SIGTERM)
            assert hub.wait(60) == 0, log.read_text()[-3000:]
    remaining = _rows(data)
    gone = [r for r in rows if r[2] not in {k[2] for k in remaining}]
    assert gone and not (root / gone[0][2]).exists()
    # what went is a prefix of the old recording, oldest first
    assert [r[2] for r in rows[: len(gone)]] == [r[2] for r in gone]
    assert "retention:" in log.read_text()
