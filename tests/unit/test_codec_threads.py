"""FFmpeg's worker threads run at background priority; the thread that feeds them does not."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import av
import pytest

from privastead.camsim.scene import make_scene
from privastead.camsim.suite import encode_scene
from privastead.media.codec_threads import BACKGROUND_NICE, open_in_background
from privastead.media.decode import LumaDecoder

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def _threads() -> dict[int, str]:
    tasks = Path("/proc/self/task")
    out = {}
    for task in tasks.iterdir():
        try:
            out[int(task.name)] = (task / "comm").read_text().strip()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return out


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@linux_only
def test_worker_threads_are_lowered_and_the_caller_is_not() -> None:
    me = threading.get_native_id()
    mine = _nice(me)
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_type = "AUTO"
    ctx.thread_count = 3
    before = set(_threads())
    open_in_background(ctx)
    # Every thread that appeared is FFmpeg's (the opener has ended). Not picked by name: a
    # worker names itself ("av:h264:df...") once it runs, which may be after this reads.
    workers = [tid for tid in _threads() if tid not in before]
    assert workers, "no FFmpeg worker thread appeared"
    base = _nice(os.getpid())
    for tid in workers:
        assert _nice(tid) == min(19, base + BACKGROUND_NICE)
    assert _nice(me) == mine  # the Python thread keeps its priority (no GIL inversion)


@linux_only
def test_the_hubs_decoder_opens_its_contexts_that_way(tmp_path: Path) -> None:
    scene = make_scene("demo", width=160, height=96, fps=10, seed=0, duration=2)
    clip = encode_scene(scene, tmp_path / "demo.mp4", gop_seconds=1.0)
    before = set(_threads())
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        decoder = LumaDecoder(stream, mode="full")
        frames = sum(len(decoder.decode(p)) for p in container.demux(stream))
    assert frames > 0
    lowered = [
        tid
        for tid, name in _threads().items()
        if tid not in before and name.startswith("av:h264") and _nice(tid) > _nice(os.getpid())
    ]
    assert lowered


def test_an_open_that_fails_raises_in_the_caller() -> None:
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_type = "AUTO"
    ctx.open()
    with pytest.raises(ValueError, match="already open"):  # PyAV refuses a second open
        open_in_background(ctx)
