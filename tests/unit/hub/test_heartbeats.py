"""The hub's heartbeats (hub/delivery/heartbeats.py) and scheduled key rotation
(hub/delivery/rotation.py), on
real groups and a real outbox, with a fake clock: no relay needed (nothing is uploaded, so
"sent" is what the outbox would have handed over)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from privastead.clock import FakeClock
from privastead.crypto import Identity
from privastead.hub.delivery.heartbeats import Heartbeats, sent_high
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.rotation import KeyRotation
from privastead.hub.delivery.sender import Sent
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.codec import Message
from privastead.protocol.messages import Heartbeat, Notification

EVENT = "e" * 32


def _groups(tmp: Path) -> tuple[HubGroups, Outbox]:
    outbox = Outbox(tmp / "outbox", quota_bytes=1 << 24)
    return HubGroups(tmp, outbox, ["cam"]), outbox


def _note(seq: int) -> Notification:
    return Notification("cam", EVENT, 1.0, 0.5, (), seq)


def test_sent_high_is_what_the_outbox_has_handed_over(tmp_path: Path) -> None:
    groups, outbox = _groups(tmp_path)
    try:
        events = groups.get("cam", "events")
        assert sent_high(events, outbox) is None
        for _ in range(3):
            events.sender.send(_note)
        queue = outbox.mailbox(events.mailbox)
        assert sent_high(events, outbox) is None  # all three still pending
        first = queue.first_pending()
        assert first is not None
        queue.mark_uploaded(first.seq)
        assert sent_high(events, outbox) == 0
        for entry in queue.pending():
            queue.mark_uploaded(entry.seq)
        assert sent_high(events, outbox) == 2
    finally:
        groups.close()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []

    def __call__(self, group: HubGroup, build: Callable[[int], Message]) -> Sent:
        def keep(app_seq: int) -> Message:
            message = build(app_seq)
            self.sent.append((group.key, message))
            return message

        return group.sender.send(keep)


async def test_heartbeats_carry_hub_time_epochs_sent_and_probe_answers(tmp_path: Path) -> None:
    groups, outbox = _groups(tmp_path)
    clock = FakeClock()
    send = Recorder()
    beats = Heartbeats(groups, outbox, send, clock=clock, interval=60, min_answer_gap=5)
    # Answers are sent on the control group's worker (the loop never waits for MLS).
    idle = groups.get("cam", "control").worker.wait_idle
    try:
        events = groups.get("cam", "events")
        events.sender.send(_note)
        queue = outbox.mailbox(events.mailbox)
        for entry in queue.pending():
            queue.mark_uploaded(entry.seq)
        beats.send_all()
        (key, beat) = send.sent[-1]
        assert key == "cam/control" and isinstance(beat, Heartbeat)
        assert beat.hub_time == clock.time()
        assert beat.sent == {"cam/events": 0}  # control has sent nothing yet: not listed
        assert set(beat.epochs) == {"cam/events", "cam/live", "cam/control"}
        assert beat.answers == ()
        # A probe right after a heartbeat waits out the gap; others meanwhile ride along.
        beats.answer("cam", "a" * 32)
        beats.answer("cam", "b" * 32)
        await idle()
        assert len(send.sent) == 1
        clock.advance(5)
        beats.answer("cam", "c" * 32)
        await idle()
        assert len(send.sent) == 2
        assert send.sent[-1][1].answers == ("a" * 32, "b" * 32, "c" * 32)  # type: ignore[union-attr]
        # A flood keeps only the newest 16.
        clock.advance(1)
        for i in range(40):
            beats.answer("cam", f"{i:032x}")
        await idle()
        assert len(send.sent) == 2
        clock.advance(5)
        beats.answer("cam", "f" * 32)
        await idle()
        last = send.sent[-1][1]
        assert isinstance(last, Heartbeat) and len(last.answers) == 16
        assert last.answers[-1] == "f" * 32 and f"{39:032x}" in last.answers
        assert f"{0:032x}" not in last.answers
    finally:
        groups.close()


def test_every_group_is_rotated_once_its_epoch_is_a_day_old(tmp_path: Path) -> None:
    groups, _ = _groups(tmp_path)
    clock = FakeClock()
    try:
        rotation = KeyRotation(groups, clock=clock, interval=86400)
        assert rotation.rotate_due() == 0  # first sight: the clock starts now
        clock.advance(86399)
        assert rotation.rotate_due() == 0
        events = groups.get("cam", "events")
        phone = Identity.create(tmp_path / "phone.mls", b"phone")
        events.add(phone.key_package())  # a commit restarts that group's clock
        epochs = groups.epochs()
        clock.advance(2)
        assert rotation.rotate_due() == 2  # live and control; events changed a second ago
        after = groups.epochs()
        assert after["cam/control"] == epochs["cam/control"] + 1
        assert after["cam/events"] == epochs["cam/events"]
        # Persisted: a restarted hub keeps counting from when it first saw each epoch.
        again = KeyRotation(groups, clock=clock, interval=86400)
        clock.advance(86400)
        assert again.rotate_due() == 3
        phone.close()
    finally:
        groups.close()


def test_a_rotation_commit_folds_a_pending_client_proposal(tmp_path: Path) -> None:
    groups, outbox = _groups(tmp_path)
    clock = FakeClock()
    try:
        control = groups.get("cam", "control")
        phone = Identity.create(tmp_path / "phone.mls", b"phone")
        added = control.add_device(phone.key_package())
        phone.join(added.result.welcome, inviter_signature_key=control.identity.signature_key)
        proposal = phone.propose_update(control.group_id)
        control.identity.process(control.group_id, proposal)
        rotation = KeyRotation(groups, clock=clock, interval=10)
        rotation.rotate_due()
        clock.advance(10)
        assert rotation.rotate_due() == 3
        commit = outbox.mailbox(control.mailbox).pending()[-1].read()
        got = phone.process(control.group_id, commit)
        assert got.commit is not None and got.commit.updated == (b"phone",)
        phone.close()
    finally:
        groups.close()


async def test_a_camera_change_is_sent_at_once_with_its_health(tmp_path: Path) -> None:
    groups, outbox = _groups(tmp_path)
    clock = FakeClock()
    send = Recorder()
    facts = {"connected": True, "offline_since": 0.0}
    beats = Heartbeats(
        groups,
        outbox,
        send,
        clock=clock,
        interval=60,
        min_answer_gap=5,
        health=lambda camera: dict(facts),
    )
    try:
        beats.send_all()
        first = send.sent[-1][1]
        assert isinstance(first, Heartbeat) and first.cameras == {"cam": facts}
        clock.advance(30)  # half an interval later the camera goes away
        facts.update(connected=False, offline_since=clock.time() - 10)
        idle = groups.get("cam", "control").worker.wait_idle  # beats are built on the worker
        beats.soon("cam")
        await idle()
        assert len(send.sent) == 2  # not at the next interval: now
        now = send.sent[-1][1]
        assert isinstance(now, Heartbeat) and now.cameras["cam"]["connected"] is False
        assert now.answers == ()
        beats.soon("cam")  # a flapping camera cannot flood the mailbox: the gap holds
        await idle()
        assert len(send.sent) == 2
    finally:
        groups.close()
