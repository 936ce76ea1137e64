"""The client's side of pairing (protocol.md, "Pairing"; the hub's side is hub.admin.pairing).

KeyPackage of a throwaway pairing identity -> pairing mailbox; join the Welcome with the code's
secret as PSK (a relay or anyone without the code cannot produce it: ``JoinError``); send one
KeyPackage per (camera, group) inside that group; join each camera group from ``PairAccept``,
checking the inviter is the hub signature key the PSK-authenticated answer names; store the
device token; acknowledge the answer so the hub deletes the one-time mailbox.

Between sending its KeyPackages and the answer, the device is *pending* on the hub: it shows
the pairing group's safety code and its key fingerprint (``on_waiting``) and waits, until the
code expires, for the owner to confirm. A ``PairReject`` (rejected, or expired) ends it with
:class:`PairingRefusedError` and nothing stored.

``rejoin`` (``privastead-app resync --code``) is the same exchange for an already paired device
whose state the hub replaces (``privastead-hub pair --replace``): the fresh identities are built
beside the old state files (``*.rejoin.mls``) and swapped in only once every Welcome was joined
and the answer names this very device; a failure leaves the old state as it was.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from privastead.client.device import DataDir, DeviceInfo, GroupEntry
from privastead.clock import Clock
from privastead.crypto import Identity
from privastead.errors import (
    ConfigError,
    CryptoError,
    JoinError,
    PairingRefusedError,
    PolicyError,
    RelayRejectedError,
    RelayUnavailableError,
    StateLockedError,
    StorageError,
)
from privastead.protocol.codec import decode_message
from privastead.protocol.groups import CLIENT_PAIRING_MEMBER, GROUPS, PAIRING_MEMBER
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.pairing_messages import PairAccept, PairKeyPackages, PairReject
from privastead.relay.client import RelayClient, next_message

#: Shown while the hub holds this device pending: (safety code, key fingerprint).
Waiting = Callable[[str, str], None]
#: How long after the code's expiry the device still listens for the hub's last word.
EXPIRY_GRACE = 15.0

REFUSED = {
    "rejected": (
        "the hub's owner rejected this device: nothing was shared with it. If that was a "
        "mistake, pair again with a new code"
    ),
    "expired": (
        "the hub's owner did not confirm this device before the code expired: nothing was "
        "shared. Run `privastead-hub pair` again for a new code"
    ),
}


def _ignore(_safety: str, _fingerprint: str) -> None:
    return None


@dataclass(frozen=True)
class ClientPaired:
    info: DeviceInfo
    safety_code: str


async def pair(
    code: PairingCode,
    data: DataDir,
    device_name: str,
    *,
    clock: Clock,
    wait: float = 60.0,
    on_waiting: Waiting = _ignore,
) -> ClientPaired:
    """``wait``: how long to wait for the hub's first answer; the owner's confirmation is
    awaited until the code expires."""
    code.check_fresh(clock)
    if data.paired():
        raise ConfigError(f"{data.root} is already paired; use another --data-dir")
    cameras = code.hub_name.split(",")
    data.prepare()
    try:
        return await _run(code, data, device_name, cameras, clock, wait, None, on_waiting)
    except BaseException:
        # Leave nothing half-paired behind: the next attempt starts clean.
        for leftover in (data.mls, data.sync):
            shutil.rmtree(leftover, ignore_errors=True)
        raise


async def rejoin(
    code: PairingCode,
    data: DataDir,
    *,
    clock: Clock,
    wait: float = 60.0,
    on_waiting: Waiting = _ignore,
) -> ClientPaired:
    """Join again with fresh keys, replacing this device's state (``pair --replace`` code)."""
    code.check_fresh(clock)
    old = data.load()
    for entry in old.groups:  # a running `listen` would overwrite the swapped-in state
        try:
            Identity.open(data.mls / entry.state).close()
        except StateLockedError:
            raise StateLockedError(
                f"{data.root} is in use (`privastead-app listen` or `ui`?): stop it, then "
                "run `privastead-app resync --code` again"
            ) from None
        except StorageError:
            pass  # corrupt or missing: exactly what is being replaced
    data.prepare()
    try:
        cameras = code.hub_name.split(",")
        return await _run(code, data, old.device_name, cameras, clock, wait, old, on_waiting)
    finally:
        for leftover in data.mls.glob(f"*{_REJOIN}.mls*"):
            leftover.unlink(missing_ok=True)


