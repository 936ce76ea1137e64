"""`privastead-server serve`: run the relay until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from privastead import logs
from privastead.cli.server.common import add_location, load_config
from privastead.errors import ConfigError
from privastead.relay import config as relay_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location(parser)
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080)")
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM); needs --key")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM); needs --cert")
    parser.epilog = (
        "The /metrics endpoint needs the operator token from "
        f"{relay_config.METRICS_TOKEN_ENV} or metrics_token_file. "
        "SIGTERM finishes in-flight requests before exiting."
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    changes: dict[str, object] = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise ConfigError("--cert and --key go together: give both, or neither")
        changes["tls_cert"], changes["tls_key"] = args.cert, args.key
    if changes:
        config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    if config.log_format == "json":
        logs.setup(args.log_level, "json")
    from privastead.relay.server import run as run_server

    run_server(config, relay_config.metrics_token(config))
    return 0
