"""Hub CPU per camera with encryption and upload on, for ``bench_e2e.py``.

Three configurations read the same camsim stream (a scene encoded once and cached, so camsim
only loops a file: its own CPU is measured and reported apart, never counted):

  decode-only     PyAV ingest + decode of every frame, discarded (bench_hub's baseline)
  hub local       `privastead-hub run` without [relay]: detection + local recording only
  hub + relay     the same hub with [relay]: MLS encryption of every fragment, durable outbox,
                  upload to a real relay, one `privastead-app listen` client downloading

Each hub is a separate process; psutil samples its CPU time (all threads) every 0.5 s, and
each interval is attributed to *motion* when the hub is busy with a clip at both of its ends
(recording it: a ``.mp4.part`` exists in its clips directory, or still uploading it: its
outbox holds messages) and to *idle* when at neither. Intervals where
the state changes count only in "all". CPU-seconds per stream-second = CPU / wall time of the
phase (the stream is live: the hub reads it in real time). The hub's main thread (its asyncio
loop: muxing, delivery, MLS encryption, outbox, uploads) is also sampled on its own: its
difference between the two hub configurations is the cost of encryption + upload, without the
decoder's larger and noisier share (ingest, decoding and detection run in other threads).
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from e2e_harness import Home, app_cmd, env, hub_cmd  # noqa: E402

from bench_hub import run_decode_only  # noqa: E402

INTERVAL = 0.5


@dataclass
class Usage:
    """CPU seconds and wall seconds per phase for one process."""

    cpu: dict[str, float] = field(default_factory=lambda: {"motion": 0.0, "idle": 0.0, "all": 0.0})
    wall: dict[str, float] = field(default_factory=lambda: {"motion": 0.0, "idle": 0.0, "all": 0.0})

    def rate(self, phase: str) -> float:
        wall = self.wall[phase]
        return self.cpu[phase] / wall if wall > 0 else float("nan")


def _cpu(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def _loop_thread(proc: psutil.Process) -> Callable[[], float]:
    """CPU of the hub's main thread: its asyncio loop runs muxing, delivery (envelopes, MLS
    encryption, outbox writes), uploads and the control reader; decoding, detection and ingest
    run in other threads. Comparing it between configurations isolates encryption + upload from
    the decoder's much larger (and noisier) share."""

    def read() -> float:
        try:
            for thread in proc.threads():
                if thread.id == proc.pid:
                    return float(thread.user_time + thread.system_time)
        except psutil.Error:
            pass
        return 0.0

    return read


def sample(
    procs: dict[str, Callable[[], float]], recording: Callable[[], bool], seconds: float
) -> dict[str, Usage]:
    """Sample every CPU reading for ``seconds``, split by the hub's recording state."""
    usage = {name: Usage() for name in procs}
    last_cpu = {name: read() for name, read in procs.items()}
    last_rec, last_t = recording(), time.monotonic()
    end = last_t + seconds
    while (now := time.monotonic()) < end:
        time.sleep(INTERVAL)
        now = time.monotonic()
        rec = recording()
        wall = now - last_t
        phases = ["all"] + ([("motion" if rec else "idle")] if rec == last_rec else [])
        for name, read in procs.items():
            cpu = read()
            for phase in phases:
                usage[name].cpu[phase] += cpu - last_cpu[name]
                usage[name].wall[phase] += wall
            last_cpu[name] = cpu
        last_rec, last_t = rec, now
    return usage


def _local_config(home: Home) -> Path:
    """The home's hub.toml without [relay], on its own data directory."""
    text = home.config.read_text()
    text = re.sub(r"\[relay\]\n(?:[^\[\n][^\n]*\n|\n)*", "", text)
    text = text.replace(str(home.data), str(home.root / "hub-local"))
    path = home.root / "hub-local.toml"
    path.write_text(text)
    return path


