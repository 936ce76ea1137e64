"""A walk-through of the end-to-end encryption core: `python -m privastead.demo --crypto`.

A hub and two clients form an MLS group, exchange messages, compare safety codes; the hub
rotates keys (a self-update that folds in a client's update proposal), removes a client, and
the removed client cannot read what follows. Everything runs locally on state files in a
temporary directory; nothing touches the network.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

from privastead.crypto import Identity
from privastead.errors import PrivasteadError


def step(text: str) -> None:
    print(f"==> {text}")


def show(text: str) -> None:
    print(f"    {text}")


def run(root: Path) -> None:
    with (
        Identity.create(root / "hub.mls", b"hub") as hub,
        Identity.create(root / "phone.mls", b"phone") as phone,
        Identity.create(root / "laptop.mls", b"laptop") as laptop,
    ):
        step("hub creates a group for camera 'front door'")
        gid = hub.create_group()
        show(f"group id {gid.hex()[:16]}…, epoch {hub.epoch(gid)}")

        step("pairing: the phone sends a key package; the hub adds it with the one-time secret")
        pairing_secret = secrets.token_bytes(32)  # shown to the owner as a QR code
        added = hub.add_members(gid, [phone.key_package()], psk=pairing_secret)
        phone.join(added.welcome, inviter_identity=b"hub", psk=pairing_secret)
        show(
            f"phone joined; safety codes: hub {hub.safety_code(gid)}  "
            f"phone {phone.safety_code(gid)}"
        )

        step("the laptop is added by the hub (it checks the hub's signature key)")
        added = hub.add_members(gid, [laptop.key_package()])
        phone.process(gid, added.commit)
        laptop.join(added.welcome, inviter_signature_key=hub.signature_key)
        codes = {c.name.decode(): c.safety_code(gid) for c in (hub, phone, laptop)}
        show(f"members: {', '.join(m.identity.decode() for m in hub.members(gid))}")
        show(f"safety codes match: {len(set(codes.values())) == 1} ({codes['hub']})")

        step("hub sends an encrypted event notification")
        ct = hub.encrypt(gid, b"motion at the front door, 07:42")
        for c in (phone, laptop):
            show(f"{c.name.decode()} reads: {c.process(gid, ct).data.decode()!r}")
        show(f"the relay only sees {len(ct)} opaque bytes")

        step("the phone asks for fresh keys; the hub folds that into its key rotation")
        proposal = phone.propose_update(gid)
        hub.process(gid, proposal)
        laptop.process(gid, proposal)
        commit = hub.self_update(gid)
        for c in (phone, laptop):
            r = c.process(gid, commit)
            assert r.commit is not None
            show(
                f"{c.name.decode()} applied the commit (updated: "
                f"{', '.join(u.decode() for u in r.commit.updated)}), epoch {c.epoch(gid)}"
            )
        show(f"new safety code on all sides: {hub.safety_code(gid)}")

        step("the hub removes the laptop")
        commit = hub.remove_members(gid, [b"laptop"])
        phone.process(gid, commit)
        r = laptop.process(gid, commit)
        show(f"laptop sees it was removed: {r.commit is not None and r.commit.removed_self}")

        step("the next clip is for the phone only")
        ct = hub.encrypt(gid, b"clip 0001, fragment 1")
        show(f"phone reads: {phone.process(gid, ct).data.decode()!r}")
        try:
            laptop.process(gid, ct)
            show("laptop read it: THIS SHOULD NOT HAPPEN")
            raise SystemExit(1)
        except PrivasteadError as e:
            show(f"laptop cannot: {type(e).__name__}: {e}")
    step("done: every step above was persisted atomically to a 0600 state file per device")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="privastead-demo-") as d:
        run(Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