_REJOIN = ".rejoin"


async def _run(  # noqa: PLR0917 - the shared body of pair() and rejoin()
    code: PairingCode,
    data: DataDir,
    device_name: str,
    cameras: list[str],
    clock: Clock,
    wait: float,
    old: DeviceInfo | None,
    on_waiting: Waiting,
) -> ClientPaired:
    deadline = min(float(code.expires), clock.time() + wait)
    pairing_path = data.root / "pairing.mls"
    pairing_path.unlink(missing_ok=True)
    try:
        async with RelayClient(code.relay_url, code.token) as relay:
            try:
                return await _pair(
                    relay, code, data, device_name, cameras, deadline, clock, old, on_waiting
                )
            except RelayRejectedError as e:
                if e.status in (401, 403, 404):
                    raise PolicyError(
                        "the relay refused this pairing code: it was already used or has "
                        "expired; run `privastead-hub pair` again for a new one"
                    ) from None
                raise
    finally:
        pairing_path.unlink(missing_ok=True)


def _swap_in(data: DataDir, old: DeviceInfo, device_id: str, entries: list[GroupEntry]) -> None:
    """Every Welcome was joined: the fresh states replace the old ones (same device only)."""
    if device_id != old.device_id:
        raise PolicyError(
            f"this code re-adds device {device_id}, not this one ({old.device_id}); nothing "
            "was changed here: run `privastead-hub pair --replace` for this device"
        )
    for entry in entries:
        (data.mls / f"{entry.camera}-{entry.group}{_REJOIN}.mls").replace(data.mls / entry.state)


async def _pair(  # noqa: PLR0917 - one private step of pair()
    relay: RelayClient,
    code: PairingCode,
    data: DataDir,
    device_name: str,
    cameras: list[str],
    deadline: float,
    clock: Clock,
    old: DeviceInfo | None = None,
    on_waiting: Waiting = _ignore,
) -> ClientPaired:
    """``old``: the device being replaced (its new states are built as ``*.rejoin.mls``)."""
    mailbox = code.mailbox
    suffix = _REJOIN if old is not None else ""
    with Identity.create(data.root / "pairing.mls", CLIENT_PAIRING_MEMBER) as pairing:
        # Registered from the start: our cursor tells the hub we read its answer, even a
        # refusal, before it deletes the mailbox.
        await relay.register(mailbox)
        sent = await relay.upload(mailbox, pairing.key_package(), secrets.token_hex(16))
        seq, welcome = await next_message(relay, mailbox, sent.seq, deadline, clock)
        try:
            group_id = pairing.join(welcome, inviter_identity=PAIRING_MEMBER, psk=code.secret)
        except JoinError:
            raise PolicyError(
                "pairing failed: the hub's answer does not match this code (wrong code, or "
                "someone else answered); nothing was changed"
            ) from None
        identities: dict[tuple[str, str], Identity] = {}
        try:
            kps: dict[str, dict[str, bytes]] = {}
            for camera in cameras:
                for group in GROUPS:
                    path = data.mls / f"{camera}-{group}{suffix}.mls"
                    path.unlink(missing_ok=True)
                    ident = Identity.create(path, secrets.token_hex(16).encode())
                    identities[(camera, group)] = ident
                    kps.setdefault(camera, {})[group] = ident.key_package()
            request = PairKeyPackages(device_name=device_name, key_packages=kps)
            sent = await relay.upload(
                mailbox, pairing.encrypt(group_id, request.encode()), secrets.token_hex(16)
            )
            on_waiting(pairing.safety_code(group_id), request.fingerprint())
            seq, accept = await _answer(relay, pairing, group_id, mailbox, sent.seq, code, clock)
            if not isinstance(accept, PairAccept):
                raise PolicyError(
                    f"pairing: expected the hub's answer, got {type(accept).__name__}"
                )
            entries = []
            for grant in accept.cameras:
                for g in grant.groups:
                    ident = identities[(grant.camera, g.group)]
                    gid = ident.join(g.welcome, inviter_signature_key=g.hub_signature_key)
                    entries.append(
                        GroupEntry(
                            camera=grant.camera,
                            group=g.group,
                            mailbox=g.mailbox,
                            group_id=gid,
                            state=f"{grant.camera}-{g.group}.mls",
                            first_seq=g.first_seq,
                        )
                    )
        finally:
            for ident in identities.values():
                ident.close()
        safety = pairing.safety_code(group_id)
    if old is not None:
        _swap_in(data, old, accept.device_id, entries)
    info = DeviceInfo(
        hub_name=code.hub_name,
        relay_url=code.relay_url,
        device_id=accept.device_id,
        device_name=device_name,
        safety_code=safety,
        groups=tuple(entries),
    )
    await _start_reading(relay, code, data, accept, entries, info, seq)
    return ClientPaired(info, safety)


