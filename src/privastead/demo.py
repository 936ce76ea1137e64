"""`make demo`: the whole system on loopback, with a browser page to watch it.

Starts, as separate processes: a relay (`privastead-server serve`) with one account, a
`privastead-camsim` camera playing the `demo` scene (a person crosses the yard every ~20 s),
a hub paired with one client through the real pairing flow (the short code typed from a file,
the device confirmed on the hub with the same safety code and key fingerprint on both sides),
and that client's web UI, which also runs its receive loop. Prints the UI address,
then a line for each event the client has decrypted. Ctrl-C or SIGTERM stops everything.

`python -m privastead.demo --crypto` runs the MLS walk-through in `demo_crypto` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from privastead.demo_processes import Child, Children, program
from privastead.errors import PrivasteadError
from privastead.hub.sample_config import loopback_config
from privastead.ports import free_port

SCENE_SECONDS = 60  # three crossings per loop, at 4, 24 and 44 s
CAMERA_SIZE = "640x360"  # small enough that a 2-core machine decodes, detects and records


class DemoError(PrivasteadError):
    """A demo step failed; the message says which and where its log is."""


class _Stop(Exception):
    """Raised by the signal handler while starting up."""


def status(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _check(cmd: list[str], what: str) -> str:
    from privastead.demo_processes import child_env

    out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DemoError(f"{what} failed: {out.stderr.strip()[-1500:]}")
    return out.stdout


def _read_line(child: Child, prefix: str, timeout: float) -> str:
    """The first stdout line of ``child`` starting with ``prefix`` (other lines are shown)."""
    assert child.proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in child.proc.stdout:
        if line.startswith(prefix):
            return line.strip()
        if time.monotonic() > deadline:
            break
    raise DemoError(f"{child.name} did not print {prefix!r}; see {child.log}:\n{child.tail()}")


def start_relay(kids: Children, root: Path) -> tuple[str, Path]:
    data = root / "relay"
    out = _check(
        program("privastead.cli.server", "accounts", "add", "home", "--data-dir", str(data)),
        "creating the relay account",
    )
    token = root / "owner-token"
    token.write_text(out.strip().splitlines()[-1])
    token.chmod(0o600)
    (root / "relay.toml").write_text("")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    relay = kids.start(
        "relay",
        program(
            "privastead.cli.server", "serve", "--config", str(root / "relay.toml"),
            "--data-dir", str(data), "--port", str(port),
        ),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not relay.running():
            raise DemoError(f"the relay exited; see {relay.log}:\n{relay.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/healthz", timeout=1):  # noqa: S310 - our http URL
            status(f"relay: {url} (pid {relay.pid}), account 'home' created")
            return url, token
        time.sleep(0.1)
    raise DemoError(f"the relay did not answer on {url}; see {relay.log}")


def start_camera(kids: Children) -> str:
    status(f"camera: privastead-camsim, scene 'demo' at {CAMERA_SIZE}, 10 fps")
    status("        (the first run renders and encodes the scene once: up to a minute)")
    cam = kids.start(
        "camera",
        program(
            "privastead.cli.camsim", "--port", "0", "--scene", "demo", "--size", CAMERA_SIZE,
            "--fps", "10", "--duration", str(SCENE_SECONDS),
        ),
        stdout_pipe=True,
    )  # fmt: skip
    url = _read_line(cam, "rtsp://", timeout=300).split()[0]
    status(f"camera: {url} (pid {cam.pid})")
    return url


def pair(kids: Children, config: Path, client: Path, root: Path) -> None:
    status("pairing: `privastead-hub pair` shows a short code (PAKE through the relay), a QR")
    status("         and the long code (relay mailbox + PSK)")
    hub = kids.start(
        "hub-pair",
        program("privastead.cli.hub", "pair", "--config", str(config), "--no-qr",
                "--png", str(root / "pairing-qr.png")),
        stdout_pipe=True,
    )  # fmt: skip
    short = _read_line(hub, "short code:", timeout=60).split(":", 1)[1].strip()
    relay_url = _read_line(hub, "relay:", timeout=10).split(":", 1)[1].strip()
    status(f"hub   > short code: {short}")
    status("client: `privastead-app pair` asks for the code (never in argv; here from a file)")
    code_file = root / "short-code"
    code_file.write_text(short + "\n")
    code_file.chmod(0o600)
    app = kids.start(
        "app-pair",
        program("privastead.cli.app", "pair", "--code-file", str(code_file), "--relay",
                relay_url, "--data-dir", str(client), "--name", "demo"),
        stdout_pipe=True,
    )  # fmt: skip
    pending = _read_line(hub, "pending id:", timeout=120).split(":", 1)[1].strip()
    hub_safety = _safety(_read_line(hub, "safety code:", timeout=10))
    hub_keys = _read_line(hub, "device key fingerprint:", timeout=10).split(":", 1)[1].strip()
    client_safety = _safety(_read_line(app, "safety code:", timeout=60))
    client_keys = _read_line(app, "device key fingerprint:", timeout=10).split(":", 1)[1].strip()
    status("hub   > device 'demo' is pending (it has nothing yet)")
    status(f"hub   > safety code: {hub_safety}")
    status(f"hub   > device key fingerprint: {hub_keys}")
    status(f"client> safety code: {client_safety}")
    status(f"client> device key fingerprint: {client_keys}")
    if (hub_safety, hub_keys) != (client_safety, client_keys):
        raise DemoError("the safety codes differ: the pairing was tampered with")
    status("        the same on both sides: the owner approves (`devices approve`)")
    _check(
        program("privastead.cli.hub", "devices", "approve", pending, "--config", str(config)),
        "approving the device",
    )
    code_file.unlink()
    if kids.finished(app, timeout=120) != 0:
        raise DemoError(f"`privastead-app pair` failed; see {app.log}:\n{app.tail()}")
    if kids.finished(hub, timeout=120) != 0:
        raise DemoError(f"`privastead-hub pair` failed; see {hub.log}:\n{hub.tail()}")
    status("        paired: nobody sat in the middle, and nothing was shared before approval")


def _safety(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("safety code:"):
            return line.split(":", 1)[1].strip()
    raise DemoError(f"no safety code in {text!r}")


def received_events(client: Path) -> list[tuple[str, str, str, float]]:
    """(event id, camera, clip state, received at) from the client's event log, read-only."""
    db = client / "events.db"
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            rows = con.execute(
                "SELECT event_id, camera, clip_state, received_at FROM events ORDER BY received_at"
            ).fetchall()
    except sqlite3.Error:
        return []  # being created or locked: try again at the next tick
    return [(str(a), str(b), str(c), float(d)) for a, b, c, d in rows]


