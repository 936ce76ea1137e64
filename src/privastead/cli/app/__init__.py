"""`privastead-app`: the app program and its subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from privastead.cli.command import Command
from privastead.cli.command import main as run_program

DESCRIPTION = (
    "The Privastead client: pair with a hub, receive encrypted events, clips and livestreams."
)

# One row per subcommand; each module has add_arguments(parser) and run(args) -> int.
COMMANDS: list[Command] = [
    Command(
        "pair",
        "pair with a hub: type its short code (asked, never in argv) or read its QR image",
        "privastead.cli.app.pair",
    ),
    Command(
        "listen",
        "receive and print notifications as they arrive (or run a command per event)",
        "privastead.cli.app.listen",
    ),
    Command(
        "sync", "fetch everything waiting on the relay once, then exit", "privastead.cli.app.sync"
    ),
    Command(
        "events", "list received events (time, camera, score, clip)", "privastead.cli.app.events"
    ),
    Command("clip", "write an event's decrypted clip to a file", "privastead.cli.app.clip"),
    Command("cameras", "the cameras this device is paired with", "privastead.cli.app.cameras"),
    Command("devices", "this device and its pairing", "privastead.cli.app.devices"),
    Command(
        "live",
        "watch a camera's livestream: save it (--out) or pipe it to a player (--pipe)",
        "privastead.cli.app.live",
    ),
    Command(
        "recordings",
        "what a camera recorded continuously on a day, and its events",
        "privastead.cli.app.recordings",
    ),
    Command(
        "playback",
        "recorded video of any time range, decrypted into an MP4 file",
        "privastead.cli.app.playback",
    ),
    Command(
        "resync",
        "ask the hub to re-add this device to groups it lost sync with",
        "privastead.cli.app.resync",
    ),
    Command(
        "status", "hub health, desync and relay problems, safety code", "privastead.cli.app.status"
    ),
    Command(
        "push",
        "register, show or remove where the relay sends this device's (encrypted) wake-ups",
        "privastead.cli.app.push",
    ),
    Command(
        "ui",
        "the local web UI on 127.0.0.1 (cameras, events, clips, live)",
        "privastead.cli.app.ui",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("privastead-app", DESCRIPTION, COMMANDS, argv)


__all__ = ["COMMANDS", "main"]
