"""`privastead-app clip ID --out FILE`: copy an event's decrypted clip (event or clip id)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the event id (from `privastead-app events`) or clip id")
    parser.add_argument("--out", type=Path, required=True, help="where to write the MP4")
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    from privastead.client.device import DataDir
    from privastead.client.eventlog import ClipState, EventLog
    from privastead.clock import SystemClock

    data = DataDir(data_dir(args))
    data.load()
    with EventLog(data.events_db, clock=SystemClock()) as log:
        record = log.find(args.id)
    if record is None:
        print(
            f"privastead-app: no event or clip {args.id!r} (see `privastead-app events`)",
            file=sys.stderr,
        )
        return 1
    # An incomplete clip with a file is playable (the hub cut it short or dropped the rest).
    playable = (ClipState.COMPLETE, ClipState.INCOMPLETE)
    if record.clip_path is None or record.clip_state not in playable:
        print(
            f"privastead-app: the clip of {args.id} is {record.clip_state.value}; "
            "run `privastead-app sync` and try again",
            file=sys.stderr,
        )
        return 1
    shutil.copyfile(record.clip_path, args.out)
    note = "" if record.clip_state is ClipState.COMPLETE else " (incomplete: a playable prefix)"
    print(f"{args.out}: {args.out.stat().st_size} bytes{note}")
    return 0
