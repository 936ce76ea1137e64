"""kill -9 of a client while it stores a clip; the relay redelivers what was not acknowledged."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.client.clipstore import ClipStore

sys.path.insert(0, str(Path(__file__).parent))
from clipstore_crash_child import CLIP, LAST, fragment

from support.kill import kill_after_progress

CHILD = Path(__file__).with_name("clipstore_crash_child.py")


def run(root: Path, order: list[int], kill_after: float | None) -> set[int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, str(CHILD), str(root), ",".join(map(str, order))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
    if kill_after is not None:
        out = kill_after_progress(proc, 2, kill_after)
    else:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
    return {int(line) for line in out.decode().split()}


@pytest.mark.slow
def test_every_fragment_acknowledged_survives_and_the_clip_is_exact(tmp_path: Path) -> None:
    rng = random.Random(99)
    acked: set[int] = set()
    for _ in range(4):
        # The relay redelivers everything not yet acknowledged, in a shuffled order, plus a
        # few duplicates of acknowledged ones.
        todo = [i for i in range(LAST + 1) if i not in acked]
        todo += rng.sample(sorted(acked), min(3, len(acked)))
        rng.shuffle(todo)
        acked |= run(tmp_path, todo, rng.uniform(0.0, 0.3))
        store = ClipStore(tmp_path)  # recovery on open must leave a consistent store
        assert not list((tmp_path / "partial").glob("*.tmp"))
        for clip in store.incomplete():
            assert clip.event_id in (None, "e" * 32)
    todo = [i for i in range(LAST + 1) if i not in acked]
    rng.shuffle(todo)
    run(tmp_path, todo, None)
    expected = b"".join(fragment(i).data for i in range(LAST + 1))
    assert ClipStore(tmp_path).clip_path(CLIP).read_bytes() == expected
