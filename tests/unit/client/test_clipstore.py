from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from privastead.client.clipstore import ClipStore, FragmentStatus
from privastead.errors import PolicyError
from privastead.protocol.messages import ClipEnd, ClipFragment

CLIP = "c" * 32
OTHER_CLIP = "d" * 32
EVENT = "e" * 32
OTHER_EVENT = "f" * 32


def frag(
    index: int, *, last: int = 4, clip: str = CLIP, event: str = EVENT, final: bool | None = None
) -> ClipFragment:
    data = b"ftyp-moov-init" if index == 0 else f"moof-mdat-{index}-".encode() * (index + 3)
    is_final = index == last if final is None else final
    return ClipFragment(clip, event, index, is_final, index == 0, 100 + index, data)


def expected(last: int = 4) -> bytes:
    return b"".join(frag(i, last=last).data for i in range(last + 1))


def test_in_order_fragments_make_a_complete_clip(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    statuses = [store.add(frag(i)).status for i in range(5)]
    assert statuses == [FragmentStatus.APPENDED] * 4 + [FragmentStatus.COMPLETE]
    path = store.clip_path(CLIP)
    assert path.read_bytes() == expected()
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert store.incomplete() == []
    assert list((tmp_path / "partial").iterdir()) == []
    record = store.record(CLIP)
    assert record is not None and record.final_index == 4 and record.size == len(expected())


def test_reordered_fragments_wait_and_are_applied_in_order(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    order = [3, 1, 4, 0, 2]
    results = [store.add(frag(i)) for i in order]
    assert [r.status for r in results] == [
        FragmentStatus.BUFFERED,
        FragmentStatus.BUFFERED,
        FragmentStatus.BUFFERED,
        FragmentStatus.APPENDED,
        FragmentStatus.COMPLETE,
    ]
    assert results[3].next_index == 2  # 0 then the waiting 1
    assert store.clip_path(CLIP).read_bytes() == expected()


@pytest.mark.parametrize("seed", range(5))
def test_any_delivery_order_with_duplicates_gives_the_same_clip(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    indices = list(range(8)) + [rng.randrange(8) for _ in range(4)]
    rng.shuffle(indices)
    store = ClipStore(tmp_path)
    for i in indices:
        store.add(frag(i, last=7))
    assert store.clip_path(CLIP).read_bytes() == expected(7)


def test_duplicates_are_reported_not_written_twice(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    store.add(frag(1))
    assert store.add(frag(1)).status is FragmentStatus.DUPLICATE
    for i in range(2, 5):
        store.add(frag(i))
    assert store.add(frag(2)).status is FragmentStatus.DUPLICATE
    assert store.add(frag(4)).status is FragmentStatus.DUPLICATE
    assert store.clip_path(CLIP).read_bytes() == expected()


def test_splicing_across_clips_is_refused(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    with pytest.raises(PolicyError, match="another event"):
        store.add(frag(1, event=OTHER_EVENT))
    store.add(frag(3))
    with pytest.raises(PolicyError, match="another event"):
        store.add(frag(2, event=OTHER_EVENT))
    for i in (1, 2, 4):
        store.add(frag(i))
    with pytest.raises(PolicyError, match="another event"):
        store.add(frag(2, event=OTHER_EVENT))  # even once complete


def test_nothing_after_the_final_fragment(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    store.add(frag(2, last=2))
    with pytest.raises(PolicyError, match="after the final"):
        store.add(frag(3, last=2))
    with pytest.raises(PolicyError, match="two different final"):
        store.add(frag(1, final=True))
    store.add(frag(1, last=2))
    with pytest.raises(PolicyError, match="not part of it"):
        store.add(frag(3, last=5))


def test_truncated_clips_are_reported_and_can_be_abandoned(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    for i in (0, 1, 3):
        store.add(frag(i))
    store.add(frag(2, clip=OTHER_CLIP))
    report = {c.clip_id: c for c in store.incomplete()}
    assert report[CLIP].next_index == 2 and report[CLIP].waiting == (3,)
    assert report[CLIP].event_id == EVENT and report[CLIP].final_index is None
    assert report[OTHER_CLIP].event_id is None and report[OTHER_CLIP].waiting == (2,)
    kept = store.abandon(CLIP)
    assert kept is not None and kept.read_bytes() == frag(0).data + frag(1).data
    assert store.abandon(OTHER_CLIP) is None
    assert store.incomplete() == []


def test_restart_resumes_from_disk_and_cuts_unrecorded_bytes(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    store.add(frag(1))
    store.add(frag(3))
    # A crash after appending fragment 2's bytes, before its record: the bytes must go.
    with (tmp_path / "partial" / f"{CLIP}.part").open("ab") as f:
        f.write(b"half of fragment 2")
    (tmp_path / "partial" / f"{CLIP}.json.tmp").write_bytes(b"{")
    store = ClipStore(tmp_path)
    assert not (tmp_path / "partial" / f"{CLIP}.json.tmp").exists()
    assert store.incomplete()[0].next_index == 2
    store.add(frag(2))
    assert store.add(frag(4)).status is FragmentStatus.COMPLETE
    assert store.clip_path(CLIP).read_bytes() == expected()


def test_restart_after_last_append_before_rename_finishes_the_clip(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    for i in range(4):
        store.add(frag(i))
    # Simulate: fragment 4 appended and recorded, then a crash before the rename.
    part = tmp_path / "partial" / f"{CLIP}.part"
    with part.open("ab") as f:
        f.write(frag(4).data)
    sidecar = tmp_path / "partial" / f"{CLIP}.json"
    sidecar.write_text(
        sidecar.read_text()
        .replace('"next_index": 4', '"next_index": 5')
        .replace('"final_index": null', '"final_index": 4')
        .replace(f'"size": {len(expected()) - len(frag(4).data)}', f'"size": {len(expected())}')
    )
    store = ClipStore(tmp_path)
    assert store.clip_path(CLIP).read_bytes() == expected()
    assert store.incomplete() == []


def test_restart_mid_drain_resumes_fragments_kept_aside(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    assert store.add(frag(2, last=2)).status is FragmentStatus.BUFFERED  # acknowledged
    # Fragment 1 arrives and is appended; a crash hits before the waiting 2 is appended.
    with (tmp_path / "partial" / f"{CLIP}.part").open("ab") as f:
        f.write(frag(1).data)
    sidecar = tmp_path / "partial" / f"{CLIP}.json"
    size = len(frag(0).data) + len(frag(1).data)
    sidecar.write_text(
        sidecar.read_text()
        .replace('"next_index": 1', '"next_index": 2')
        .replace(f'"size": {len(frag(0).data)}', f'"size": {size}')
    )
    # Nobody will send 2 again (it was acknowledged): opening the store must finish the clip.
    store = ClipStore(tmp_path)
    assert store.clip_path(CLIP).read_bytes() == expected(2)


def test_fragments_kept_aside_are_read_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ClipStore(tmp_path)
    reads: list[int] = []
    original = ClipStore._read_aside

    def counting(self: ClipStore, clip_id: str, index: int):  # type: ignore[no-untyped-def]
        reads.append(index)
        return original(self, clip_id, index)

    monkeypatch.setattr(ClipStore, "_read_aside", counting)
    for i in range(30, 0, -1):
        store.add(frag(i, last=30))  # all early: each would otherwise re-read the others
    store.add(frag(0, last=30))
    assert store.clip_path(CLIP).read_bytes() == expected(30)
    assert len(reads) <= 31 + 1  # one read per fragment when it is appended (+ the miss at 31)


def test_a_leftover_copy_of_an_appended_fragment_is_removed_on_open(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.add(frag(0))
    store.add(frag(1))
    # A crash between recording fragment 1 and deleting its early copy.
    (tmp_path / "partial" / f"{CLIP}.1.ahead").write_bytes(frag(1).encode())
    store = ClipStore(tmp_path)
    assert store.incomplete()[0].waiting == ()
    assert not (tmp_path / "partial" / f"{CLIP}.1.ahead").exists()


def end(fragments: int, *, event: str = EVENT) -> ClipEnd:
    return ClipEnd(CLIP, event, fragments, "hub_restarted", 200)


@pytest.mark.parametrize("when", range(4))
def test_a_clip_the_hub_ended_early_is_finished_whenever_its_end_arrives(
    tmp_path: Path, when: int
) -> None:
    """Fragments 0..2 (none final) and a ClipEnd(3) in any position: the clip is finished,
    playable up to fragment 2, and its record says why it ended."""
    store = ClipStore(tmp_path)
    messages: list[ClipFragment | ClipEnd] = [frag(i, final=False) for i in range(3)]
    messages.insert(when, end(3))
    results = [store.add(m) if isinstance(m, ClipFragment) else store.end(m) for m in messages]
    assert results[-1].status is FragmentStatus.COMPLETE
    assert results[-1].ended == "hub_restarted"
    assert [r.status for r in results[:-1]].count(FragmentStatus.COMPLETE) == 0
    assert store.clip_path(CLIP).read_bytes() == expected(last=4)[: store_size(2)]
    record = store.record(CLIP)
    assert record is not None and record.ended == "hub_restarted" and record.final_index == 2
    assert list((tmp_path / "partial").iterdir()) == []
    # A late copy of either is a duplicate, a fragment beyond the end is refused.
    assert store.end(end(3)).status is FragmentStatus.DUPLICATE
    assert store.add(frag(1, final=False)).status is FragmentStatus.DUPLICATE
    with pytest.raises(PolicyError):
        store.add(frag(3, final=False))


def store_size(last: int) -> int:
    return sum(len(frag(i).data) for i in range(last + 1))


def test_an_end_that_contradicts_the_clip_is_refused(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    for i in range(3):
        store.add(frag(i, final=False))
    with pytest.raises(PolicyError):
        store.end(end(2))  # fragment 2 is already here
    with pytest.raises(PolicyError):
        store.end(end(5, event=OTHER_EVENT))
    store.end(end(4))
    with pytest.raises(PolicyError):
        store.add(frag(4, final=False))  # beyond the end
    assert store.add(frag(3, final=False)).ended == "hub_restarted"


def test_an_end_kept_before_the_init_survives_a_restart(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    assert store.end(end(2)).status is FragmentStatus.BUFFERED
    with pytest.raises(PolicyError):
        store.add(frag(2, final=False))  # beyond the end kept aside
    store = ClipStore(tmp_path)
    store.add(frag(1, final=False))
    done = store.add(frag(0, final=False))
    assert done.status is FragmentStatus.COMPLETE and done.ended == "hub_restarted"
    assert list((tmp_path / "partial").iterdir()) == []
