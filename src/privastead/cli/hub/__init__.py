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
        "check-config",
        "validate a hub.toml and point at the offending line",
        "privastead.cli.hub.check_config",
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
