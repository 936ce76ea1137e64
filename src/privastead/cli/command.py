"""The dispatch table behind every Privastead program.

A subcommand is a module with ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``--help`` stays fast and one program does not
pay for another's dependencies (numba, PyAV, the Rust extension).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from privastead import __version__
from privastead.errors import ConfigError, PrivasteadError


class SubcommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class Command:
    """One row of a program's table: ``name``, one-line ``help``, and the module path."""

    name: str
    help: str
    module: str
    description: str = ""


def build_parser(
    prog: str, description: str, commands: Sequence[Command]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on stderr (default: INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        child.set_defaults(_module=command.module)
        # Arguments are added lazily in main() for the chosen command only.
    return parser


def main(
    prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv``, run the chosen subcommand, turn our errors into messages and exit codes.

    Exit codes: 0 success, 1 failure, 2 usage or config error, 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, description, commands)
    # First pass finds the subcommand; the second parses its own arguments.
    names = {c.name: c for c in commands}
    chosen = next((a for a in argv if a in names), None)
    module: SubcommandModule | None = None
    if chosen is not None:
        module = importlib.import_module(names[chosen].module)
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert module is not None
        module.add_arguments(subparsers.choices[chosen])
    args = parser.parse_args(argv)
    from privastead import logs

    logs.setup(args.log_level)
    assert module is not None  # argparse enforced a subcommand
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except PrivasteadError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


__all__ = ["Command", "SubcommandModule", "build_parser", "main"]
