"""`privastead-app cameras`: the cameras this device receives, from which hub, and whether the
hub last said it gets a picture from each (from the running `listen`/`ui` if there is one,
else from what this data directory last heard; no relay round, no state lock)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = RUNNING_NOTE
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir

    data = DataDir(data_dir(args))
    info = data.load()
    answer = asyncio.run(ask_running(args, "status"))
    presence = answer["cameras"] if answer is not None else _last_heard(data)
    for camera in info.cameras():
        groups = ", ".join(g.group for g in info.groups if g.camera == camera)
        print(f"{camera}  (groups: {groups}; relay {info.relay_url}){_state(presence, camera)}")
    return 0


def _last_heard(data: Any) -> dict[str, dict[str, Any]]:
    """Each camera's presence as the last heartbeat this directory stored said."""
    from privastead.client.health import HealthMonitor
    from privastead.clock import SystemClock
    from privastead.errors import PrivasteadError

    monitor = HealthMonitor(SystemClock())
    try:
        monitor.restore(data.sync_state_raw("health"))
    except (PrivasteadError, ValueError):
        return {}  # nothing usable heard yet: say nothing rather than guess
    result = {}
    for name in data.load().cameras():
        state = monitor.cameras.get(name)
        if state is not None:
            result[name] = {
                "connected": state.connected,
                "offline_since": monitor.camera_offline_since(name),
                "recording": state.facts.get("recording"),
            }
    return result


def _state(presence: dict[str, dict[str, Any]], camera: str) -> str:
    facts = presence.get(camera) or {}
    if not facts:
        return ""
    recording = facts.get("recording")
    continuous = f", continuous recording {recording}" if recording not in (None, "off") else ""
    if facts["connected"]:
        return f"  connected{continuous}"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(facts["offline_since"]))
    return f"  OFFLINE since {when}{continuous}"
