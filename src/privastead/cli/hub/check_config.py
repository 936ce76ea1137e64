"""`privastead-hub check-config [hub.toml]`: validate a config, naming the offending line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=Path("hub.toml"),
        help="the config file to check (default: ./hub.toml)",
    )
    parser.add_argument(
        "--secrets",
        action="store_true",
        help="also check that every camera's password and the relay's owner token can be read",
    )


def run(args: argparse.Namespace) -> int:
    from privastead.hub import config as hubconfig

    config = hubconfig.load(args.config)  # ConfigError -> "file:line: key: problem", exit 2
    if args.secrets:
        for camera in config.cameras:
            camera.password()
        if config.relay.url:
            config.relay.token()  # one well-formed token, or an error naming its file
    for camera in config.cameras:
        detect = "substream" if camera.substream_url else "main stream"
        line = f"camera {camera.name}: {camera.decode} decoding, detection on the {detect}"
        if camera.continuous:
            storage = config.storage
            seconds = camera.segment_seconds or storage.segment_seconds
            days = camera.recording_days
            days = storage.recording_days if days is None else days
            kept = f"{days:g} days" if days else "no age limit"
            if camera.recording_gb is not None:
                kept += f", {camera.recording_gb:g} GB at most"
            line += f", continuous recording in {seconds:g} s segments kept {kept}"
        print(line)
    print(
        f"{args.config}: OK ({len(config.cameras)} camera(s), clips in {config.hub.clips})",
        file=sys.stderr,
    )
    return 0
