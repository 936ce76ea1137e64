"""`make demo` end to end: `python -m privastead.demo` runs relay, camsim, hub and a paired
client with its web UI as real processes; an event reaches the client decrypted, the UI answers
only at its secret address, its live view delivers the camera's decrypted stream, and every
process is gone afterwards."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import av
import pytest

from privastead.demo_processes import child_env

pytestmark = pytest.mark.slow


class Demo:
    """The demo process, its output collected line by line on a thread."""

    def __init__(self, data: Path, *args: str) -> None:
        self.data = data
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "privastead.demo", "--data-dir", str(data), *args],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ui = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if m := re.search(r"Open\s+(http://\S+)", line):
                self.url = m.group(1)
                self.ui.set()
        self.ui.set()  # ended without a UI: let the test fail with the output

    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # pragma: no cover - failure path
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"\(pid (\d+)\)", self.output())]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


async def _watch_live(ui_url: str, camera: str, fragments: int) -> tuple[str, bytes]:
    """What the live page gets from the UI's WebSocket: the MIME type, then the decrypted fMP4
    (init and ``fragments`` media fragments). Retried while the hub's camera is connecting."""
    origin = ui_url.split("/", 3)
    ws_url = f"ws://{origin[2]}/{origin[3]}ws/live/{camera}"
    headers = {"Origin": f"http://{origin[2]}"}
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while True:
            mime, pieces, error = "", [], ""
            async with http.ws_connect(ws_url, headers=headers, max_msg_size=1 << 24) as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        note = json.loads(msg.data)
                        mime, error = note.get("mime", mime), note.get("error", "")
                        if error:
                            break
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        pieces.append(msg.data)
                        if len(pieces) > fragments:
                            return mime, b"".join(pieces)
            if time.monotonic() > deadline:
                raise AssertionError(f"no livestream: {error!r} after {len(pieces)} pieces")
            await asyncio.sleep(2.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmd:
                found.append(f"{entry.name}: {cmd}")
    return found


def _assert_all_gone(demo: Demo) -> None:
    pids = demo.child_pids()
    assert len(pids) >= 4, demo.output()  # relay, camera, hub, client UI
    assert [p for p in pids if _alive(p)] == [], demo.output()
    assert _processes_mentioning(str(demo.data)) == []


def test_demo_delivers_an_event_to_the_client_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    demo = Demo(data, "--duration", "60")
    try:
        assert demo.ui.wait(300) and demo.url, demo.output()
        assert _status(demo.url) == 200
        root = demo.url.split("/", 3)
        assert _status(f"{root[0]}//{root[2]}/") == 403  # no secret
        assert _status(f"{root[0]}//{root[2]}/{'x' * 43}/") == 403  # wrong secret
        assert re.search(r"Live\s+http://\S+#/live/yard", demo.output()), demo.output()
        mime, stream = asyncio.run(_watch_live(demo.url, "yard", fragments=10))
        assert mime.startswith('video/mp4; codecs="avc1.'), mime
        with av.open(io.BytesIO(stream)) as live:
            frames = list(live.decode(live.streams.video[0]))
        assert len(frames) >= 10 and frames[0].key_frame, len(frames)
        assert (frames[0].width, frames[0].height) == (640, 360)
        assert demo.wait(200) == 0, demo.output()
    finally:
        demo.close()
    out = demo.output()
    hub_safety = re.search(r"hub   > safety code: ([\d ]+)", out)
    client_safety = re.search(r"client> safety code: ([\d ]+)", out)
    assert hub_safety and client_safety and hub_safety.group(1) == client_safety.group(1)
    assert "clip complete" in out
    with sqlite3.connect(data / "client" / "events.db") as con:
        rows = con.execute(
            "SELECT clip_path, thumbnail_path FROM events WHERE clip_state = 'complete'"
        ).fetchall()
    assert rows, out
    clip, thumb = (Path(p) for p in rows[0])
    assert clip.read_bytes()[4:8] == b"ftyp"  # decrypted MP4 on the client
    assert thumb.stat().st_size > 0
    _assert_all_gone(demo)


def test_demo_stops_on_ctrl_c(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo")
    try:
        assert demo.ui.wait(300) and demo.url, demo.output()
        demo.proc.send_signal(signal.SIGINT)
        assert demo.wait(120) == 0, demo.output()
    finally:
        demo.close()
    assert "[demo] stopped" in demo.output()
    _assert_all_gone(demo)
