"""The client's side of pairing (protocol.md, "Pairing"; the hub's side is hub.admin.pairing).

KeyPackage of a throwaway pairing identity -> pairing mailbox; join the Welcome with the code's
secret as PSK (a relay or anyone without the code cannot produce it: ``JoinError``); send one
KeyPackage per (camera, group) inside that group; join each camera group from ``PairAccept``,
checking the inviter is the hub signature key the PSK-authenticated answer names; store the
device token; acknowledge the answer so the hub deletes the one-time mailbox.

``rejoin`` (``privastead-app resync --code``) is the same exchange for an already paired device
whose state the hub replaces (``privastead-hub pair --replace``): the fresh identities are built
beside the old state files (``*.rejoin.mls``) and swapped in only once every Welcome was joined
and the answer names this very device; a failure leaves the old state as it was.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass

from privastead.client.device import DataDir, DeviceInfo, GroupEntry
from privastead.clock import Clock
from privastead.crypto import Identity
from privastead.errors import (
    ConfigError,
    JoinError,
    PolicyError,
    RelayRejectedError,
    StateLockedError,
    StorageError,
)
from privastead.protocol.codec import decode_message
from privastead.protocol.groups import CLIENT_PAIRING_MEMBER, GROUPS, PAIRING_MEMBER
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.pairing_messages import PairAccept, PairKeyPackages
from privastead.relay.client import RelayClient, next_message


@dataclass(frozen=True)
class ClientPaired:
    info: DeviceInfo
    safety_code: str


async def pair(
    code: PairingCode, data: DataDir, device_name: str, *, clock: Clock, wait: float = 60.0
) -> ClientPaired:
    code.check_fresh(clock)
    if data.paired():
        raise ConfigError(f"{data.root} is already paired; use another --data-dir")
    cameras = code.hub_name.split(",")
    data.prepare()
    try:
        return await _run(code, data, device_name, cameras, clock, wait, None)
    except BaseException:
        # Leave nothing half-paired behind: the next attempt starts clean.
        for leftover in (data.mls, data.sync):
            shutil.rmtree(leftover, ignore_errors=True)
        raise


async def rejoin(
    code: PairingCode, data: DataDir, *, clock: Clock, wait: float = 60.0
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
        return await _run(code, data, old.device_name, code.hub_name.split(","), clock, wait, old)
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
) -> ClientPaired:
    deadline = min(float(code.expires), clock.time() + wait)
    pairing_path = data.root / "pairing.mls"
    pairing_path.unlink(missing_ok=True)
    try:
        async with RelayClient(code.relay_url, code.token) as relay:
            try:
                return await _pair(relay, code, data, device_name, cameras, deadline, clock, old)
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
) -> ClientPaired:
    """``old``: the device being replaced (its new states are built as ``*.rejoin.mls``)."""
    mailbox = code.mailbox
    suffix = _REJOIN if old is not None else ""
    with Identity.create(data.root / "pairing.mls", CLIENT_PAIRING_MEMBER) as pairing:
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
            seq, body = await next_message(relay, mailbox, sent.seq, deadline, clock)
            accept = decode_message(pairing.process(group_id, body).data)
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
