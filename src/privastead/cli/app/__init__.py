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
        "ui",
        "the local web UI on 127.0.0.1 (cameras, events, clips, live)",
        "privastead.cli.app.ui",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("privastead-app", DESCRIPTION, COMMANDS, argv)


__all__ = ["COMMANDS", "main"]
