"""`privastead-hub service --config hub.toml`: a systemd unit that runs this hub 24/7.

The unit is written for this installation: the `privastead-hub` beside the running Python,
the config's absolute path, and the directories the config names (data and clips) as the
only places the hub may write. Everything else is read-only to it, it has no capabilities,
no new privileges, its own /tmp and no devices; its files are created 0600 (UMask). Numba
caches its compiled kernels in a cache directory systemd creates for the service, since the
installed package is read-only there. systemd restarts the hub when it dies: the hub finishes
an interrupted clip and resends what the relay has not acknowledged when it starts again.

Running as a service also gives the hub its own cgroup: the kernel shares the cores between
services first, so the hub's background-priority decoders yield to its own event loop and
not to another service (docs/design/hub-concurrency.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import sys
from pathlib import Path

from privastead.errors import ConfigError

CACHE_DIRECTORY = "privastead-hub"  # /var/cache/privastead-hub, made by systemd for the User


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, required=True, help="the hub.toml the service runs with"
    )
    parser.add_argument(
        "--user",
        default=None,
        help="the account the hub runs as (default: you). It must own the data directory; "
        "no root needed: `useradd --system --create-home privastead` makes one",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the unit to this file (e.g. /etc/systemd/system/privastead-hub.service) "
        "instead of standard output",
    )
    parser.epilog = (
        "Then, as root:\n"
        "  systemctl daemon-reload && systemctl enable --now privastead-hub\n"
        "  journalctl -u privastead-hub -f      # its log\n"
        "Pair clients with `privastead-hub pair --config FILE` as the same account while it runs."
    )


def _executable() -> list[str]:
    """How to start this installation's hub: the entry point beside the running Python, or
    the module through that Python (a source checkout without installed scripts)."""
    script = Path(sys.executable).parent / "privastead-hub"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("privastead-hub")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "privastead.cli.hub"]


def _quote(arg: str) -> str:
    """One ExecStart argument: systemd splits on spaces, honours double quotes and expands
    ``%`` specifiers (``%%`` is a percent sign)."""
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "/._-=:+@,%" for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _path_setting(path: Path) -> str:
    """A path in a space-separated path list: quoted if it holds a space, ``%`` doubled."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if " " in text else text


def render_unit(command: list[str], config: Path, user: str, writable: list[Path]) -> str:
    """The unit text. ``command`` starts the hub program; ``writable`` are absolute paths."""
    exec_start = " ".join(_quote(a) for a in [*command, "run", "--config", str(config)])
    paths = " ".join(_path_setting(p) for p in writable)
    return f"""\
# Privastead hub as a systemd service, written by `privastead-hub service`.
# Install: save as /etc/systemd/system/privastead-hub.service, then
#   systemctl daemon-reload && systemctl enable --now privastead-hub
[Unit]
Description=Privastead hub: cameras, motion detection, end-to-end encrypted events
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
ExecStart={exec_start}
# SIGTERM finishes the clips being written; a hub that dies is started again and resends.
Restart=always
RestartSec=5
TimeoutStopSec=30
Environment=PYTHONUNBUFFERED=1
# Compiled motion kernels are cached here (the installed package is read-only).
CacheDirectory={CACHE_DIRECTORY}
Environment=NUMBA_CACHE_DIR=/var/cache/{CACHE_DIRECTORY}/numba
# Files with plaintext or keys: 0600 in 0700 directories.
UMask=0077
# The only places the hub writes: its data (MLS state, outbox, recordings) and clips.
ReadWritePaths={paths}
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
SystemCallArchitectures=native
# Not MemoryDenyWriteExecute: Numba compiles the motion kernels to machine code at start.

[Install]
WantedBy=multi-user.target
"""


def run(args: argparse.Namespace) -> int:
    from privastead.hub.config import load

    config_path = args.config.expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(
            f"{args.config}: no such file; write one with `privastead-hub init {args.config}`"
        )
    config = load(config_path)  # a broken config fails here, naming the line, not at boot
    data = config.hub.data_dir.expanduser().resolve()
    writable = [data]
    if config.hub.clips_dir is not None:
        clips = config.hub.clips_dir.expanduser().resolve()
        if not clips.is_relative_to(data):
            writable.append(clips)
    user = args.user or getpass.getuser()
    if user == "root":
        print(
            "warning: the hub would run as root, which it does not need; create an account "
            "(useradd --system --create-home privastead) and pass --user privastead",
            file=sys.stderr,
        )
    for path in writable:
        if not path.is_dir():
            # systemd cannot make a missing ReadWritePaths entry writable, and the hub could
            # not create it under a read-only parent: the service would fail at start.
            raise ConfigError(
                f"{path} does not exist; create it for the account the hub runs as "
                f"(install -d -m 0700 -o {user} {shlex.quote(str(path))}) or run "
                "`privastead-hub pair` once as that account, then run this again"
            )
    text = render_unit(_executable(), config_path, user, writable)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.write_text(text)
    args.out.chmod(0o644)  # a unit holds no secret, and systemd reads it as root anyway
    print(
        f"wrote {args.out}; now: systemctl daemon-reload && systemctl enable --now {args.out.stem}",
        file=sys.stderr,
    )
    return 0
