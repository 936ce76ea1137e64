"""A full disk, for real: continuous recording on a 4 MiB tmpfs until it fills, again and again.

The file system is a tmpfs with a size limit, mounted in a private mount namespace that only
the child process (``storage_child.py``) sees and that vanishes with it: ``unshare --mount``
as root, ``unshare --user --map-root-user --mount`` otherwise (unprivileged user namespaces).
Nothing is mounted on the machine itself. Checked: the writer reports the full disk instead of
failing, keeps what it wrote as playable segments, retention deletes the oldest recordings
first and never the MLS state or the event, recording resumes every time, the index matches
the files, and every file stays 0600.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.mount_namespace import private_mount_namespace
from support.procs import ROOT


@pytest.mark.slow
def test_recording_survives_a_full_disk_and_keeps_events_and_state(tmp_path: Path) -> None:
    namespace = private_mount_namespace()
    if namespace is None:
        pytest.skip("no private mount namespace here (unshare --mount, user namespaces)")
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    script = ROOT / "tests" / "integration" / "storage_child.py"
    command = (
        f'mount -t tmpfs -o size=4m,mode=0700 tmpfs "{mountpoint}" && '
        f'exec "{sys.executable}" "{script}" "{mountpoint}" "{tmp_path}"'
    )
    result = subprocess.run(
        [*namespace, "sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not any(mountpoint.iterdir())  # the tmpfs was only ever in the child's namespace
    assert report["full_events"] >= 3, report  # it filled, was emptied and filled again
    assert "the disk is full" in report["message"] and "porch" in report["message"]
    assert set(report["states"]) <= {"low", "full"} and report["deleted"] > 0
    assert report["kept_intact"]  # MLS state, clip and thumbnail untouched
    assert report["written"] > report["remaining"] > 0
    assert report["newest_kept"] == report["newest_written"]  # the oldest went first
    assert report["oldest_kept"] > report["oldest_written"]
    assert report["playable"] == report["remaining"]
    assert report["indexed_paths"] == report["files"] == report["rebuilt_paths"]
    assert report["parts"] == 0
    assert report["modes"] == ["0o600"]
