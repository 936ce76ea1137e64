"""Detection quality on the scene suite: ours (full rate and keyframes idle mode) vs a
Frigate-style pipeline vs OpenCV MOG2, on the tuning set and on the held-out set.

Every case (scene x seed x rendering) runs through the hub's own analysis pipeline
(``scan_file``: decoder, detector, event tracker, idle policy) once per detector, scored
against the scene's ground truth: recall, precision, F1, false alarms per hour of quiet video,
long tails. The held-out set (other seeds and renderings: 960x540, 1080p at a low bitrate,
4K30) is never run while tuning the detector. Also measured: how much later idle mode starts
and decides (notifies) events than full-rate decoding, and what share of the quiet scenes'
frames it decodes (what waking up for rain, foliage or light costs). Prints tables and one
JSON line.

    python bench/bench_detection_quality.py [--set tuning|held-out|all] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import FrigateStyle, Mog2
from privastead.camsim.encoder import encoder_build
from privastead.camsim.render import Interval
from privastead.camsim.scene import QUIET_SCENES, SCENES
from privastead.camsim.suite import (
    SETS,
    Case,
    CaseResult,
    overlaps,
    run_case,
    summarise,
)
from privastead.media.analysis import DetectorFactory
from privastead.media.scan import DetectedEvent
from privastead.media.settings import DetectionSettings, EventSettings

#: (label, detector factory or None for ours, mode)
RUNS: tuple[tuple[str, str, str], ...] = (
    ("ours_full", "ours", "full"),
    ("ours_keyframes", "ours", "keyframes"),
    ("frigate", "frigate", "full"),
    ("mog2", "mog2", "full"),
)


def _factory(name: str) -> DetectorFactory | None:
    peers: dict[str, Callable[[int, int], object]] = {
        "frigate": lambda w, h: FrigateStyle(),
        "mog2": lambda w, h: Mog2(),
    }
    return peers.get(name)  # type: ignore[return-value]


def run_one(case: Case, runs: tuple[tuple[str, str, str], ...]) -> dict[str, CaseResult]:
    case.video()  # render and encode once (cached)
    return {
        label: run_case(
            case, DetectionSettings(), EventSettings(), mode=mode, detector=_factory(name)
        )  # type: ignore[arg-type]
        for label, name, mode in runs
    }


def _first_events(
    full: CaseResult, idle: CaseResult
) -> list[tuple[Interval, DetectedEvent, DetectedEvent]]:
    """Per truth interval found in both modes: the first event overlapping it in each."""
    pairs = []
    for interval in full.truth:
        ea = [e for e in full.events if overlaps(e, interval)]
        eb = [e for e in idle.events if overlaps(e, interval)]
        if ea and eb:
            pairs.append((interval, min(ea, key=lambda e: e.start), min(eb, key=lambda e: e.start)))
    return pairs


def _start_delays(full: CaseResult, idle: CaseResult) -> list[tuple[Interval, float]]:
    return [(i, fb.start - fa.start) for i, fa, fb in _first_events(full, idle)]


def start_delays(full: list[CaseResult], idle: list[CaseResult]) -> dict[str, float]:
    """Per truth interval found in both modes: idle start - full start, and the same for the
    moment the event was decided (when the hub notifies)."""
    starts, decided = [], []
    for a, b in zip(full, idle, strict=True):
        for _, fa, fb in _first_events(a, b):
            starts.append(fb.start - fa.start)
            decided.append(fb.decided - fa.decided)
    if not starts:
        return {}

    def p95(xs: list[float]) -> float:
        return sorted(xs)[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]

    return {
        "events": len(starts),
        "start_mean_s": statistics.fmean(starts),
        "start_p95_s": p95(starts),
        "start_max_s": max(starts),
        "decided_mean_s": statistics.fmean(decided),
        "decided_p95_s": p95(decided),
        "decided_max_s": max(decided),
    }


#: Idle mode starting an event later than full rate by more than this is listed.
LATE_START = 0.5


def faults(results: dict[str, list[CaseResult]]) -> list[str]:
    """One line per thing our detector got wrong, so that a change in the totals can be
    traced to the clip and second at once: each false alarm, missed object and long tail, per
    mode, and each event that idle mode started more than ``LATE_START`` later than full
    rate."""
    lines = []
    for label, rs in results.items():
        if not label.startswith("ours"):
            continue
        for r in rs:
            where = f"{r.case.name} s{r.case.seed} {r.case.rendering}"
            lines += [
                f"  {label:15s} false alarm  {where}: {e.start:.2f}-{e.end:.2f} s" for e in r.alarms
            ]
            lines += [
                f"  {label:15s} missed       {where}: object at {i.start:.2f}-{i.end:.2f} s"
                for i in r.missed
            ]
            lines += [
                f"  {label:15s} long tail    {where}: event {e.start:.2f}-{e.end:.2f} s"
                for e in r.tailed
            ]
    if "ours_full" in results and "ours_keyframes" in results:
        for a, b in zip(results["ours_full"], results["ours_keyframes"], strict=True):
            for interval, delay in _start_delays(a, b):
                if delay > LATE_START:
                    lines.append(
                        f"  {'ours_keyframes':15s} late start   {a.case.name} s{a.case.seed} "
                        f"{a.case.rendering}: object at {interval.start:.2f} s, "
                        f"{delay:+.2f} s after full rate"
                    )
    return lines


def _cell(rs: list[CaseResult]) -> str:
    truth = sum(len(r.truth) for r in rs)
    found = sum(r.found for r in rs)
    fa = sum(r.false_alarms for r in rs)
    tails = sum(r.tails for r in rs)
    tail = f" T{tails}" if tails else ""
    return (f"{found}/{truth}" if truth else "-") + f" FA{fa}{tail}"


def report(set_name: str, results: dict[str, list[CaseResult]]) -> dict[str, object]:
    labels = list(results)
    cases = results[labels[0]]
    renderings = sorted({r.case.rendering for r in cases})
    print(f"\n== {set_name}: {len(cases)} cases ({', '.join(renderings)})")
    print(f"{'scene':13s}" + "".join(f"{label:>17s}" for label in labels))
    for name in SCENES:
        row = [[r for r in results[label] if r.case.name == name] for label in labels]
        if row[0]:
            print(f"{name:13s}" + "".join(f"{_cell(rs):>17s}" for rs in row))
    print(
        f"{'detector':15s} {'recall':>6s} {'prec.':>6s} {'F1':>6s} {'FA':>4s} "
        f"{'FA/h quiet':>10s} {'quiet h':>7s} {'tails':>5s} {'decoded quiet':>13s}"
    )
    out: dict[str, object] = {}
    for label in labels:
        s = summarise(results[label])
        print(
            f"{label:15s} {s.recall:6.3f} {s.precision:6.3f} {s.f1:6.3f} {s.false_alarms:4d} "
            f"{s.false_alarms_per_hour:10.2f} {s.quiet_hours:7.2f} {s.tails:5d} "
            f"{100 * s.decoded_quiet:12.1f}%"
        )
        out[label] = {
            "recall": round(s.recall, 4),
            "precision": round(s.precision, 4),
            "f1": round(s.f1, 4),
            "false_alarms": s.false_alarms,
            "fa_per_hour_quiet": round(s.false_alarms_per_hour, 2),
            "quiet_hours": round(s.quiet_hours, 3),
            "long_tails": s.tails,
            "hours": round(s.hours, 3),
            "cases": len(results[label]),
            "decoded_share_quiet": round(s.decoded_quiet, 4),
        }
    if "ours_full" in results and "ours_keyframes" in results:
        delays = start_delays(results["ours_full"], results["ours_keyframes"])
        if delays:
            print(
                f"idle mode vs full rate over {delays['events']:.0f} events: start "
                f"+{delays['start_mean_s']:.2f} s mean (p95 {delays['start_p95_s']:+.2f}, max "
                f"{delays['start_max_s']:+.2f}); decided +{delays['decided_mean_s']:.2f} s mean "
                f"(p95 {delays['decided_p95_s']:+.2f}, max {delays['decided_max_s']:+.2f})"
            )
            out["idle_delay"] = {k: round(v, 3) for k, v in delays.items()}
    wrong = faults(results)
    print(f"what our detector got wrong ({len(wrong)}):" if wrong else "ours: nothing wrong")
    for line in wrong:
        print(line)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", choices=[*SETS, "all"], default="all")
    ap.add_argument("--scenes", help="comma-separated scene names (default: all)")
    ap.add_argument("--no-peers", action="store_true", help="only our detector")
    ap.add_argument("--jobs", type=int, default=1, help="cases run in parallel")
    ap.add_argument("--seeds", help="comma-separated seeds (default: all of the set's)")
    ap.add_argument(
        "--max-height",
        type=int,
        help="skip renderings taller than this (a 20 s 4K scene takes about 2 minutes to "
        "render on a free core)",
    )
    args = ap.parse_args()
    runs = tuple(r for r in RUNS if not (args.no_peers and r[1] != "ours"))
    chosen = list(SETS) if args.set == "all" else [args.set]
    wanted = set(args.scenes.split(",")) if args.scenes else set(SCENES)
    seeds = {int(x) for x in args.seeds.split(",")} if args.seeds else None
    out: dict[str, object] = {
        "bench": "detection_quality",
        "encoder_build": encoder_build(),
        "quiet_scenes": list(QUIET_SCENES),
        "max_height": args.max_height,
        "seeds": sorted(seeds) if seeds else None,
    }
    sets: dict[str, object] = {}
    t0 = time.perf_counter()
    for set_name in chosen:
        cases = [
            c
            for c in SETS[set_name]
            if c.name in wanted
            and (seeds is None or c.seed in seeds)
            and (args.max_height is None or c.height <= args.max_height)
        ]
        results: dict[str, list[CaseResult]] = {label: [] for label, _, _ in runs}
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            for got in pool.map(run_one, cases, [runs] * len(cases)):
                for label, r in got.items():
                    results[label].append(r)
        sets[set_name] = report(set_name, results)
    out["sets"] = sets
    print(f"({time.perf_counter() - t0:.0f} s)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
