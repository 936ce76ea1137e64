"""Detection quality on the full scene suite: ours vs a Frigate-style pipeline vs OpenCV MOG2.

Every scene x seed runs through the hub's analysis pipeline once per detector (the same
decoder and event tracker for all three), scored against ground truth (recall, precision,
F1, false alarms per hour on the quiet scenes). Prints a table and one JSON line.

    python bench/bench_detection_quality.py [--seeds 0,1,2] [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import FrigateStyle, Mog2
from privastead.camsim.scene import QUIET_SCENES, SCENES
from privastead.camsim.suite import Case, CaseResult, score_case, summarise
from privastead.media.analysis import DetectorFactory
from privastead.media.scan import scan_file
from privastead.media.settings import DetectionSettings, EventSettings

NAMES = ("ours", "frigate", "mog2")


def run_all(case: Case) -> dict[str, CaseResult]:
    """Each detector through the hub's own analysis pipeline (``scan_file``: decoder, detector,
    event tracker), so the figures are what ``privastead-hub run`` would do."""
    factories: dict[str, DetectorFactory | None] = {
        "ours": None,
        "frigate": lambda w, h: FrigateStyle(),
        "mog2": lambda w, h: Mog2(),
    }
    out = {}
    for n in NAMES:
        report = scan_file(
            case.video(), DetectionSettings(), EventSettings(), detector=factories[n]
        )
        out[n] = score_case(case, report.events)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    results: dict[str, list[CaseResult]] = {n: [] for n in NAMES}
    t0 = time.perf_counter()
    for name in SCENES:
        for seed in seeds:
            for n, r in run_all(Case(name, seed, duration=args.duration)).items():
                results[n].append(r)
    print(
        f"scene suite: {len(SCENES)} scenes x seeds {seeds}, {args.duration:g} s each, 640x360 "
        f"H.264 10 fps ({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'scene':10s} " + " ".join(f"{n + ' found/truth  FA':>22s}" for n in NAMES))
    for name in SCENES:
        row = []
        for n in NAMES:
            rs = [r for r in results[n] if r.case.name == name]
            truth = sum(len(r.truth) for r in rs)
            found = sum(r.found for r in rs)
            fa = sum(len(r.events) - r.correct for r in rs)
            row.append(f"{found:>3d}/{truth:<3d} FA {fa:<3d}".rjust(22))
        print(f"{name:10s} " + " ".join(row))
    out: dict[str, object] = {
        "bench": "detection_quality",
        "seeds": seeds,
        "duration": args.duration,
    }
    print(f"{'detector':10s} {'recall':>7s} {'precision':>9s} {'F1':>6s} {'FA/h quiet':>10s}")
    for n in NAMES:
        s = summarise(results[n])
        print(
            f"{n:10s} {s.recall:7.3f} {s.precision:9.3f} {s.f1:6.3f} "
            f"{s.false_alarms_per_hour:10.1f}"
        )
        out[n] = {
            "recall": round(s.recall, 4),
            "precision": round(s.precision, 4),
            "f1": round(s.f1, 4),
            "fa_per_hour_quiet": round(s.false_alarms_per_hour, 2),
            "quiet_hours": round(s.quiet_hours, 3),
        }
    out["quiet_scenes"] = list(QUIET_SCENES)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
