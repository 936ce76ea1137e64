"""`privastead-hub init [hub.toml]`: write a commented config to start from.

Every key is listed with its default and what it means (the same text as docs/config.md);
the values given on the command line are set, everything else stays commented out. The file
holds no secret: passwords and the relay token are named by file or environment variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from privastead.errors import ConfigError


def _camera(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"expected NAME=rtsp://..., got {text!r}")
    return name, url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=Path("hub.toml"),
        help="where to write the config (default: ./hub.toml; never overwritten)",
    )
    parser.add_argument(
        "--camera",
        type=_camera,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a camera's name and RTSP main stream (repeatable; default: one example camera "
        "to edit). `privastead-hub discover` finds ONVIF cameras on the network.",
    )
    parser.add_argument("--relay", metavar="URL", help="the relay's address, e.g. https://...")
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file with the hub's owner token (`privastead-server accounts add NAME > FILE`)",
    )
    parser.add_argument("--data-dir", type=Path, help="the hub's data directory")
    parser.epilog = (
        "Then: edit the file, check it with `privastead-hub check-config hub.toml --secrets`, "
        "pair a client with `privastead-hub pair --config hub.toml` and start the hub with "
        "`privastead-hub run --config hub.toml`. Every key: docs/config.md."
    )


def render(
    cameras: list[tuple[str, str]],
    relay: str | None = None,
    token_file: Path | None = None,
    data_dir: Path | None = None,
) -> str:
    """The commented config text."""
    from privastead.cli.config_reference import hub_keys
    from privastead.configdoc import example_toml

    values: dict[str, Any] = {}
    if data_dir is not None:
        values["hub.data_dir"] = data_dir
    if relay:
        values["relay.url"] = relay
    if token_file is not None:
        values["relay.token_file"] = token_file
    keys = hub_keys()
    cameras = cameras or [("door", "rtsp://192.168.1.20:554/stream1")]
    camera_keys = [k for k in keys if k.table.startswith("cameras")]
    other = [k for k in keys if not k.table.startswith("cameras")]
    parts = [
        "# Privastead hub config. Every key is shown with its default; see docs/config.md.\n"
        "# Check it with: privastead-hub check-config <this file> --secrets\n",
        example_toml(other, values),
    ]
    for name, url in cameras:
        camera = {"cameras.name": name, "cameras.url": url}
        parts.append(example_toml(camera_keys, camera))
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    from privastead.hub import config as hubconfig

    text = render(args.camera, args.relay, args.token_file, args.data_dir)
    hubconfig.parse(text, source=str(args.config))  # what we write must load
    try:
        fd = os.open(args.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(f"{args.config} exists already: give another path, or edit it") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {args.config}: edit it, then `privastead-hub check-config {args.config}`")
    if not args.camera:
        print("  (it has one example camera: set its name and url)", file=sys.stderr)
    return 0
