"""What every `privastead-app` subcommand shares: the data directory option, and asking the
running client (`listen` or `ui`) that owns it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

RUNNING_NOTE = (
    "While `privastead-app listen` or `ui` runs on the same data directory, this command asks "
    "it (over its local socket) instead of opening the directory itself."
)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "privastead" / "app"


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the client's data directory (default: $PRIVASTEAD_APP_DIR or "
        "~/.local/share/privastead/app)",
    )


def data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    env = os.environ.get("PRIVASTEAD_APP_DIR")
    return Path(env) if env else default_data_dir()


async def ask_running(
    args: argparse.Namespace, op: str, request: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The running client's answer to ``op``, or None when no client runs on the directory."""
    from privastead.client.local_call import call_running_client

    return await call_running_client(data_dir(args), op, request)
