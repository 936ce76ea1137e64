"""Runs inside a private mount namespace on a small tmpfs (see test_storage_full_disk.py).

Records a camera's stream in 1 s segments onto a 4 MiB file system that also holds an MLS
state file and an event (clip + thumbnail), until the disk fills; then does what the hub will:
the disk watcher sees it, retention makes room (oldest recordings first), recording resumes;
several rounds. Prints one JSON report on stdout for the parent test to check.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import av

from privastead.errors import StorageError, StorageFullError
from privastead.media.diskspace import DiskWatcher
from privastead.media.retention import RetentionRules
from privastead.media.segment_files import recover
from privastead.media.segment_index import SegmentIndex
from privastead.media.segments import SegmentSettings, SegmentWriter
from privastead.media.storage import Places, make_room
from support.frames import BoxSource
from support.packets import demux, encode_mp4, looped


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    root = Path(sys.argv[1])
    state = root / "state" / "mls.state"
    state.parent.mkdir(mode=0o700)
    state.write_bytes(os.urandom(1 << 20))
    clips = root / "clips" / "2030-01-01"
    clips.mkdir(parents=True, mode=0o700)
    clip, thumb = clips / "porch-120000-aaaaaaaa.mp4", clips / "porch-120000-aaaaaaaa.jpg"
    clip.write_bytes(os.urandom(200_000))
    thumb.write_bytes(os.urandom(8_000))
    keep = {str(p): digest(p) for p in (state, clip, thumb)}

    info, packets = demux(encode_mp4(BoxSource(640, 480, 15, 2.0, motion=(0.0, 2.0)), gop=15))
    stream = looped(info, packets, 600.0, wall=time.time() - 600)
    recordings = root / "recordings"
    index = SegmentIndex(recordings / "index.sqlite")
    writer = SegmentWriter(recordings, "porch", index, SegmentSettings(seconds=1.0))
    writer.start(info)
    # keep 1 MB free; the disk is "full" below 256 KB
    rules = RetentionRules(segment_days=None, min_free_gb=0.001, min_free_percent=0)
    watcher = DiskWatcher(root, rules, floor=256 << 10)
    places = Places(recordings, index, root / "clips")
    report: dict[str, object] = {"full_events": 0, "states": [], "deleted": 0, "index_errors": 0}
    written: list[float] = []
    for packet in stream:
        try:
            segment = writer.write(packet)
        except StorageFullError as exc:
            report["full_events"] = int(report["full_events"]) + 1  # type: ignore[call-overload]
            report["message"] = str(exc)
            status = watcher.check()
            report["states"].append(status.state)  # type: ignore[attr-defined]
            try:
                plan, _freed = make_room(places, rules, time.time(), status)
            except StorageError as error:
                report["index_errors"] = int(report["index_errors"]) + 1  # type: ignore[call-overload]
                report["index_error"] = str(error)
                continue
            report["deleted"] = int(report["deleted"]) + len(plan.deletions)  # type: ignore[call-overload]
            report["shortfall"] = plan.shortfall
            writer.resume()  # the hub keeps running: record again from the next keyframe
            continue
        if segment is not None:
            written.append(segment.start)
    last = writer.close()
    if last is not None:
        written.append(last.start)
    indexed = index.all()
    files = sorted(str(p.relative_to(recordings)) for p in recordings.glob("porch/*/*.mp4"))
    playable, missing = 0, []
    for segment in indexed:
        path = recordings / segment.path
        if not path.exists():
            missing.append(segment.path)
            continue
        with av.open(io.BytesIO(path.read_bytes())) as container:
            frames = list(container.decode(video=0))
        playable += len(frames) == segment.frames and frames[0].key_frame
    # rebuilt into an index off the small disk, which may well be full again by now
    rebuilt = recover(recordings, SegmentIndex(Path(sys.argv[2]) / "rebuilt.sqlite"), rebuild=True)
    report.update(
        written=len(written),
        remaining=len(indexed),
        playable=playable,
        missing=missing,
        indexed_paths=sorted(s.path for s in indexed),
        files=files,
        rebuilt_paths=sorted(s.path for s in rebuilt),
        parts=len(list(recordings.glob("porch/*/*.part"))),
        newest_kept=max(s.start for s in indexed),
        newest_written=max(written),
        oldest_kept=min(s.start for s in indexed),
        oldest_written=min(written),
        kept_intact=all(digest(Path(p)) == d for p, d in keep.items()),
        modes=sorted({oct(os.stat(recordings / f).st_mode & 0o777) for f in files}),
        final_state=watcher.check().state,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
