"""How `privastead-app pair` and `resync --code` get a pairing code without it in argv.

A code on the command line is visible to every local user in the process list and stays in
the shell's history, so the code is read, in this order, from: ``--code-file FILE`` (``-`` is
standard input), a terminal prompt that does not echo (``getpass``), or the first line of
standard input when that is not a terminal (scripts: ``printf '%s\\n' "$CODE" | ...``). A code
given as an argument still works, with a warning.

A short code (``417-acorn-shiny``) is typed for a relay: ``--relay URL``, else
``$PRIVASTEAD_RELAY_URL``, else the one this data directory remembers, else asked once at the
terminal and remembered. ``--insecure-http`` maps onto the same policy as
``PRIVASTEAD_INSECURE_HTTP=1`` (plain http:// to a relay that is not on this machine).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from privastead.errors import ConfigError

ARGV_WARNING = (
    "privastead-app: warning: the pairing code was given on the command line, where other "
    "users of this machine can read it (process list) and your shell history keeps it. Next "
    "time leave it out and type it at the prompt (or use --code-file)."
)
RELAY_ENV = "PRIVASTEAD_RELAY_URL"


def add_code_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--code-file",
        type=Path,
        metavar="FILE",
        help="read the pairing code from FILE ('-' for standard input) instead of a prompt",
    )
    parser.add_argument(
        "--relay",
        metavar="URL",
        help="the relay the hub uses, for a short code (default: $PRIVASTEAD_RELAY_URL, the "
        "one remembered in the data directory, or asked once)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow a plain http:// relay on another host (tokens then cross the network "
        "unencrypted: only on a trusted network; same as PRIVASTEAD_INSECURE_HTTP=1)",
    )


def apply_insecure_http(args: argparse.Namespace) -> None:
    from privastead.protocol.relay_url import INSECURE_HTTP_ENV

    if getattr(args, "insecure_http", False):
        os.environ[INSECURE_HTTP_ENV] = "1"  # the one switch every relay client reads


def read_code(args: argparse.Namespace, given: str | None) -> str:
    """The code: ``given`` (from argv, with a warning), the file, a prompt, or stdin."""
    if given:
        print(ARGV_WARNING, file=sys.stderr)
        return given
    if args.code_file is not None:
        if str(args.code_file) == "-":
            text = sys.stdin.readline()
        else:
            try:
                text = args.code_file.read_text()
            except OSError as e:
                raise ConfigError(f"cannot read the code file {args.code_file}: {e}") from None
    elif sys.stdin is not None and sys.stdin.isatty():
        text = getpass.getpass("pairing code (e.g. 417-acorn-shiny; not shown): ")
    else:
        text = sys.stdin.readline() if sys.stdin is not None else ""
    text = " ".join(text.split())
    if not text:
        raise ConfigError(
            "no pairing code: type the code `privastead-hub pair` shows at the prompt, or "
            "give --code-file FILE (or --qr FILE)"
        )
    return text


def relay_url(args: argparse.Namespace, remembered: str | None) -> tuple[str, bool]:
    """The relay URL for a short code and whether it was just asked for (to remember)."""
    from privastead.protocol.relay_url import check_relay_url

    url = args.relay or os.environ.get(RELAY_ENV) or remembered
    asked = False
    if not url:
        if sys.stdin is None or not sys.stdin.isatty():
            raise ConfigError(
                "a short code needs the relay the hub uses: give --relay URL (or set "
                f"{RELAY_ENV}); `privastead-hub pair` prints it beside the code"
            )
        url = input("relay URL (printed beside the code on the hub): ").strip()
        asked = True
    return check_relay_url(url.rstrip("/")), asked


__all__ = ["add_code_source", "apply_insecure_http", "read_code", "relay_url"]
