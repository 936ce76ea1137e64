"""`privastead-hub discover`: find ONVIF cameras and write their ``[[cameras]]`` blocks.

One WS-Discovery probe (multicast on the local network, or unicast to ``--probe`` addresses),
then, per camera that answers, its profiles and RTSP URIs over ONVIF (with the login from
``--password-file`` or ``--password-env``: never on the command line). The largest H.264/H.265
profile becomes ``url`` (recorded), the smallest one at least 320 pixels wide becomes
``substream_url`` (detection). The blocks go to stdout, or with ``--append`` to the end of
hub.toml, skipping cameras already there, after checking that the whole file still loads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

EPILOG = """\
The probe goes to 239.255.255.250:3702 (every ONVIF camera on this network). Where multicast
does not reach (another subnet, some VLANs and containers), name the cameras: --probe 10.0.0.7.

examples:
  privastead-hub discover --user admin --password-file /etc/privastead/cams.pass
  privastead-hub discover --probe 192.168.1.20 --probe 192.168.1.21 --user admin \\
      --password-env CAM_PASSWORD --append --config /etc/privastead/hub.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--probe",
        action="append",
        metavar="HOST[:PORT]",
        help="send the WS-Discovery probe to this address instead of the multicast group "
        "(repeatable; port 3702 unless given)",
    )
    parser.add_argument(
        "--interface",
        default="0.0.0.0",  # noqa: S104 - a local address to send from
        metavar="ADDR",
        help="local address to probe from (default: any)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)"
    )
    parser.add_argument("--user", help="the cameras' ONVIF/RTSP username")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password-file", type=Path, help="file holding the cameras' password")
    secret.add_argument("--password-env", metavar="VAR", help="environment variable holding it")
    parser.add_argument(
        "--transport",
        choices=["tcp", "udp", "auto"],
        default="tcp",
        help="transport to write into the blocks (default tcp)",
    )
    parser.add_argument(
        "--append", action="store_true", help="append the blocks to --config instead of printing"
    )
    parser.add_argument(
        "--config", type=Path, default=Path("hub.toml"), help="the hub.toml for --append"
    )


def _password(args: argparse.Namespace) -> str | None:
    from privastead.errors import ConfigError

    if args.password_file is not None:
        try:
            return str(args.password_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            message = f"cannot read --password-file {args.password_file}: {exc.strerror}"
            raise ConfigError(message) from None
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            raise ConfigError(f"environment variable {args.password_env} is not set")
        return value
    return None


def camera_name(label: str, taken: set[str]) -> str:
    """A hub.toml camera name from ``label``, unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^a-z0-9_-]+", "-", label.lower()).strip("-") or "camera"
    name, n = base[:40], 2
    while name in taken:
        name, n = f"{base[:36]}-{n}", n + 1
    taken.add(name)
    return name


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render(
    found: Iterable[object],
    args: argparse.Namespace,
    taken_names: set[str],
    known_urls: set[str],
) -> tuple[list[str], list[str]]:
    """(camera blocks, notes) for the described cameras."""
    from privastead.media.onvif.client import CameraInfo, pick_streams

    blocks, notes = [], []
    for info in found:
        assert isinstance(info, CameraInfo)
        device = info.device
        label = device.scope("name") or info.model or device.address
        main, sub = pick_streams(list(info.profiles))
        if main is None:
            notes.append(f"{device.address} ({label}): no H.264/H.265 profile with a stream URI")
            continue
        if main.uri in known_urls:
            notes.append(f"{device.address} ({label}): already in the config, skipped")
            continue
        name = camera_name(label, taken_names)
        who = " ".join(p for p in (info.manufacturer, info.model) if p) or "ONVIF camera"
        lines = [
            f"# {who} at {device.address}" + (f", serial {info.serial}" if info.serial else ""),
            "[[cameras]]",
            f"name = {_toml(name)}",
            f"url = {_toml(main.uri)}  # {main.summary()}",
        ]
        if sub is not None:
            lines.append(f"substream_url = {_toml(sub.uri)}  # {sub.summary()}: detection")
        if args.user:
            lines.append(f"username = {_toml(args.user)}")
            if args.password_file is not None:
                lines.append(f"password_file = {_toml(str(args.password_file.resolve()))}")
            elif args.password_env is not None:
                lines.append(f"password_env = {_toml(args.password_env)}")
        lines.append(f"transport = {_toml(args.transport)}")
        blocks.append("\n".join(lines) + "\n")
    return blocks, notes


async def _describe_all(
    devices: list[object], user: str | None, password: str | None, seconds: float
) -> tuple[list[object], list[str]]:
    import aiohttp

    from privastead.media.onvif.client import describe
    from privastead.media.onvif.discovery import Device
    from privastead.media.onvif.soap import OnvifAuthError, OnvifError

    found: list[object] = []
    notes: list[str] = []
    client_timeout = aiohttp.ClientTimeout(total=seconds + 5)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for device in devices:
            assert isinstance(device, Device)
            try:
                found.append(await describe(device, session, user, password))
            except OnvifAuthError:
                hint = "check" if user else "pass"
                hint += " --user and --password-file (or --password-env)"
                notes.append(f"{device.address}: the camera refused the login; {hint}")
            except OnvifError as exc:
                notes.append(f"{device.address}: {exc}")
    return found, notes


def _existing(path: Path) -> tuple[str, set[str], set[str]]:
    """The config's text, camera names and URLs (empty for a file that does not exist yet)."""
    from privastead.hub import config as hubconfig

    if not path.exists():
        return "", set(), set()
    text = path.read_text(encoding="utf-8")
    cameras = hubconfig.parse(text, source=str(path)).cameras
    urls = {c.url for c in cameras} | {c.substream_url for c in cameras if c.substream_url}
    return text, {c.name for c in cameras}, urls


def append_blocks(path: Path, text: str, blocks: list[str]) -> None:
    """Write ``text`` + ``blocks`` to ``path`` atomically, after checking it loads."""
    from privastead.hub import config as hubconfig

    combined = text.rstrip("\n") + ("\n\n" if text.strip() else "") + "\n".join(blocks)
    hubconfig.parse(combined, source=str(path))  # never leave a config the hub cannot read
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(combined)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    from privastead.media.onvif.discovery import discover, parse_target

    password = _password(args)
    if password is not None and not args.user:
        print("privastead-hub discover: a password needs --user", file=sys.stderr)
        return 2
    targets = [parse_target(t) for t in args.probe] if args.probe else None
    where = ", ".join(args.probe) if args.probe else "the local network (multicast)"
    print(f"probing {where} for ONVIF cameras ({args.timeout:g} s)...", file=sys.stderr)
    devices = asyncio.run(discover(targets, timeout=args.timeout, interface=args.interface))
    print(f"{len(devices)} ONVIF camera(s) answered", file=sys.stderr)
    if not devices:
        print(
            "no camera answered: is the camera on this network and ONVIF enabled on it? "
            "Where multicast does not reach, name it: --probe CAMERA_IP",
            file=sys.stderr,
        )
        return 1
    found, notes = asyncio.run(_describe_all(list(devices), args.user, password, args.timeout))
    text, names, urls = _existing(args.config) if args.append else ("", set(), set())
    blocks, more = render(found, args, names, urls)
    for note in notes + more:
        print(f"  {note}", file=sys.stderr)
    if not blocks:
        print("no new camera to add", file=sys.stderr)
        return 1 if not found else 0
    if args.append:
        append_blocks(args.config, text, blocks)
        print(f"appended {len(blocks)} camera(s) to {args.config}", file=sys.stderr)
    else:
        sys.stdout.write("\n".join(blocks))
    return 0
