"""`privastead-app events`: received events, newest first (time, camera, score, clip)."""

from __future__ import annotations

import argparse
import time

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", help="only this camera")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    parser.epilog = RUNNING_NOTE
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client import queries
    from privastead.client.device import DataDir
    from privastead.client.eventlog import EventLog
    from privastead.clock import SystemClock

    answer = asyncio.run(ask_running(args, "events", {"camera": args.camera, "limit": args.limit}))
    if answer is None:
        data = DataDir(data_dir(args))
        data.load()  # says what to do if this directory is not paired
        with EventLog(data.events_db, clock=SystemClock()) as log:
            answer = queries.events(log, args.camera, args.limit)
    records = answer["events"]
    if not records:
        print("no events yet (run `privastead-app listen` or `privastead-app sync`)")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"] or r["received_at"]))
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        print(
            f"{when}  {r['camera']:<12} score={score:<6} clip={r['clip_state']:<10} {r['event_id']}"
        )
    return 0
