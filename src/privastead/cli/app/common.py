"""What every `privastead-app` subcommand shares: the data directory option."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


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
