"""A hub whose disk fills, end to end with real processes: a relay, a camsim camera, a paired
`privastead-app listen`, and `privastead-hub run` recording continuously onto a 24 MiB tmpfs
in a private mount namespace (``disk_full_child.py``; nothing is mounted on the machine). A
ballast then eats every byte the hub frees. Checked: the hub keeps running, deletes its
continuous recording to make room, never an event clip, thumbnail, sidecar or MLS state file,
pauses recording, and tells the owner: the phone's `listen` prints the `hub_disk` health
state and `status` exits 10 naming the full disk. Once the ballast goes, the phone hears the
disk is fine again (so the MLS state still works) and recording resumes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, env, run

from support.mount_namespace import private_mount_namespace

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("disk_full_child.py")


def _status(client: Path) -> tuple[int, str]:
    out = run(app_cmd("status", "--data-dir", str(client)), timeout=60)
    return out.returncode, out.stdout + out.stderr


def _until_status(client: Path, text: str, limit: float = 90) -> tuple[int, str]:
    deadline = time.monotonic() + limit
    code, out = _status(client)
    while text not in out and time.monotonic() < deadline:
        time.sleep(1)
        code, out = _status(client)
    return code, out


def _health(lines: list[str]) -> list[str]:
    return [x.split(":", 1)[0].removeprefix("health ") for x in lines if x.startswith("health ")]


def _small_disk_config(home: Home, mountpoint: Path) -> Path:
    text = home.config.read_text().replace(
        f'data_dir = "{home.data}"', f'data_dir = "{mountpoint}"'
    )
    text = text.replace(
        'decode = "keyframes"\n', 'decode = "keyframes"\ncontinuous = true\nsegment_seconds = 1.0\n'
    )
    text = text.replace("[relay]\n", "[relay]\nresend_retention_mb = 1\n")
    text += (
        "\n[storage]\nmin_free_gb = 0.002\nmin_free_percent = 0\nfull_below_mb = 1\n"
        "check_interval = 0.5\nsweep_interval = 1\n"
    )
    config = home.root / "hub-small-disk.toml"
    config.write_text(text)
    return config


def _wait_file(path: Path, limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.exists()


def test_a_full_disk_costs_only_recording_and_the_owner_hears_of_it(home: Home) -> None:
    namespace = private_mount_namespace()
    if namespace is None:
        pytest.skip("no private mount namespace here (unshare --mount, user namespaces)")
    phone = home.root / "phone"
    home.pair(phone, "phone")
    mountpoint, control = home.root / "small-disk", home.root / "control"
    mountpoint.mkdir()
    control.mkdir()
    config = _small_disk_config(home, mountpoint)
    command = (
        f'mount -t tmpfs -o size=24m,mode=0700 tmpfs "{mountpoint}" && '
        f'cp -a "{home.data}/." "{mountpoint}/" && '
        f'exec "{sys.executable}" "{CHILD}" "{mountpoint}" "{control}" "{config}" "{home.hub_log}"'
    )
    child = subprocess.Popen([*namespace, "sh", "-c", command], env=env())
    listener = Listener(phone)
    hub_log = home.hub_log
    try:
        # Recording, with an event clip on the hub's disk, before the disk fills.
        # (a first start may compile the detector's kernels: give it time)
        code, text = _until_status(phone, "continuous recording recording", 240)
        assert "continuous recording recording" in text, text + hub_log.read_text()[-3000:]
        clip = listener.wait_for(lambda out: any(x.startswith("clip door ") for x in out))
        assert clip, listener.output() + hub_log.read_text()[-3000:]
        time.sleep(2)  # a few more segments

        (control / "fill").touch()
        full = listener.wait_for(lambda out: "hub_disk" in _health(out), 90)
        assert full, listener.output() + hub_log.read_text()[-3000:]
        code, text = _status(phone)
        assert code == 10 and "hub_disk: the hub's disk is full" in text, text
        assert "continuous recording paused" in text and "hub disk full" in text, text
        assert "clips on this device: " in text and "kept 90 days, no size cap" in text, text
        assert (control / "alive").read_text() == "True"

        (control / "release").touch()
        back = listener.wait_for(lambda out: _health(out)[-1:] == ["ok"], 90)
        assert back, listener.output() + hub_log.read_text()[-3000:]
        code, text = _until_status(phone, "continuous recording recording")
        assert code == 0 and "continuous recording recording" in text, text
        time.sleep(3)  # recording again
    finally:
        (control / "stop").touch()
        try:
            child.wait(90)
        finally:
            if child.poll() is None:
                child.kill()
        listener.stop()
    before = json.loads((control / "fill.json").read_text())
    during = json.loads((control / "release.json").read_text())
    after = json.loads((control / "report.json").read_text())
    assert after["alive_until_stop"] and after["hub_rc"] == 0, after
    # The recording went to make room: what was there when the disk filled is gone...
    assert before["segments"] and not set(before["segments"]) & set(during["segments"])
    # ... and recording resumed once there was room again.
    assert set(after["segments"]) - set(during["segments"])
    # Every event file (clip, thumbnail, sidecar) is untouched, the MLS state files all there.
    assert before["events"] and all(
        after["events"].get(name) == digest for name, digest in before["events"].items()
    )
    assert any(name.endswith(".mp4") for name in before["events"])
    assert before["mls"] and set(before["mls"]) <= set(after["mls"])
    assert after["modes"] == ["0o600"], after["modes"]
    # Every recorded event is marked on the recording's timeline (wall clock, start < end).
    marked = {event_id: (start, end) for event_id, start, end in after["marks"]}
    assert before["clip_events"] and set(after["clip_events"]) <= set(marked), after
    for event_id in before["clip_events"]:
        start, end = marked[event_id]
        assert abs(start - time.time()) < 3600 and (end is None or end >= start)
    log = hub_log.read_text()
    assert "continuous recording paused" in log and "retention:" in log
    assert not any(mountpoint.iterdir())  # the tmpfs was only ever in the child's namespace
