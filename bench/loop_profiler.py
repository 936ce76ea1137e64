"""Run ``privastead-hub`` with a profiler that explains each late tick of its event loop.

    python bench/loop_profiler.py REPORT.json -- run --config hub.toml

``bench_hub_loop.py --profile DIR`` starts the hub of its full phase this way. Two parts, both
in the hub's process:

- **a sampler thread** (every ``--interval``, 1 ms) records the event-loop thread's Python
  stack (``sys._current_frames``) and how late the sampler itself woke up. The sampler needs
  the GIL to look, so a gap in its samples means that some thread held the GIL (or the OS ran
  none of the hub's threads): the report names the threads that were running Python at the
  end of each such gap;
- **the hub's own lag probe** (``hub.admin.loop_lag.LoopLag``) is wrapped so every late tick
  (over ``--stall-ms``, 10 ms) is kept with its time window.

At exit the report attributes every stall to what the loop thread was doing meanwhile: the
outermost frame of the hub's callback (``busy: <function>``), or ``idle`` (the loop was in its
poller: it waited for the GIL or for a core when it woke), and lists the CPU seconds of each
thread group (``/proc/self/task/*/stat``: ingest, analysis, group workers, the loop, ...).
It measures; it changes nothing in the hub.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

MAIN = threading.main_thread()


# Frames of the loop's driver (runners, the loop, the CLI that started it), not of a callback.
LOOP_FRAMES = re.compile(r"(/asyncio/|/uvloop/|/runpy\.py$|/privastead/cli/|loop_profiler\.py$)")


def _where(frame: FrameType | None) -> tuple[str, str]:
    """(outermost frame of the running callback or ``idle``, the innermost frame)."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()  # outermost first
    callback = "idle"
    for f in frames:
        # The loop's own frames (runners, the CLI, the loop driver) are not a callback.
        if LOOP_FRAMES.search(f.f_code.co_filename):
            continue  # uvloop polls in C below the last of these: no frame means idle
        callback = f"{Path(f.f_code.co_filename).name}:{f.f_code.co_name}"
        break
    leaf = frames[-1] if frames else None
    if leaf is None:
        return callback, ""
    return callback, f"{Path(leaf.f_code.co_filename).name}:{leaf.f_code.co_name}:{leaf.f_lineno}"


