"""`privastead-server`: the relay, untrusted store-and-forward of encrypted messages."""

from __future__ import annotations

import os
from collections.abc import Sequence

from privastead.cli.command import Command
from privastead.cli.command import main as run_program

DESCRIPTION = """The Privastead relay: untrusted store-and-forward of end-to-end encrypted messages.

Start it with `privastead-server serve --data-dir DIR`, create an account with
`privastead-server accounts add NAME --data-dir DIR` (prints the owner token for the hub),
and manage tokens and devices with `privastead-server tokens|devices ...`. Every command
reads the same config file (--config) and PRIVASTEAD_RELAY_* environment variables."""

# One row per subcommand; each module has add_arguments(parser) and run(args) -> int.
COMMANDS: list[Command] = [
    Command("serve", "run the relay (HTTP/WebSocket API)", "privastead.cli.server.serve"),
    Command("accounts", "add, list or remove accounts", "privastead.cli.server.accounts"),
    Command("tokens", "issue, revoke or list tokens", "privastead.cli.server.tokens"),
    Command(
        "migrate",
        "upgrade the database schema (SQLite or PostgreSQL)",
        "privastead.cli.server.migrate",
    ),
    Command("devices", "list or remove an account's devices", "privastead.cli.server.devices"),
]


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the relay and its CLI create (database, WAL, blobs, temp files) is for its
    # own user only, whatever the caller's umask.
    os.umask(0o077)
    return run_program("privastead-server", DESCRIPTION, COMMANDS, argv)


__all__ = ["COMMANDS", "main"]
