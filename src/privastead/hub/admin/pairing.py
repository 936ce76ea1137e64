"""The hub's side of pairing (protocol.md, "Pairing"): code, PSK-keyed pairing group, adds.

1. a one-time mailbox ``P`` and a restricted token for it alone, expiring with the code;
2. the client's KeyPackage arrives in ``P``; a fresh two-member pairing group adds it with the
   code's secret as external PSK, and the Welcome goes back through ``P``;
3. inside that group the client sends one KeyPackage per (camera, group): they are
   authenticated by the PSK, so the hub adds them to its camera groups (normal commits);
4. the hub issues the device's own relay token with its owner account and answers with
   ``PairAccept`` (token, mailboxes, Welcomes, the hub's signature keys, first sequence numbers);
5. both sides show the pairing group's safety code; ``P`` is deleted once the client confirmed
   (acknowledged the answer), so the code cannot be used twice.

Between 3 and 4 the device is **pending** (``state.pending``, ``hub.admin.confirm``): the owner
compares the safety code and the device's key fingerprint and approves or rejects it; until
then it has no leaf, no Welcome and no token, and it expires with the code. A rejected or
expired device is told so inside the pairing group (``PairReject``).

The **short code** (``417-acorn-shiny``, ``relay.short_channel``) is a third way to the same
code, beside the QR and the long text: a nameplate mailbox where a PAKE keyed by the short code
carries the whole pairing code to the device, sealed; the device then runs steps 1-5 above. A
failed short exchange (wrong words, a relay that ran the exchange itself, a second device)
burns it and ends this pairing with a security alert.

Nothing touches the camera groups before step 3 succeeded and the owner approved. The camera
names travel in the code's hub-name field (``"cam1,cam2"``): the client must know which
KeyPackages to send.

With ``replace=DEVICE_ID`` (``privastead-hub pair --replace``, hub-admin.md) the code is for one
known device whose state is lost or desynced, its ``control`` group included: the same
PSK-authenticated exchange, but the hub removes that device's stale leaves before adding the
fresh KeyPackages, issues it a new relay token (revoking the old one) and keeps its one record
in ``devices.json``. Other members just process the commits.

Every MLS call on a hub group runs on that group's worker (``hub.delivery.worker``, the hub's
concurrency rule), in order with the cameras' messages; the one-time pairing group's calls run
in a thread. The loop only awaits them and the relay round trips.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from privastead.clock import Clock
from privastead.crypto import Identity, ShortCodeExchange
from privastead.errors import PairingMismatchError, PolicyError, RelayError
from privastead.hub.admin.confirm import await_decision, pending_of
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.state.groups import HubGroups
from privastead.hub.state.pending import PendingDevice
from privastead.hub.state.registry import Device, DeviceRegistry, DeviceStatus, Leaf
from privastead.protocol.codec import decode_message
from privastead.protocol.groups import GROUPS, PAIRING_MEMBER
from privastead.protocol.messages import message_id
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.pairing_messages import (
    CameraGrant,
    PairAccept,
    PairKeyPackages,
    PairReject,
)
from privastead.protocol.short_code import ShortCode, exchange_context, generate
from privastead.relay.client import RelayClient, next_message
from privastead.relay.short_channel import ShortChannel

log = logging.getLogger(__name__)


class PairingEvents(Protocol):
    """What a pairing shows the owner, as it happens (the CLI's screen, or admin frames)."""

    async def code(
        self, code: PairingCode, short: ShortCode | None, cameras: Sequence[str]
    ) -> None: ...

    def pending(self, device: PendingDevice) -> None: ...

    def alert(self, text: str) -> None: ...

    def safety(self, safety: str) -> None: ...


REFUSAL_GRACE = 30.0  # seconds the pairing mailbox outlives its code

SHORT_CODE_BURNED = (
    "SECURITY ALERT: the short code's exchange failed: {why} If you did not just mistype "
    "the code on your device, someone else (a person who saw the code, or the relay) tried "
    "to use it. Nothing was shared. Start `privastead-hub pair` again for a new code and "
    "keep it out of sight."
)


@dataclass(frozen=True)
class Paired:
    device_id: str
    device_name: str
    safety_code: str
    cameras: tuple[str, ...]


class HubPairing:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        relay_url: str,
        *,
        clock: Clock,
        ttl: float = 600.0,
        uploader: Uploader | None = None,
        keep_on_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """``uploader``: the running hub's (so one task uploads each mailbox); by default a
        fresh one, for a hub that is not running. ``keep_on_stop()``: whether a cancelled
        pairing is the hub stopping (a pending device then stays, to be resumed)."""
        self.keep_on_stop = keep_on_stop
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.relay_url = relay_url
        self.clock = clock
        self.ttl = ttl
        self.uploader = uploader or Uploader(outbox, relay, clock=clock)
        self.short: ShortCode | None = None
        self._short_mailbox = ""

    async def start(self, cameras: Sequence[str], *, short: bool = True) -> PairingCode:
        """Create the pairing mailbox and token; the code to show. With ``short``, also a
        nameplate mailbox for the short code (``self.short``)."""
        mailbox = secrets.token_hex(16)
        # The mailbox and its token outlive the code a little: a device still pending when
        # the code expires must be able to read the hub's "expired" answer.
        life = int(self.ttl + REFUSAL_GRACE)
        await self.relay.create_mailbox(mailbox, ttl_seconds=life)
        token = await self.relay.create_restricted_token([mailbox], life, label="pairing")
        self._token_id = token.token_id
        code = PairingCode.new(
            relay_url=self.relay_url,
            token=token.token,
            hub_name=",".join(cameras),
            clock=self.clock,
            ttl=self.ttl,
            mailbox=mailbox,
        )
        if short:
            # A nameplate lives at most ten minutes (the relay's limit): so does the short code.
            short_ttl = int(min(self.ttl, 600))
            self._short_mailbox = secrets.token_hex(16)
            await self.relay.create_mailbox(self._short_mailbox, ttl_seconds=short_ttl)
            plate = await self.relay.allocate_nameplate(self._short_mailbox, short_ttl)
            self.short = generate(int(plate.nameplate))
        return code

    async def _serve_short(self, code: PairingCode, events: PairingEvents) -> None:
        """Hand the whole code to the device that knows the short one; a failure burns it."""
        assert self.short is not None
        short = self.short
        context = exchange_context(self._short_mailbox, short.nameplate)
        exchange = ShortCodeExchange("hub", short.secret, context)
        channel = ShortChannel(self.relay, self._short_mailbox, exchange, self.clock)
        try:
            await channel.run_hub(code.to_text().encode("ascii"), float(code.expires))
        except PairingMismatchError as e:
            log.warning("pairing: the short code was burned: %s", e)
            events.alert(SHORT_CODE_BURNED.format(why=e))
            raise

    async def finish(
        self,
        code: PairingCode,
        cameras: Sequence[str],
        events: PairingEvents,
        *,
        replace: str | None = None,
    ) -> Paired:
        """Run steps 2-5 until the code expires. Raises ``PolicyError`` on timeout,
        ``PairingRefusedError`` for a device the owner rejected or did not confirm in time,
        ``PairingMismatchError`` when the short code was burned.

        ``replace``: the id of a paired device to re-add with the client's fresh KeyPackages."""
        deadline = float(code.expires)
        short = asyncio.ensure_future(self._serve_short(code, events)) if self.short else None
        # The pairing group's state lives in the data directory (0700), named by the id the
        # device gets if it becomes pending: a restarted hub can then resume waiting for the
        # owner's answer (``resume``).
        pending_id = secrets.token_hex(16)
        paths = self.groups.paths
        paths.pairing.mkdir(mode=0o700, exist_ok=True)
        keep = False
        try:
            pairing = Identity.create(paths.pairing_state(pending_id), PAIRING_MEMBER)
            try:
                main = asyncio.ensure_future(
                    self._exchange(pairing, pending_id, code, cameras, deadline, events, replace)
                )
                return await _first_failure(main, short)
            except asyncio.CancelledError:
                keep = self.keep_on_stop()
                raise
            finally:
                pairing.close()
        finally:
            if not keep:
                forget_pairing_state(paths, pending_id)
                await self._cleanup(code.mailbox)

    async def resume(self, pending: PendingDevice, events: PairingEvents) -> Paired:
        """Finish a pairing a previous hub process held pending (it stopped or crashed):
        wait for the owner's answer, then add the device as ``finish`` would have."""
        self._token_id = pending.token_id
        paths = self.groups.paths
        request = decode_message(base64.b64decode(pending.request))
        if not isinstance(request, PairKeyPackages):
            raise PolicyError("pairing: the pending device's saved request is damaged")
        group_id = bytes.fromhex(pending.group_id)
        keep = False
        try:
            pairing = Identity.open(paths.pairing_state(pending.pending_id))
            try:
                await self._decision(pairing, group_id, pending, {pending.after_seq}, events, False)
                return await self._admit(
                    pairing,
                    group_id,
                    request,
                    list(pending.cameras),
                    pending.replace,
                    pending.mailbox,
                    pending.expires_at,
                    pending.safety_code,
                )
            except asyncio.CancelledError:
                keep = self.keep_on_stop()
                raise
            finally:
                pairing.close()
        finally:
            if not keep:
                forget_pairing_state(paths, pending.pending_id)
                await self._cleanup(pending.mailbox)

    async def _decision(  # noqa: PLR0917 - the confirm step of _exchange() and resume()
        self,
        pairing: Identity,
        group_id: bytes,
        pending: PendingDevice,
        seen: set[int],
        events: PairingEvents,
        add: bool,
    ) -> None:
        mailbox = pending.mailbox

        def refuse(reject: PairReject) -> Awaitable[object]:
            data = pairing.encrypt(group_id, reject.encode())
            return self.relay.upload(mailbox, data, secrets.token_hex(16))

        await await_decision(
            self.relay,
            self.groups.paths,
            pending,
            pairing_mailbox=mailbox,
            seen=seen,
            events=events,
            refuse=refuse,
            clock=self.clock,
            add=add,
            keep=self.keep_on_stop,
        )

    async def _exchange(  # noqa: PLR0917 - the private body of finish()
        self,
        pairing: Identity,
        pending_id: str,
        code: PairingCode,
        cameras: Sequence[str],
        deadline: float,
        events: PairingEvents,
        replace: str | None,
    ) -> Paired:
        mailbox = code.mailbox
        if replace is not None and DeviceRegistry(self.groups.paths).get(replace) is None:
            raise PolicyError(f"no paired device {replace!r} to replace")
        kp_seq, key_package = await next_message(self.relay, mailbox, 0, deadline, self.clock)
        group_id = pairing.create_group()
        added = await asyncio.to_thread(
            pairing.add_members, group_id, [key_package], psk=code.secret
        )
        sent = await self.relay.upload(mailbox, added.welcome, secrets.token_hex(16))
        seq, body = await next_message(self.relay, mailbox, sent.seq, deadline, self.clock)
        received = await asyncio.to_thread(pairing.process, group_id, body)
        request = decode_message(received.data)
        if not isinstance(request, PairKeyPackages):
            raise PolicyError(f"pairing: expected key packages, got {type(request).__name__}")
        missing = [
            f"{c}/{g}" for c in cameras for g in GROUPS if g not in request.key_packages.get(c, {})
        ]
        if missing:
            raise PolicyError(f"pairing: the client sent no key package for {', '.join(missing)}")
        # Confirm before adding: the device waits, holding nothing, until the owner decides.
        safety = pairing.safety_code(group_id)
        known = DeviceRegistry(self.groups.paths).get(replace) if replace else None
        name = known.name if known else None
        pending = dataclasses.replace(
            pending_of(pending_id, request, safety, cameras, replace, name, deadline, self.clock),
            mailbox=mailbox,
            token_id=self._token_id,
            group_id=group_id.hex(),
            request=base64.b64encode(received.data).decode("ascii"),
            after_seq=seq,
        )
        events.safety(safety)
        await self._decision(pairing, group_id, pending, {kp_seq, sent.seq, seq}, events, True)
        return await self._admit(
            pairing, group_id, request, cameras, replace, mailbox, deadline, safety
        )

    async def _admit(  # noqa: PLR0917 - the adds once the owner approved
        self,
        pairing: Identity,
        group_id: bytes,
        request: PairKeyPackages,
        cameras: Sequence[str],
        replace: str | None,
        mailbox: str,
        deadline: float,
        safety: str,
    ) -> Paired:
        for camera in cameras:
            for name in GROUPS:  # exist before the client registers on them
                group_mailbox = self.groups.get(camera, name).mailbox
                await self.relay.create_mailbox(group_mailbox)
                await self.relay.register(group_mailbox)  # client messages wait for the hub
        # Read now, not at start: the control reader may have re-added a leaf meanwhile.
        old = DeviceRegistry(self.groups.paths).get(replace) if replace else None
        if replace is not None and old is None:
            raise PolicyError(f"device {replace!r} was removed while pairing")
        if old is not None and old.status is not DeviceStatus.PAIRED:
            raise PolicyError(f"device {replace!r} is being removed: pair it anew afterwards")
        name = old.name if old else request.device_name
        # The device's name stays between hub and device (it came inside the pairing group):
        # the relay gets an unnamed device and knows it by a random id.
        device = await self.relay.create_device()
        # Registered before its add commits exist, the device's mailboxes keep everything from
        # them on, even what others acknowledge before the client itself registers.
        async with RelayClient(self.relay_url, device.token) as own:
            for camera in cameras:
                for group_name in GROUPS:
                    await own.register(self.groups.get(camera, group_name).mailbox)
        stale = dict(old.leaves) if old else {}
        grants, leaves, commits = await self._add_to_groups(cameras, request, stale)
        # Recorded at once (no await since the commits): a cancelled pairing leaves no leaf
        # that `devices list|remove` does not know about.
        device_id = await asyncio.to_thread(self._record, replace, name, leaves, device.device_id)
        # The camera groups' commits go out before the answer: the client's Welcomes are for
        # the epoch after them, and nobody may see a later message first.
        for camera in cameras:
            for group_name in GROUPS:
                await self.uploader.drain(self.groups.get(camera, group_name).mailbox)
        grants = await self._with_relay_seqs(grants, commits)
        accept = PairAccept(device_id=device_id, relay_token=device.token, cameras=tuple(grants))
        if old is not None and old.relay_device:
            await self._revoke(old.relay_device)  # the lost device's old token
        answer = await self.relay.upload(
            mailbox, pairing.encrypt(group_id, accept.encode()), secrets.token_hex(16)
        )
        await self._wait_confirmed(mailbox, answer.seq, deadline)
        return Paired(device_id, name, safety, tuple(cameras))

    def _record(
        self, replace: str | None, name: str, leaves: dict[str, Leaf], relay_device: str
    ) -> str:
        """Write ``devices.json``: the replaced device's record, or a new one. Its id."""
        registry = DeviceRegistry(self.groups.paths)
        if replace is not None:
            registry.replace_leaves(replace, leaves, relay_device)
            return replace
        # Our own id for the device (the relay's ids have another format and stay on the hub).
        device_id = secrets.token_hex(16)
        registry.add(Device(device_id, name, self.clock.time(), relay_device, dict(leaves)))
        return device_id

    async def _revoke(self, relay_device: str) -> None:
        try:
            await self.relay.remove_device(relay_device)
        except RelayError as e:
            if getattr(e, "status", None) != 404:
                raise

    async def _with_relay_seqs(
        self, grants: list[CameraGrant], commits: dict[str, tuple[int, bytes]]
    ) -> list[CameraGrant]:
        """Each grant with the relay seq of its add commit (``after_seq``).

        The commit is uploaded already; uploading the same bytes under the same message id
        again is answered as a duplicate carrying the seq the relay gave it (stored once)."""
        out = []
        for grant in grants:
            groups = []
            for g in grant.groups:
                outbox_seq, commit = commits[g.mailbox]
                sent = await self.relay.upload(g.mailbox, commit, message_id(g.mailbox, outbox_seq))
                if not sent.duplicate:
                    log.warning("%s: the relay had no receipt of the add commit", g.mailbox[:8])
                groups.append(dataclasses.replace(g, after_seq=sent.seq))
            out.append(CameraGrant(camera=grant.camera, groups=tuple(groups)))
        return out

    async def _add_to_groups(
        self, cameras: Sequence[str], request: PairKeyPackages, stale: dict[str, Leaf]
    ) -> tuple[list[CameraGrant], dict[str, Leaf], dict[str, tuple[int, bytes]]]:
        """Add the client's KeyPackages, first removing the ``stale`` leaves of a device
        being replaced. Returns the grants, the device's new leaf per ``"camera/group"`` and,
        per mailbox, the outbox seq and bytes of the add commit."""
        grants: list[CameraGrant] = []
        leaves: dict[str, Leaf] = {}
        commits: dict[str, tuple[int, bytes]] = {}
        for camera in cameras:
            group_grants = []
            for name in GROUPS:
                group = self.groups.get(camera, name)
                key_package = request.key_packages[camera][name]
                added = await group.worker.call(group.add_device, key_package, stale.get(group.key))
                commits[group.mailbox] = (added.outbox_seq, added.result.commit)
                leaves[group.key] = added.leaf
                group_grants.append(added.grant)
            grants.append(CameraGrant(camera=camera, groups=tuple(group_grants)))
        return grants, leaves, commits

    async def _wait_confirmed(self, mailbox: str, seq: int, deadline: float) -> None:
        """Until the client acknowledged our answer (it then has everything it needs)."""
        while self.clock.time() < deadline:
            info = await self.relay.mailbox_info(mailbox)
            cursors = info.devices
            values = cursors.values() if isinstance(cursors, dict) else []
            if any(int(c) >= seq for c in values if isinstance(c, int)):
                return
            await asyncio.sleep(0.2)
        log.warning("pairing: the client did not confirm; it may have to pair again")

    async def abandon(self, code: PairingCode) -> None:
        """Give up on a started code before ``finish`` (its mailbox and token go now)."""
        await self._cleanup(code.mailbox)

    async def _cleanup(self, mailbox: str) -> None:
        for gone in (mailbox, self._short_mailbox):
            if not gone:
                continue
            try:
                await self.relay.delete_mailbox(gone)
            except RelayError as e:
                log.warning("pairing cleanup: %s", e)
        try:
            await self.relay.revoke_token(self._token_id)
        except RelayError as e:
            log.warning("pairing cleanup: %s", e)


def forget_pairing_state(paths: HubDataDir, pending_id: str) -> None:
    """Delete a pairing group's state file (and its lock or temporary siblings)."""
    state = paths.pairing_state(pending_id)
    for leftover in state.parent.glob(f"{state.name}*"):
        leftover.unlink(missing_ok=True)


async def _first_failure(
    main: asyncio.Future[Paired], short: asyncio.Future[None] | None
) -> Paired:
    """``main``'s result, unless the short-code exchange fails first (then that error)."""
    try:
        if short is not None:
            both: set[asyncio.Future[Any]] = {main, short}
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if short.done() and not short.cancelled() and short.exception() is not None:
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await main
                short.result()  # raises its error
        return await main
    finally:
        for task in (main, short):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


__all__ = ["HubPairing", "Paired", "PairingEvents", "forget_pairing_state"]