async def _answer(  # noqa: PLR0917 - one step of _pair()
    relay: RelayClient,
    pairing: Identity,
    group_id: bytes,
    mailbox: str,
    after: int,
    code: PairingCode,
    clock: Clock,
) -> tuple[int, object]:
    """The hub's answer once the owner decided: ``PairAccept``, or a refusal raised.

    What is not a message of our pairing group is skipped: another device that answered the
    same code uploads its KeyPackage here too (the hub alerts the owner about it)."""
    while True:
        try:
            seq, body = await next_message(
                relay, mailbox, after, float(code.expires) + EXPIRY_GRACE, clock
            )
        except RelayUnavailableError:
            if clock.time() < float(code.expires):
                raise
            raise PairingRefusedError(REFUSED["expired"], "expired") from None
        try:
            received = pairing.process(group_id, body)
        except CryptoError:
            after = seq
            continue
        break
    answer = decode_message(received.data)
    if isinstance(answer, PairReject):
        await relay.ack(mailbox, seq)  # the hub waits for this before it deletes the mailbox
        raise PairingRefusedError(REFUSED[answer.reason], answer.reason)
    return seq, answer


async def _start_reading(  # noqa: PLR0917 - the last step of _pair()
    relay: RelayClient,
    code: PairingCode,
    data: DataDir,
    accept: PairAccept,
    entries: list[GroupEntry],
    info: DeviceInfo,
    seq: int,
) -> None:
    # Start reading each mailbox right after the commit that added us (the hub registered our
    # token before it, so nothing later is gone); a hub that did not say where: after what is
    # already there (older epochs we cannot read).
    after = {(c.camera, g.group): g.after_seq for c in accept.cameras for g in c.groups}
    async with RelayClient(code.relay_url, accept.relay_token) as own:
        for entry in entries:
            await own.register(entry.mailbox)
            start = after.get((entry.camera, entry.group), 0)
            if start <= 0:
                start = (await own.list_messages(entry.mailbox, limit=1)).last_seq
            if start > 0:
                await own.ack(entry.mailbox, start)
            data.save_sync_state(entry, {"cursor": start})
    data.save(info, accept.relay_token)
    # A fresh start for the verdicts about the hub (a replaced device may have been told it
    # was removed under its old token, and old claims name the old leaves).
    for verdict in ("health", "withheld"):
        data.save_sync_state_raw(verdict, {})
    await relay.register(code.mailbox)
    await relay.ack(code.mailbox, seq)  # tells the hub we have its answer: it deletes the mailbox


__all__ = ["ClientPaired", "pair", "rejoin"]
