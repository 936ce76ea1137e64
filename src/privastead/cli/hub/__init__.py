"""`privastead-hub`: reads cameras, detects motion, records and encrypts events for clients."""

from __future__ import annotations

from collections.abc import Sequence

from privastead.cli.command import Command
from privastead.cli.command import main as run_program

DESCRIPTION = (
    "The Privastead hub: reads cameras, detects motion, records and encrypts events for "
    "your clients."
)

# One row per subcommand; each module has add_arguments(parser) and run(args) -> int.
COMMANDS: list[Command] = [
    Command(
        "run",
        "read the cameras, detect motion, record event clips",
        "privastead.cli.hub.run",
        "Read every configured camera, detect motion and record event clips. Without "
        "--config, runs a built-in demo camera.",
    ),
    Command(
        "pair",
        "pair a client: show a short code, a QR and the long code; confirm the device first",
        "privastead.cli.hub.pair",
    ),
    Command(
        "devices",
        "list paired devices, or remove one (it decrypts nothing new)",
        "privastead.cli.hub.devices",
    ),
    Command(
        "reset",
        "unpair everything: delete the hub's groups, state and relay mailboxes",
        "privastead.cli.hub.reset",
    ),
    Command(
        "init",
        "write a commented hub.toml to start from (every key with its default)",
        "privastead.cli.hub.init",
    ),
    Command(
        "service",
        "write a systemd unit that runs this hub 24/7, sandboxed, restarted when it dies",
        "privastead.cli.hub.service",
    ),
    Command(
        "check-config",
        "validate a hub.toml and point at the offending line",
        "privastead.cli.hub.check_config",
    ),
    Command(
        "discover",
        "find ONVIF cameras on the network and print (or append) their [[cameras]] blocks",
        "privastead.cli.hub.discover",
        "Find ONVIF cameras with WS-Discovery, ask each for its profiles and RTSP stream "
        "URIs, and print ready [[cameras]] blocks for hub.toml (main stream to record, a "
        "substream for detection), or append them with --append.",
    ),
    Command(
        "detect",
        "run the motion detector on a video file and print its events",
        "privastead.cli.hub.detect",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("privastead-hub", DESCRIPTION, COMMANDS, argv)


__all__ = ["COMMANDS", "main"]
