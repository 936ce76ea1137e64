"""Confirm before adding: the hub holds a device that knows the code as *pending* until the
owner approves it (``state.pending``; ``docs/design/pairing-short-code.md``).

The pairing waits here between the device's KeyPackages and the adds. The owner's answer is a
field of the pending record in ``devices.json``, written by whoever asks: the `pair` command's
y/N prompt, or `privastead-hub devices approve|reject` (through the running hub's admin socket,
or straight into the file when no hub runs). Reading the record is the one way the decision
arrives, so it works the same in the running hub and in a `pair` without one.

While it waits, anything else that arrives in the pairing mailbox means a second party used
the same code: the owner sees a security alert (and the record keeps it for `devices list`).
A rejected device, or one the owner did not confirm before the code expired, gets a
``PairReject`` inside the pairing group and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from privastead.clock import Clock
from privastead.errors import PairingRefusedError, RelayError
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.state.pending import Decision, PendingDevice
from privastead.hub.state.registry import DeviceRegistry
from privastead.protocol.pairing_messages import PairKeyPackages, PairReject

if TYPE_CHECKING:
    from privastead.hub.admin.pairing import PairingEvents
    from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between looks at the owner's answer and the pairing mailbox
READ_GRACE = 10.0  # how long a refusal waits for the device to read it before the mailbox goes

SECOND_DEVICE = (
    "SECURITY ALERT: a second device answered this pairing code. Someone else has seen the "
    "code. Approve only the device whose screen shows the safety code and key fingerprint "
    "above; if you are not sure, reject it and start `privastead-hub pair` again."
)
REJECTED = (
    "SECURITY ALERT: you rejected device {name!r}: it received nothing (no camera, no relay "
    "token). If it was not your device, someone else used your code: start "
    "`privastead-hub pair` again for a new code and keep it out of sight."
)
EXPIRED = (
    "device {name!r} was not confirmed before the code expired: it received nothing. Run "
    "`privastead-hub pair` again to pair it."
)


def pending_of(  # noqa: PLR0917 - one record from the pairing's facts
    pending_id: str,
    request: PairKeyPackages,
    safety: str,
    cameras: Sequence[str],
    replace: str | None,
    replaced_name: str | None,
    deadline: float,
    clock: Clock,
) -> PendingDevice:
    return PendingDevice(
        pending_id=pending_id,
        name=replaced_name or request.device_name,
        requested_at=clock.time(),
        expires_at=deadline,
        cameras=tuple(cameras),
        replace=replace,
        safety_code=safety,
        fingerprint=request.fingerprint(),
    )


async def await_decision(
    relay: RelayClient,
    data: HubDataDir,
    pending: PendingDevice,
    *,
    pairing_mailbox: str,
    seen: Collection[int],
    events: PairingEvents,
    refuse: Callable[[PairReject], Awaitable[Any]],
    clock: Clock,
    add: bool = True,
    keep: Callable[[], bool] = lambda: False,
) -> None:
    """Returns once the owner approved; raises :class:`PairingRefusedError` (after telling
    the device) when they rejected it or the code expired first. ``add`` False: the record
    exists already (a restarted hub resumes it). Cancelled while ``keep()`` (the hub is
    stopping), the record stays for the next start; otherwise it goes when this returns."""
    registry = DeviceRegistry(data)
    if add:
        await asyncio.to_thread(registry.add_pending, pending, clock.time())
    kept = False
    try:
        events.pending(pending)
        alerted = False
        after = min(seen)  # a second KeyPackage may have come before our Welcome
        while True:
            now = clock.time()
            record = (await asyncio.to_thread(registry.pending, now)).get(pending.pending_id)
            if record is None or pending.expired(now):
                await _tell(relay, pairing_mailbox, refuse, PairReject("expired"), clock)
                events.alert(EXPIRED.format(name=pending.name))
                raise PairingRefusedError(EXPIRED.format(name=pending.name), "expired")
            if record.decision is Decision.APPROVED:
                return
            if record.decision is Decision.REJECTED:
                await _tell(relay, pairing_mailbox, refuse, PairReject("rejected"), clock)
                log.warning("pairing: the owner rejected device %r", pending.name)
                events.alert(REJECTED.format(name=pending.name))
                raise PairingRefusedError(REJECTED.format(name=pending.name), "rejected")
            if not alerted:
                page = await relay.list_messages(pairing_mailbox, after=after, limit=8)
                after = max([after, *(m.seq for m in page.messages)])
                if any(m.seq not in seen for m in page.messages):
                    alerted = True
                    log.warning("pairing: a second device answered the code")
                    await asyncio.to_thread(
                        registry.alert_pending, pending.pending_id, SECOND_DEVICE, now
                    )
                    events.alert(SECOND_DEVICE)
            await asyncio.sleep(POLL)
    except asyncio.CancelledError:
        kept = keep()
        raise
    finally:
        if not kept:
            await asyncio.to_thread(registry.drop_pending, pending.pending_id, clock.time())


async def _tell(
    relay: RelayClient,
    mailbox: str,
    refuse: Callable[[PairReject], Awaitable[Any]],
    reject: PairReject,
    clock: Clock,
) -> None:
    """Send the refusal and give the device a moment to read it (its cursor on the pairing
    mailbox passes it) before the pairing ends and deletes the mailbox."""
    try:
        sent = await refuse(reject)
        until = clock.time() + READ_GRACE
        while clock.time() < until:
            cursors = (await relay.mailbox_info(mailbox)).devices
            values = cursors.values() if isinstance(cursors, dict) else []
            if any(isinstance(c, int) and c >= sent.seq for c in values):
                return
            await asyncio.sleep(POLL)
    except RelayError as e:  # the device then learns it from the code's expiry
        log.warning("pairing: could not tell the device (%s): %s", reject.reason, e)


__all__ = ["await_decision", "pending_of"]
