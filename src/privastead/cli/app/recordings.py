"""`privastead-app recordings CAMERA [--day DAY | --from TIME --to TIME]`: what exists.

Lists the spans the hub recorded continuously (asked through the camera's control group) and
the events this device received in that time, so you know what `playback` can fetch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir
from privastead.cli.app.times import FORMS, parse_day, parse_time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("camera", help="the camera's name (see `privastead-app cameras`)")
    parser.add_argument(
        "--day", default=None, help="a day: YYYY-MM-DD, today or yesterday (default: today)"
    )
    parser.add_argument("--from", dest="start", help=f"instead of --day: from ({FORMS})")
    parser.add_argument("--to", dest="end", help="... to (default now)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for the hub (default 20)"
    )
    add_data_dir(parser)
    parser.epilog = RUNNING_NOTE


def _range(args: argparse.Namespace) -> tuple[float, float]:
    from privastead.client.timeline import day_range

    now = time.time()
    if args.start is not None:
        if args.day is not None:
            raise ValueError("use either --day or --from/--to")
        start = parse_time(args.start, now)
        end = parse_time(args.end, now) if args.end else now
        if end <= start:
            raise ValueError("--to must be after --from")
        if end - start > 8 * 86400:
            raise ValueError("at most 8 days at once")
        return start, end
    if args.end is not None:
        raise ValueError("--to needs --from")
    return day_range(parse_day(args.day or "today", datetime.date.today()))


def run(args: argparse.Namespace) -> int:
    import asyncio

    try:
        start, end = _range(args)
    except ValueError as e:
        print(f"privastead-app: {e}", file=sys.stderr)
        return 2
    from privastead.errors import PrivasteadError

    try:
        answer = asyncio.run(_ask(args, start, end))
    except PrivasteadError as e:
        print(f"privastead-app: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer))
        return 0
    _print(answer)
    return 1 if answer["error"] and not answer["events"] else 0


async def _ask(args: argparse.Namespace, start: float, end: float) -> dict[str, object]:
    request = {"camera": args.camera, "start": start, "end": end, "timeout": args.timeout}
    answer = await ask_running(args, "recordings", request)
    if answer is not None:
        return answer
    from privastead.client.app import Client
    from privastead.client.device import DataDir
    from privastead.client.timeline import timeline
    from privastead.clock import SystemClock

    client = Client(DataDir(data_dir(args)), clock=SystemClock())
    try:
        return await timeline(client, args.camera, start, end, timeout=args.timeout)
    finally:
        await client.close()


def _print(answer: dict[str, object]) -> None:
    from privastead.client.playback_request import when

    spans = answer["spans"]
    events = answer["events"]
    assert isinstance(spans, list) and isinstance(events, list)
    print(f"{answer['camera']}: {when(float(answer['start']))} to {when(float(answer['end']))}")  # type: ignore[arg-type]
    if answer["error"]:
        print(f"recordings: unknown ({answer['error']})")
    elif not spans:
        print("recordings: none in this range (is continuous recording on for this camera?)")
    else:
        total = sum(b - a for a, b in spans)
        print(f"recordings: {len(spans)} span(s), {total / 3600:.2f} h")
        for a, b in spans:
            print(f"  {when(a)} to {when(b)}  ({(b - a) / 60:.1f} min)")
        if answer["truncated"]:
            print("  ... more (ask for a shorter range)")
    print(f"events: {len(events)}")
    for e in events:
        score = "-" if e["score"] is None else f"{e['score']:.3f}"
        print(f"  {when(e['at'])}  score={score:<6} clip={e['clip_state']:<10} {e['event_id']}")
