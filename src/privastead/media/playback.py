"""Playback of continuous recording: any wall-clock range as one fMP4 stream starting at zero.

``plan_playback`` asks the ``SegmentIndex`` for the segments that overlap the range, starts
at the keyframe at or before its start (``Segment.seek``: the byte offset of that keyframe's
fragment, so nothing before it is read) and lists the fragments (``moof+mdat``) up to its end,
reading only their ``moof`` boxes. Segments follow each other on the output timeline with no
gap (a recording gap, e.g. a camera that was offline, is left out rather than shown as a
stall a player would stop at); a segment whose codec configuration differs from the first
one's (the camera's stream changed) ends the plan there, since one init segment must describe
the whole stream; the plan's ``end`` says how far it got.

``PlaybackPlan.pieces()`` then reads the planned bytes and yields the init segment (stating
the stream's exact duration, so browsers and players know the length and can seek) and each
fragment with its decode times moved (``fmp4_edit.rebase_fragment``): a stream copy of what
the camera sent, no decoding, no muxer. Plain blocking file I/O: callers run it in a thread.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from privastead.errors import MediaError
from privastead.media.fmp4 import fragment_info, track_timescales
from privastead.media.fmp4_edit import rebase_fragment, track_configs, with_duration
from privastead.media.segment_files import init_segment, top_level_boxes
from privastead.media.segment_index import Segment, SegmentIndex

MERGE_GAP = 1.5  # seconds: segments closer than this count as one recorded span


@dataclass(frozen=True)
class PlannedFragment:
    path: Path
    offset: int
    length: int
    shifts: tuple[tuple[int, int], ...]  # (track id, ticks to add to its tfdt)
    media_time: float  # where it starts on the output timeline (seconds)


@dataclass(frozen=True)
class PlaybackPlan:
    camera: str
    start: float  # wall clock of the first frame sent (the keyframe at or before the ask)
    end: float  # wall clock where the stream ends
    duration: float  # seconds of video in the output
    init: bytes  # with the duration stated
    fragments: tuple[PlannedFragment, ...]

    @property
    def pieces_count(self) -> int:
        return 1 + len(self.fragments)

    @property
    def size(self) -> int:
        return len(self.init) + sum(f.length for f in self.fragments)

    def pieces(self) -> Generator[tuple[bytes, bool, float], None, None]:
        """(bytes, is_init, media time) of each piece of the output, init first."""
        yield self.init, True, 0.0
        handle: tuple[Path, int] | None = None
        try:
            for sequence, fragment in enumerate(self.fragments, start=1):
                if handle is None or handle[0] != fragment.path:
                    if handle is not None:
                        os.close(handle[1])
                    handle = (fragment.path, _open(fragment.path))
                data = os.pread(handle[1], fragment.length, fragment.offset)
                if len(data) != fragment.length:
                    raise MediaError(f"{fragment.path.name}: shorter than indexed")
                yield (
                    rebase_fragment(data, dict(fragment.shifts), sequence),
                    False,
                    fragment.media_time,
                )
        finally:
            if handle is not None:
                os.close(handle[1])


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:  # retention removed it since it was planned
        raise MediaError(f"recording {path.name} is gone: {exc.strerror}") from exc


def spans(segments: list[Segment], gap: float = MERGE_GAP) -> list[tuple[float, float]]:
    """Adjacent segments merged into recorded spans (wall clock), oldest first."""
    merged: list[tuple[float, float]] = []
    for segment in sorted(segments, key=lambda s: s.start):
        if merged and segment.start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], segment.end))
        else:
            merged.append((segment.start, segment.end))
    return merged


def nearby(
    index: SegmentIndex, camera: str, start: float, end: float, count: int
) -> list[tuple[float, float]]:
    """The ``count`` recorded spans closest to [start, end) within a day either side,
    oldest first."""
    around = spans(index.between(camera, start - 86400.0, end + 86400.0))

    def distance(span: tuple[float, float]) -> float:
        return max(span[0] - end, start - span[1], 0.0)

    return sorted(sorted(around, key=distance)[:count])


def plan_playback(
    index: SegmentIndex, root: Path, camera: str, start: float, end: float
) -> PlaybackPlan | None:
    """What to send for wall-clock [start, end) of ``camera``; None when nothing recorded
    overlaps it. ``MediaError`` when the recording on disk is not what the index says."""
    segments = index.between(camera, start, end)
    if not segments:
        return None
    first_init = b""
    configs: dict[int, bytes] = {}
    scales: dict[int, int] = {}
    planned: list[PlannedFragment] = []
    position = 0.0  # output seconds where the current segment's time zero lands
    video_end = 0.0  # output seconds where the last planned video sample ends
    plan_start = plan_end = 0.0
    for number, segment in enumerate(segments):
        path = root / segment.path
        init, boxes = _read_layout(path)
        if number == 0:
            first_init, configs, scales = init, track_configs(init), track_timescales(init)
            if 1 not in scales or not scales[1]:
                raise MediaError(f"{segment.path}: no video track")
        elif track_configs(init) != configs:
            break  # the camera's stream changed: one init cannot describe both
        skip_to = segment.seek(start)[1] if number == 0 else 0
        found = _fragments(
            path, boxes=boxes, skip_to=skip_to, scales=scales, segment=segment, end=end
        )
        if not found:
            continue
        if number == 0 or not planned:
            earliest = min(t for _o, _l, times, _v in found for t in times.values())
            position = -earliest
            plan_start = segment.start + found[0][3][0]
        else:
            position = video_end
        for offset, length, times, (v_start, v_end) in found:
            shifts = tuple(
                (track, round(position * scales[track]))
                for track in sorted(times)
                if track in scales
            )
            planned.append(PlannedFragment(path, offset, length, shifts, position + v_start))
            if v_end > v_start:
                video_end = max(video_end, position + v_end)
                plan_end = segment.start + v_end
    if not planned:
        return None
    return PlaybackPlan(
        camera,
        plan_start,
        max(plan_end, plan_start),
        video_end,
        with_duration(first_init, video_end),
        tuple(planned),
    )


_Found = tuple[int, int, dict[int, float], tuple[float, float]]


def _read_layout(path: Path) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    try:
        with path.open("rb") as f:
            boxes = top_level_boxes(f, os.fstat(f.fileno()).st_size)
            init = init_segment(f, boxes)
    except OSError as exc:
        raise MediaError(f"recording {path.name} cannot be read: {exc.strerror}") from exc
    if not init:
        raise MediaError(f"recording {path.name} has no init segment")
    return init, boxes


def _fragments(
    path: Path,
    *,
    boxes: list[tuple[bytes, int, int]],
    skip_to: int,
    scales: dict[int, int],
    segment: Segment,
    end: float,
) -> list[_Found]:
    """(offset, length, {track: start s}, (video start s, video end s)) of each fragment of
    ``segment`` from byte ``skip_to`` whose video starts before wall-clock ``end``."""
    found: list[_Found] = []
    with path.open("rb") as f:
        pending: tuple[int, bytes] | None = None
        for kind, at, length in boxes:
            if at < skip_to:
                continue
            if kind == b"moof":
                f.seek(at)
                pending = (at, f.read(length))
            elif kind == b"mdat" and pending is not None:
                moof_at, moof = pending
                pending = None
                runs = fragment_info(moof)
                times = {
                    r.track_id: r.base_time / scales[r.track_id]
                    for r in runs
                    if scales.get(r.track_id)
                }
                video = [r for r in runs if r.track_id == 1]
                if video:
                    v = video[0]
                    v_start = v.base_time / scales[1]
                    v_end = (v.base_time + v.duration) / scales[1]
                else:
                    v_start = v_end = min(times.values(), default=0.0)
                if found and segment.start + v_start >= end:
                    break
                if not times:
                    continue
                found.append((moof_at, at + length - moof_at, times, (v_start, v_end)))
    return found


__all__ = ["PlannedFragment", "PlaybackPlan", "nearby", "plan_playback", "spans"]