def watch(kids: Children, client: Path, started: float, until: float | None) -> None:
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    shown: dict[str, str] = {}
    while not stop and (until is None or time.monotonic() < until):
        for dead in kids.dead():
            raise DemoError(f"{dead.name} exited; see {dead.log}:\n{dead.tail()}")
        for event_id, camera, clip, _ in received_events(client):
            if shown.get(event_id) != clip:
                after = time.monotonic() - started
                short = event_id.lstrip("0")[:12]
                status(f"client decrypted event {short} on '{camera}': clip {clip} "
                       f"({after:.0f} s after start)")  # fmt: skip
                shown[event_id] = clip
        time.sleep(0.5)


@contextlib.contextmanager
def _data_dir(given: Path | None) -> Iterator[Path]:
    if given is None:
        with tempfile.TemporaryDirectory(prefix="privastead-demo-") as d:
            yield Path(d)
        return
    if given.exists() and any(given.iterdir()):
        raise DemoError(f"{given} is not empty: remove it or choose another --data-dir")
    given.mkdir(parents=True, exist_ok=True)
    yield given


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with _data_dir(args.data_dir) as root:
        status(f"data and logs: {root}")
        kids = Children(root)
        try:
            relay_url, token = start_relay(kids, root)
            camera_url = start_camera(kids)
            config, client = root / "hub.toml", root / "client"
            config.write_text(
                loopback_config(
                    data_dir=root / "hub", relay_url=relay_url, token_file=token,
                    camera_url=camera_url, camera_name="yard",
                )
            )  # fmt: skip
            pair(kids, config, client, root)
            hub = kids.start("hub", program("privastead.cli.hub", "--log-level", "INFO", "run",
                                            "--config", str(config)))  # fmt: skip
            status(f"hub: recording and encrypting events (pid {hub.pid}), log {hub.log}")
            ui = kids.start(
                "client-ui",
                program("privastead.cli.app", "ui", "--data-dir", str(client),
                        "--port", str(args.port), "--poll", "2", "--name", "demo"),
                stdout_pipe=True,
            )  # fmt: skip
            url = _read_line(ui, "Privastead UI:", timeout=60).split(":", 1)[1].strip()
            status(f"client: receive loop and web UI running (pid {ui.pid})")
            _instructions(url, "yard")
            until = None if args.duration is None else time.monotonic() + args.duration
            watch(kids, client, started, until)
        except _Stop:
            pass
        except DemoError as e:
            status(f"error: {e}")
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            status("stopping: client, hub, camera, relay")
            kids.stop_all()
            status("stopped")
    return 0


def _instructions(url: str, camera: str) -> None:
    print(f"\n  Open  {url}\n  Live  {url}#/live/{camera}\n", flush=True)
    for line in (
        "What to look at:",
        "  - Events: someone walks across the yard every ~20 s; within ~30 s an event appears,",
        "    with its thumbnail; open it and the clip plays. The hub encrypted both with MLS;",
        "    the relay only ever held ciphertext.",
        "  - Live view (the 'Live' address, or '● Live' on the camera's card): the client asks",
        "    the hub through the camera's control group; the hub rekeys the live group and sends",
        "    the camera's own stream in fragments of 3 frames, encrypted, through the relay. The",
        "    picture starts at once and stays a fraction of a second behind the camera; motion",
        "    detection and recording go on meanwhile. Leaving the page ends the session.",
        "  - Devices: this client, paired a moment ago.",
        "The address holds a secret: without it the UI answers 403. Ctrl-C stops everything.",
    ):
        status(line)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m privastead.demo", description=__doc__.split("\n")[0]
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds of running")
    p.add_argument("--port", type=int, default=0, help="web UI port (default: any free one)")
    p.add_argument("--data-dir", type=Path, help="empty directory to keep (default: temporary)")
    p.add_argument("--crypto", action="store_true", help="run the MLS walk-through instead")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.crypto:
        from privastead import demo_crypto

        return demo_crypto.main()
    try:
        return run(args)
    except DemoError as e:
        status(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
