"""Runs inside a private mount namespace whose hub data directory is a small tmpfs (see
test_e2e_disk_full.py): starts `privastead-hub run` on it and, on the test's word (files in a
control directory outside the tmpfs), fills the disk with a ballast that keeps eating what the
hub frees ("fill"), removes it ("release"), and finally stops the hub and writes a report of
the tmpfs as the hub left it ("stop" -> report.json). The tmpfs exists only in this process's
namespace, so everything the test checks on it goes through this report."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

KEEP_FREE = 384 << 10  # the ballast leaves this much: below the hub's "full" floor (1 MB)


def snapshot(data: Path) -> dict[str, object]:
    """What is on the disk: segments, event files (with digests), MLS state files, modes."""
    recordings = sorted(str(p.relative_to(data)) for p in data.glob("recordings/*/*/*.mp4"))
    events = {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.glob("clips/*/*"))
        if p.suffix in (".mp4", ".jpg", ".json")
    }
    mls = sorted(str(p.relative_to(data)) for p in data.glob("mls/*"))
    modes = sorted(
        {
            oct(stat.S_IMODE(p.stat().st_mode))
            for p in [*data.glob("recordings/*/*/*.mp4"), *data.glob("clips/*/*")]
            if p.is_file()
        }
    )
    st = os.statvfs(data)
    with contextlib.closing(sqlite3.connect(data / "recordings" / "index.sqlite")) as db:
        marks = [list(r) for r in db.execute("SELECT event_id, start, end FROM marks")]
    sidecars = [json.loads(p.read_text()) for p in sorted(data.glob("clips/*/*.json"))]
    return {
        "marks": marks,
        "clip_events": sorted({str(c["event_id"]) for c in sidecars}),
        "segments": recordings,
        "events": events,
        "mls": mls,
        "modes": modes,
        "free": st.f_bavail * st.f_frsize,
    }


def hog(data: Path, ballast: Path) -> None:
    """Grow the ballast until only ``KEEP_FREE`` bytes are free."""
    st = os.statvfs(data)
    extra = st.f_bavail * st.f_frsize - KEEP_FREE
    if extra > 0:
        with contextlib.suppress(OSError), ballast.open("ab") as f:  # full: what fitted stays
            while extra > 0:
                chunk = min(extra, 1 << 20)
                f.write(b"\0" * chunk)
                extra -= chunk


def main() -> None:
    data, control, config, log = (Path(a) for a in sys.argv[1:5])
    disk = os.statvfs(data)
    if os.stat(data).st_dev == os.stat(data.parent).st_dev or disk.f_blocks * disk.f_frsize > (
        64 << 20
    ):  # a safety net: the ballast must only ever fill the test's own tmpfs
        raise SystemExit(f"{data} is not a small file system of its own: refusing to fill it")
    with log.open("ab") as out:
        hub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "privastead.cli.hub",
                "--log-level",
                "INFO",
                "run",
                "--config",
                str(config),
            ],
            stdout=out,
            stderr=out,
        )
    ballast = data / "ballast"
    done: set[str] = set()
    while not (control / "stop").exists():
        for word in ("fill", "release"):
            if (control / word).exists() and word not in done:
                done.add(word)
                (control / f"{word}.json").write_text(json.dumps(snapshot(data)))
        if "fill" in done and "release" not in done:
            hog(data, ballast)
        elif "release" in done:
            ballast.unlink(missing_ok=True)
        (control / "alive").write_text(str(hub.poll() is None))
        time.sleep(0.2)
    alive = hub.poll() is None
    hub.send_signal(signal.SIGTERM)
    try:
        code = hub.wait(60)
    except subprocess.TimeoutExpired:
        hub.kill()
        code = -9
    report = snapshot(data) | {"alive_until_stop": alive, "hub_rc": code}
    (control / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
