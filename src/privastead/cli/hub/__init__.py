"""`privastead-hub`: the hub program and its subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from privastead.cli.command import Command
from privastead.cli.command import main as run_program

DESCRIPTION = (
    "The Privastead hub: reads cameras, detects motion, records and encrypts events "
    "for your clients."
)

# One row per subcommand; each module has add_arguments(parser) and run(args) -> int.
COMMANDS: list[Command] = [
    Command("detect", "run the motion detector on a video file and print its events",
            "privastead.cli.hub.detect"),
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("privastead-hub", DESCRIPTION, COMMANDS, argv)


__all__ = ["COMMANDS", "main"]