def _run_delay(tid: int) -> float:
    """Seconds thread ``tid`` spent runnable but not running (0.0 where unknown)."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _group(name: str) -> str:
    return re.sub(r"[-_]?\d+$", "", re.sub(r"-cam\d+.*$", "", name)) or name


class Profiler:
    def __init__(self, out: Path, interval: float = 0.001, stall: float = 0.010) -> None:
        self.out, self.interval, self.stall = out, interval, stall
        self.samples: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=400_000)
        self.gaps: list[tuple[float, float, list[str]]] = []
        self.stalls: list[tuple[float, float, float]] = []  # start, end, seconds preempted
        self._run_delay = 0.0
        self._thread_cpu: dict[int, tuple[str, float]] = {}  # tid -> (group, CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="loop-profiler", daemon=True)

    def start(self) -> None:
        from privastead.hub.admin import loop_lag

        original = loop_lag.LoopLag.add
        profiler = self

        def add(lag_probe: Any, lag: float) -> None:
            # The loop thread's time runnable but not running (no core): the kernel's account.
            delay = _run_delay(threading.get_native_id())
            preempted, profiler._run_delay = delay - profiler._run_delay, delay
            if lag >= profiler.stall:
                end = time.perf_counter()
                profiler.stalls.append((end - lag, end, min(lag, preempted)))
            original(lag_probe, lag)

        loop_lag.LoopLag.add = add  # type: ignore[method-assign]
        self._thread.start()
        atexit.register(self.write)

    def _sample(self) -> None:
        ident = MAIN.ident
        names = {}
        last = time.perf_counter()
        ticks = 0
        while not self._stop.is_set():
            ticks += 1
            if ticks % 1000 == 0:
                self._note_cpu()
            time.sleep(self.interval)
            now = time.perf_counter()
            frames = sys._current_frames()
            frame = frames.get(ident) if ident is not None else None
            callback, detail = _where(frame)
            self.samples.append((now, callback, detail))
            if now - last > 5 * self.interval:
                # Someone held the GIL (or no core was free): who runs Python code now?
                if len(names) != threading.active_count():
                    names = {t.ident: t.name for t in threading.enumerate()}
                busy = []
                for tid, f in frames.items():
                    if tid == threading.get_ident() or f is None:
                        continue
                    busy.append(f"{_group(names.get(tid, '?'))} {_where(f)[1]}")
                self.gaps.append((last, now, busy))
            last = now

    def _note_cpu(self) -> None:
        """Each live thread's CPU seconds so far (threads that ended keep their last value)."""
        names = {t.native_id: t.name for t in threading.enumerate()}
        hz = os.sysconf("SC_CLK_TCK")
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (task / "comm").read_text().strip()
            except OSError:
                continue
            tid = int(task.name)
            name = _group(names.get(tid, comm))
            self._thread_cpu[tid] = (name, (int(fields[11]) + int(fields[12])) / hz)

    def write(self) -> None:
        self._stop.set()
        self._note_cpu()
        by_callback: collections.Counter[str] = collections.Counter()
        by_detail: collections.Counter[str] = collections.Counter()
        stall_time: collections.Counter[str] = collections.Counter()
        gap_threads: collections.Counter[str] = collections.Counter()
        samples = list(self.samples)
        times = [s[0] for s in samples]
        import bisect

        preempted: collections.Counter[str] = collections.Counter()
        for start, end, lost in self.stalls:
            i, j = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            window = samples[i:j]
            if not window:
                by_callback["no sample (GIL held elsewhere or no core)"] += 1
                stall_time["no sample (GIL held elsewhere or no core)"] += end - start
                preempted["no sample (GIL held elsewhere or no core)"] += lost
                continue
            kinds = collections.Counter(s[1] for s in window)
            top = kinds.most_common(1)[0][0]
            by_callback[top] += 1
            stall_time[top] += end - start
            preempted[top] += lost
            for s in window:
                if s[1] != "idle":
                    by_detail[s[2]] += 1
        for _start, _end, busy in self.gaps:
            for b in busy:
                gap_threads[b] += 1
        cpu: collections.Counter[str] = collections.Counter()
        for name, seconds in self._thread_cpu.values():
            cpu[name] += seconds
        report = {
            "stalls": len(self.stalls),
            "stall_seconds": round(sum(e - s for s, e, _ in self.stalls), 3),
            "stalls_by_loop_state": dict(by_callback.most_common()),
            "stall_ms_by_loop_state": {k: round(v * 1000) for k, v in stall_time.most_common()},
            # Of that, the loop thread waited for a core (schedstat run_delay); the rest it
            # ran, or waited for the GIL or a lock.
            "stall_ms_preempted_by_loop_state": {
                k: round(v * 1000) for k, v in preempted.most_common()
            },
            "busy_loop_frames_in_stalls": dict(by_detail.most_common(25)),
            "sampler_gaps": len(self.gaps),
            "sampler_gap_ms_total": round(sum(e - s for s, e, _ in self.gaps) * 1000),
            "threads_in_python_after_gaps": dict(gap_threads.most_common(25)),
            "cpu_seconds_by_thread": {k: round(v, 2) for k, v in cpu.most_common()},
        }
        self.out.write_text(json.dumps(report, indent=1))


def main() -> None:
    out = Path(sys.argv[1])
    args = sys.argv[sys.argv.index("--") + 1 :]
    Profiler(out).start()
    from privastead.cli.hub import main as hub_main

    sys.argv = ["privastead-hub", *args]
    sys.exit(hub_main())


if __name__ == "__main__":
    main()
