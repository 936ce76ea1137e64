"""Options every `privastead-server` subcommand shares: where the config and data live."""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
from pathlib import Path

from privastead.errors import ConfigError
from privastead.relay import config as relay_config
from privastead.relay import db, schema


def add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="relay config file (TOML); PRIVASTEAD_RELAY_* variables override it",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="data directory (default: data_dir from the config, ./relay-data)",
    )


def load_config(args: argparse.Namespace) -> relay_config.RelayConfig:
    config = relay_config.load(args.config)
    if args.data_dir is not None:
        config = dataclasses.replace(config, data_dir=args.data_dir)
    return config


def open_index(config: relay_config.RelayConfig) -> sqlite3.Connection:
    """The relay's database, for administration while the relay may be running (WAL)."""
    if config.storage.backend != "sqlite":
        raise ConfigError(
            "this command works on the SQLite backend only; with [storage] backend = "
            "'postgresql', manage tokens and devices through the relay's API with the "
            "account's owner token (`privastead-server accounts` works on both)"
        )
    db.secure_dir(config.data_dir)
    conn = db.connect(config.data_dir / "relay.sqlite3", config.durability)
    schema.init(conn)
    return conn


__all__ = ["add_location", "load_config", "open_index"]
