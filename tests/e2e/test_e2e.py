"""Motion at a camera becomes an encrypted notification and clip on every paired client.

Real processes on loopback: `privastead-server serve`, `privastead-camsim` (demo scene: a
person walks through from 4.5 s to 11.5 s of every 14 s loop), `privastead-hub pair|run|devices`
and `privastead-app pair|events|clip`; the clients' receive loop runs in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, hub_cmd, run, scan_for_plaintext, sync_until

from privastead.client.clipstore import ClipStore
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow


def _complete_clips(data: Path) -> list[tuple[str, Path]]:
    with EventLog(data / "events.db", clock=SystemClock()) as log:
        return [
            (r.event_id, r.clip_path)
            for r in log.events()
            if r.clip_state is ClipState.COMPLETE and r.clip_path is not None
        ]


def _has_clips(n: int):  # type: ignore[no-untyped-def]
    return lambda syncers: all(
        sum(1 for r in s.events.events() if r.clip_state is ClipState.COMPLETE) >= n
        for s in syncers
    )


async def test_motion_reaches_every_client_encrypted_and_removal_stops_it(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    hub_code, client_code = home.pair(a, "phone-a")
    assert hub_code == client_code  # the owner compares these
    hub_code_b, client_code_b = home.pair(b, "phone-b", use_qr=True)
    assert hub_code_b == client_code_b and hub_code_b != hub_code

    # A used code fails cleanly, and so does a mistyped one; nothing is paired.
    reused = run(app_cmd("pair", home.last_code, "--data-dir", str(home.root / "c")))
    assert reused.returncode != 0 and "Traceback" not in reused.stderr, reused.stderr
    assert "already used or has expired" in reused.stderr
    typo = home.last_code[:-3] + ("A" if home.last_code[-3] != "A" else "B") + home.last_code[-2:]
    mistyped = run(app_cmd("pair", typo, "--data-dir", str(home.root / "d")))
    assert mistyped.returncode != 0 and "Traceback" not in mistyped.stderr, mistyped.stderr

    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert "phone-a" in listed.stdout and "phone-b" in listed.stdout, listed.stderr

    home.start_hub()
    await sync_until([a, b], _has_clips(1), limit=120)
    home.stop_hub()
    clips_a, clips_b = _complete_clips(a), _complete_clips(b)
    assert clips_a and clips_b, home.hub_log.read_text()[-3000:]

    # Byte-identical to what the hub recorded (local retention is on in this test).
    recorded = {p.read_bytes() for p in home.recorded_clips()}
    for _, path in clips_a + clips_b:
        assert path.read_bytes() in recorded

    # Each notification came too, and `privastead-app clip` hands the file over.
    with EventLog(a / "events.db", clock=SystemClock()) as log:
        event = log.get(clips_a[0][0])
    assert event is not None and event.at is not None and event.score is not None
    out = home.root / "out.mp4"
    got = run(app_cmd("clip", clips_a[0][0], "--out", str(out), "--data-dir", str(a)))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == clips_a[0][1].read_bytes()
    listing = run(app_cmd("events", "--data-dir", str(a)))
    assert clips_a[0][0] in listing.stdout

    # The relay saw ciphertext only.
    assert scan_for_plaintext(home.relay.data_dir) == []

    # Remove B; the next event reaches A only.
    removed = run(hub_cmd("devices", "remove", "phone-b", "--config", str(home.config)))
    assert removed.returncode == 0, removed.stderr
    # An observer device registers on the events mailbox so the relay keeps what A and the
    # hub acknowledge: the test then tries B's keys on it, as a relay or a thief could.
    b_events = next(g for g in DataDir(b).load().groups if g.group == "events")
    async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
        observer = await owner.create_device("observer")
    async with RelayClient(home.relay.url, observer.token) as watcher:
        await watcher.register(b_events.mailbox)
    home.start_hub()
    await sync_until([a], _has_clips(len(clips_a) + 1), limit=120)
    home.stop_hub()
    assert len(_complete_clips(a)) > len(clips_a)
    # B's relay token is revoked, and its keys open nothing sent after the removal.
    await sync_until([b], lambda s: True, limit=5)
    assert len(_complete_clips(b)) == len(clips_b)
    assert ClipStore(b / "clips").incomplete() == []
    assert await _readable_by(b, home, observer.token) == 0


async def _readable_by(client: Path, home: Home, token: str) -> int:
    """How many application messages sent after ``client``'s removal its keys still open,
    reading everything after its cursor with another token (as a relay or a thief could).

    Messages before the commit that removed it were rightly its to read (its relay token was
    revoked before it could fetch them); everything after that commit must stay closed."""
    data = DataDir(client)
    entry = next(g for g in data.load().groups if g.group == "events")
    cursor = int(data.sync_state(entry).get("cursor", 0))
    opened = 0
    async with RelayClient(home.relay.url, token) as relay:
        page = await relay.list_messages(entry.mailbox, after=cursor, limit=1000)
        assert page.messages, "the hub sent nothing after the removal"
        with Identity.open(data.mls / entry.state) as identity:
            members = identity.members(entry.group_id)
            removed = identity.signature_key not in {m.signature_key for m in members}
            for info in page.messages:
                try:
                    got = identity.process(entry.group_id, await relay.body_of(entry.mailbox, info))
                except CryptoError:
                    continue
                if got.commit is not None and got.commit.removed_self:
                    removed = True
                elif removed:
                    opened += got.kind == "application"
    assert removed, "the client never saw the commit that removed it"
    return opened