def _start(cmd: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return subprocess.Popen(cmd, env=env(), stdout=out, stderr=out, text=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _busy(data: Path) -> Callable[[], bool]:
    """Recording a clip, or still uploading one (its ciphertext queued in the outbox)."""
    clips, outbox = data / "clips", data / "outbox"
    return lambda: any(clips.glob("*/*.mp4.part")) or any(outbox.glob("*/*.msg"))


def _wait_connected(log: Path, proc: subprocess.Popen[str], limit: float = 60) -> None:
    """Until the hub's camera delivers packets (first status line says connected)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the hub exited: " + log.read_text()[-2000:])
        if "connected" in log.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError("the hub did not connect: " + log.read_text()[-2000:])


@dataclass
class CpuResult:
    rows: list[dict[str, object]]
    others: dict[str, dict[str, float]]  # process -> phase -> cpu/stream-s (not counted)


def measure(home: Home, client: Path, camsim_pid: int, url: str, seconds: float) -> CpuResult:
    camsim = psutil.Process(camsim_pid)
    rows: list[dict[str, object]] = []
    others: dict[str, dict[str, float]] = {}

    cam0 = _cpu(camsim)
    cpu, stream, _frames = run_decode_only(url, seconds)
    cam_rate = (_cpu(camsim) - cam0) / seconds
    rows.append(
        {
            "config": "decode-only (PyAV)",
            "all": round(cpu / stream, 4) if stream > 0 else None,
            "motion": None,
            "idle": None,
            "decoded_share": round(stream / seconds, 3),
        }
    )
    others["camsim during decode-only"] = {"all": round(cam_rate, 4)}

    local = _local_config(home)
    status = ("--log-level", "INFO")
    for name, config, with_client in (
        ("hub, local recording only", local, False),
        ("hub + encryption + upload", home.config, True),
    ):
        log = home.root / f"{name.split(',')[0].replace(' ', '-')}-{int(with_client)}.log"
        text = config.read_text().replace("status_interval = 0", "status_interval = 1")
        config.write_text(text)
        data = Path(re.search(r'data_dir = "([^"]+)"', text).group(1))  # type: ignore[union-attr]
        hub = _start(hub_cmd(*status, "run", "--config", str(config)), log)
        listener = None
        if with_client:
            listener = _start(
                app_cmd("listen", "--poll", "1", "--data-dir", str(client)),
                home.root / "listen.log",
            )
        try:
            _wait_connected(log, hub)
            time.sleep(2.0)  # warm-up: decoder threads, Numba kernels loaded
            hub_proc = psutil.Process(hub.pid)
            procs = {
                "hub": functools.partial(_cpu, hub_proc),
                "hub loop thread": _loop_thread(hub_proc),
                "camsim": functools.partial(_cpu, camsim),
            }
            if listener is not None:
                procs["client"] = functools.partial(_cpu, psutil.Process(listener.pid))
                assert home.relay.proc is not None
                procs["relay"] = functools.partial(_cpu, psutil.Process(home.relay.proc.pid))
            usage = sample(procs, _busy(data), seconds)
        finally:
            _stop(hub)
            if listener is not None:
                _stop(listener)
        hub_usage = usage["hub"]
        rows.append(
            {
                "config": name,
                "loop_thread": round(usage["hub loop thread"].rate("all"), 4),
                "all": round(hub_usage.rate("all"), 4),
                "motion": round(hub_usage.rate("motion"), 4),
                "idle": round(hub_usage.rate("idle"), 4),
                "motion_s": round(hub_usage.wall["motion"], 1),
                "idle_s": round(hub_usage.wall["idle"], 1),
                "clips": len(list((data / "clips").glob("*/*.json"))),
            }
        )
        for proc_name, u in usage.items():
            if proc_name not in ("hub", "hub loop thread"):
                others[f"{proc_name} during {name}"] = {
                    p: round(u.rate(p), 4) for p in ("all", "motion", "idle")
                }
    return CpuResult(rows, others)


def print_table(result: CpuResult, label: str) -> None:
    rows = result.rows
    base = rows[0]["all"]
    local = rows[1]
    print(f"\nhub CPU-seconds per stream-second, {label}\n")
    print(
        f"{'config':<28} {'all':>7} {'motion':>7} {'idle':>7} {'x decode':>9} "
        f"{'loop thr':>8} {'motion s':>9} {'idle s':>7} {'clips':>6}"
    )
    for r in rows:
        ratio = (
            float(r["all"]) / float(base)  # type: ignore[arg-type]
            if isinstance(r["all"], float) and isinstance(base, float) and base
            else float("nan")
        )
        print(
            f"{r['config']:<28} {_f(r['all'])} {_f(r['motion'])} {_f(r['idle'])} "
            f"{ratio:>9.2f} {_f(r.get('loop_thread')):>8} "
            f"{r.get('motion_s', '-')!s:>9} {r.get('idle_s', '-')!s:>7} "
            f"{r.get('clips', '-')!s:>6}"
        )
    relay = rows[2]
    for phase in ("loop_thread", "all", "motion", "idle"):
        a, b = relay[phase], local[phase]
        if isinstance(a, float) and isinstance(b, float):
            what = "hub loop thread" if phase == "loop_thread" else f"hub process, {phase}"
            print(f"encryption + upload: {what:<22} {a - b:+.4f} CPU-s per stream-s")
    print("not counted above (separate processes):")
    for name, rates in result.others.items():
        print(f"  {name:<45} " + " ".join(f"{k} {v:.4f}" for k, v in rates.items()))


def _f(value: object) -> str:
    return f"{value:>7.3f}" if isinstance(value, float) else f"{'-':>7}"


__all__ = ["CpuResult", "measure", "print_table", "sample"]
