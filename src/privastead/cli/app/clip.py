"""`privastead-app clip ID --out FILE`: copy an event's decrypted clip (event or clip id)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the event id (from `privastead-app events`) or clip id")
    parser.add_argument("--out", type=Path, required=True, help="where to write the MP4")
    parser.epilog = RUNNING_NOTE
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client import queries
    from privastead.client.device import DataDir
    from privastead.client.eventlog import ClipState, EventLog
    from privastead.clock import SystemClock

    record = asyncio.run(ask_running(args, "clip", {"id": args.id}))
    if record is None:
        data = DataDir(data_dir(args))
        data.load()
        with EventLog(data.events_db, clock=SystemClock()) as log:
            record = queries.clip(log, args.id)
    if not record:
        print(
            f"privastead-app: no event or clip {args.id!r} (see `privastead-app events`)",
            file=sys.stderr,
        )
        return 1
    # An incomplete clip with a file is playable (the hub cut it short or dropped the rest).
    playable = (ClipState.COMPLETE.value, ClipState.INCOMPLETE.value)
    if record["clip_path"] is None or record["clip_state"] not in playable:
        print(
            f"privastead-app: the clip of {record['event_id']} is {record['clip_state']}; "
            "run `privastead-app sync` and try again",
            file=sys.stderr,
        )
        return 1
    shutil.copyfile(record["clip_path"], args.out)
    note = (
        ""
        if record["clip_state"] == ClipState.COMPLETE.value
        else " (incomplete: a playable prefix)"
    )
    print(f"{args.out}: {args.out.stat().st_size} bytes{note}")
    return 0
