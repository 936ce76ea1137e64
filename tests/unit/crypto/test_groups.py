"""Groups through the Python facade: membership, policy, pairing, removal, FS and PCS."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_helpers import PSK, Group

from privastead.crypto import Ciphersuite, Identity, peek
from privastead.errors import (
    DecodeError,
    DecryptionError,
    DuplicateMessageError,
    GroupStateError,
    JoinError,
    PolicyError,
    PrivasteadError,
    StaleMessageError,
    WrongEpochError,
)


@pytest.mark.parametrize("n", [1, 2])
def test_two_and_three_member_groups_talk_and_agree_on_the_safety_code(
    make_group: Callable[[int], Group], n: int
) -> None:
    g = make_group(n)
    ct = g.hub.encrypt(g.gid, b"motion at the door", b"cam1")
    for c in g.clients:
        r = c.process(g.gid, ct)
        assert (r.kind, r.data, r.aad, r.sender, r.sender_index) == (
            "application",
            b"motion at the door",
            b"cam1",
            b"hub",
            0,
        )
        assert c.safety_code(g.gid) == g.hub.safety_code(g.gid)
        assert c.epoch(g.gid) == g.hub.epoch(g.gid) == n
    reply = g.clients[-1].encrypt(g.gid, b"ack")
    assert g.hub.process(g.gid, reply).data == b"ack"
    assert [m.identity for m in g.hub.members(g.gid)] == [b"hub"] + [
        f"client{i}".encode() for i in range(n)
    ]
    code = g.hub.safety_code(g.gid)
    assert len(code) == 14 and code.replace(" ", "").isdigit()


def test_hub_is_the_only_committer_and_folds_client_update_proposals(
    make_group: Callable[[int], Group],
) -> None:
    g = make_group(2)
    a, b = g.clients
    with pytest.raises(PolicyError):
        a.self_update(g.gid)
    with pytest.raises(PolicyError):
        a.remove_members(g.gid, [b"client1"])
    proposal = a.propose_update(g.gid)
    assert g.hub.process(g.gid, proposal).kind == "proposal"
    assert b.process(g.gid, proposal).kind == "proposal"
    old_code = g.hub.safety_code(g.gid)
    commit = g.hub.self_update(g.gid)
    for c in (a, b):
        r = c.process(g.gid, commit)
        assert r.commit is not None and r.commit.updated == (b"client0",)
    assert g.hub.safety_code(g.gid) == a.safety_code(g.gid) != old_code
    assert g.hub.last_handshake.messages == (commit,)
    assert b.process(g.gid, a.encrypt(g.gid, b"after")).data == b"after"


def test_hub_refuses_a_commit_from_a_client(make_identity: Callable[[bytes], Identity]) -> None:
    # The client creates a group of its own and invites the hub: there the client is the
    # committer; the hub checks commits come from it. Conversely a proposal from the
    # committer is refused by members.
    phone = make_identity(b"phone")
    hub = make_identity(b"hub")
    gid = phone.create_group()
    added = phone.add_members(gid, [hub.key_package()])
    hub.join(added.welcome, inviter_identity=b"phone")
    assert hub.committer(gid) == 0
    with pytest.raises(PolicyError):
        hub.self_update(gid)
    with pytest.raises(PolicyError):
        phone.propose_update(gid)


def test_pairing_with_psk_and_inviter_checks(make_identity: Callable[[bytes], Identity]) -> None:
    hub = make_identity(b"hub")
    phone = make_identity(b"phone")
    gid = hub.create_group()
    added = hub.add_members(gid, [phone.key_package()], psk=PSK)
    with pytest.raises(ValueError, match="inviter"):
        phone.join(added.welcome, psk=PSK)
    with pytest.raises(JoinError):
        phone.join(added.welcome, inviter_identity=b"hub", psk=b"x" * 32)
    with pytest.raises(JoinError):
        phone.join(added.welcome, inviter_identity=b"hub")
    with pytest.raises(JoinError):
        phone.join(added.welcome, inviter_signature_key=phone.signature_key, psk=PSK)
    assert phone.groups() == []
    assert phone.join(added.welcome, inviter_signature_key=hub.signature_key, psk=PSK) == gid
    assert phone.safety_code(gid) == hub.safety_code(gid)


def test_wrong_psk_leaves_the_state_file_byte_identical(
    make_identity: Callable[[bytes], Identity], tmp_path: Path
) -> None:
    hub = make_identity(b"hub")
    phone = make_identity(b"phone")
    gid = hub.create_group()
    added = hub.add_members(gid, [phone.key_package()], psk=PSK)
    before = (tmp_path / "phone").read_bytes()
    with pytest.raises(JoinError):
        phone.join(added.welcome, inviter_identity=b"hub", psk=bytes(32))
    assert (tmp_path / "phone").read_bytes() == before
    phone.join(added.welcome, inviter_identity=b"hub", psk=PSK)
    assert (tmp_path / "phone").read_bytes() != before


def test_removed_member_decrypts_nothing_new(make_group: Callable[[int], Group]) -> None:
    g = make_group(2)
    a, b = g.clients
    commit = g.hub.remove_members(g.gid, [b"client1"])
    ra = a.process(g.gid, commit)
    assert ra.commit is not None and ra.commit.removed == (b"client1",)
    rb = b.process(g.gid, commit)
    assert rb.commit is not None and rb.commit.removed_self
    assert b.groups() == []
    ct = g.hub.encrypt(g.gid, b"not for b")
    assert a.process(g.gid, ct).data == b"not for b"
    with pytest.raises(GroupStateError):
        b.process(g.gid, ct)
    with pytest.raises(PolicyError):
        g.hub.remove_members(g.gid, [0])


def test_tampered_truncated_replayed_and_wrong_group_messages(
    make_group: Callable[[int], Group],
) -> None:
    g = make_group(1)
    (c,) = g.clients
    other = g.hub.create_group()
    ct = g.hub.encrypt(g.gid, b"payload")
    failures: list[str] = []
    for i in range(len(ct) - 64, len(ct)):
        bad = bytearray(ct)
        bad[i] ^= 0x40
        with pytest.raises(PrivasteadError) as info:
            c.process(g.gid, bytes(bad))
        failures.append(str(info.value))
        assert isinstance(info.value, DecryptionError | DecodeError)
    # All authentication failures read alike.
    assert {f for f in failures if "decrypted" in f} == {
        "message could not be decrypted or authenticated"
    }
    with pytest.raises(DecodeError):
        c.process(g.gid, ct[:-1])
    with pytest.raises(PolicyError):
        c.process(other, ct)
    assert c.process(g.gid, ct).data == b"payload"
    with pytest.raises(DuplicateMessageError):
        c.process(g.gid, ct)


def test_epochs_future_is_wrong_epoch_and_old_is_stale(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (c,) = g.clients
    old = g.hub.encrypt(g.gid, b"old")
    commits = [g.hub.self_update(g.gid) for _ in range(4)]
    future = g.hub.encrypt(g.gid, b"future")
    with pytest.raises(WrongEpochError) as info:
        c.process(g.gid, future)
    assert (info.value.message_epoch, info.value.group_epoch) == (5, 1)
    assert peek(future).epoch == 5 and peek(future).content_type == "application"
    for commit in commits:
        c.process(g.gid, commit)
    assert c.process(g.gid, future).data == b"future"
    with pytest.raises(StaleMessageError):
        c.process(g.gid, old)


def test_forward_secrecy_state_copies_cannot_reread(
    make_group: Callable[[int], Group], tmp_path: Path
) -> None:
    g = make_group(1)
    (c,) = g.clients
    path = g.paths[b"client0"]
    before_update = tmp_path / "before-update"
    shutil.copy(path, before_update)
    early = g.hub.encrypt(g.gid, b"early")
    assert c.process(g.gid, early).data == b"early"
    for _ in range(3):
        c.process(g.gid, g.hub.self_update(g.gid))
    late = g.hub.encrypt(g.gid, b"late")
    assert c.process(g.gid, late).data == b"late"
    after = tmp_path / "after"
    shutil.copy(path, after)
    with Identity.open(after) as stolen:
        with pytest.raises(DuplicateMessageError):
            stolen.process(g.gid, late)  # a message decrypts once: its key is gone
        with pytest.raises(StaleMessageError):
            stolen.process(g.gid, early)  # earlier epochs' keys are gone
    # A copy from before the hub's self-update that never saw the commit cannot read after it.
    with Identity.open(before_update) as stale_copy, pytest.raises(WrongEpochError):
        stale_copy.process(g.gid, late)


def test_post_compromise_security_victims_update_locks_out_a_stolen_copy(
    make_group: Callable[[int], Group], tmp_path: Path
) -> None:
    g = make_group(1)
    (victim,) = g.clients
    stolen_path = tmp_path / "stolen"
    shutil.copy(g.paths[b"client0"], stolen_path)
    proposal = victim.propose_update(g.gid)
    g.hub.process(g.gid, proposal)
    commit = g.hub.self_update(g.gid)
    victim.process(g.gid, commit)
    ct = g.hub.encrypt(g.gid, b"healed")
    assert victim.process(g.gid, ct).data == b"healed"
    with Identity.open(stolen_path) as attacker:
        with pytest.raises(DuplicateMessageError):
            attacker.process(g.gid, proposal)  # the victim's own proposal, echoed
        with pytest.raises(PrivasteadError):
            attacker.process(g.gid, commit)
        with pytest.raises(PrivasteadError):
            attacker.process(g.gid, ct)


def test_chacha_suite_and_suite_mismatch(tmp_path: Path) -> None:
    with (
        Identity.create(
            tmp_path / "h", b"hub", ciphersuite=Ciphersuite.X25519_CHACHA20POLY1305
        ) as hub,
        Identity.create(tmp_path / "p", b"p", ciphersuite=Ciphersuite.X25519_CHACHA20POLY1305) as p,
        Identity.create(tmp_path / "q", b"q") as q,
    ):
        gid = hub.create_group()
        with pytest.raises(PolicyError):
            hub.add_members(gid, [q.key_package()])
        p.join(hub.add_members(gid, [p.key_package()]).welcome, inviter_identity=b"hub")
        assert p.ciphersuite is Ciphersuite.X25519_CHACHA20POLY1305
        assert p.process(gid, hub.encrypt(gid, b"c")).data == b"c"


def test_export_secret_batch_and_delete_group(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (c,) = g.clients
    assert g.hub.export_secret(g.gid, "clip", b"1", 32) == c.export_secret(g.gid, "clip", b"1", 32)
    with pytest.raises(ValueError):
        g.hub.export_secret(g.gid, "clip", b"", 0)
    cts = g.hub.encrypt_batch(g.gid, [b"a", b"b", b"c"], b"clip7")
    assert [c.process(g.gid, x).data for x in cts] == [b"a", b"b", b"c"]
    c.delete_group(g.gid)
    assert c.groups() == []
    with pytest.raises(GroupStateError):
        c.epoch(g.gid)
