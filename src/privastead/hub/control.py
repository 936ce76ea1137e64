"""What clients send the hub: update proposals (any group) and requests (``control``).

The hub reads every group mailbox after its own cursor, small messages only (proposals and
requests are a few hundred bytes; its own clip fragments are not fetched back). Its own
messages fail to process and are skipped; a client's update proposal is stored by the core
and folded into a ``self_update`` commit right away; a ``ResendRequest`` is answered from the
outbox's archive of uploaded ciphertext, re-uploaded under a fresh resend message id (the relay
would treat the original id as a retry). A ``ReAddRequest`` is logged: re-adding a desynced
device without re-pairing is not wired yet.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.errors import CryptoError, RelayError, StorageError
from privastead.hub.groups import HubGroup, HubGroups
from privastead.hub.outbox import Outbox
from privastead.protocol.codec import decode_message
from privastead.protocol.messages import ResendRequest, resend_message_id
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

SMALL = 16 * 1024  # larger messages are the hub's own clip fragments: never fetched back
MAX_RESEND = 256  # messages answered per request, against a hostile or confused client


class ControlReader:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        sent_index: dict[tuple[str, int], int],
    ) -> None:
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.sent_index = sent_index  # ("camera/group", app seq) -> outbox seq
        self._path: Path = groups.data_dir / "hub-cursors.json"
        try:
            self._cursors: dict[str, int] = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            self._cursors = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self.proposals_folded = 0
        self.resent = 0

    async def poll(self) -> int:
        """One pass over every mailbox; how many client messages were handled."""
        handled = 0
        for group in self.groups:
            handled += await self._poll_group(group)
        return handled

    async def _poll_group(self, group: HubGroup) -> int:
        cursor = self._cursors.get(group.mailbox, 0)
        page = await self.relay.list_messages(group.mailbox, after=cursor, limit=200)
        handled = 0
        proposals = 0
        for info in page.messages:
            cursor = info.seq
            if info.size > SMALL:
                continue
            body = await self.relay.body_of(group.mailbox, info)
            try:
                received = group.identity.process(group.group_id, body)
            except CryptoError:
                continue  # our own message, or one for an epoch we left: nothing to do
            handled += 1
            if received.kind == "proposal":
                proposals += 1
            elif received.kind == "application":
                await self._request(group, received.data)
        if page.messages:
            self._cursors[group.mailbox] = cursor
            write_atomic(self._path, json.dumps(self._cursors).encode())
            await self.relay.ack(group.mailbox, cursor)
        if proposals:
            group.self_update()  # folds the stored proposals: clients get fresh keys
            self.proposals_folded += proposals
        return handled

    async def _request(self, group: HubGroup, data: bytes) -> None:
        try:
            message = decode_message(data)
        except CryptoError as e:
            log.warning("%s: malformed client message: %s", group.key, e)
            return
        if isinstance(message, ResendRequest):
            if message.camera != group.camera:
                return
            await self._resend(f"{message.camera}/{message.group}", message.ranges)
        else:
            log.info("%s: %s from a client (not handled yet)", group.key, type(message).__name__)

    async def _resend(self, key: str, ranges: tuple[tuple[int, int], ...]) -> None:
        camera, name = key.split("/")
        try:
            target = self.groups.get(camera, name)
        except StorageError:
            return
        queue = self.outbox.mailbox(target.mailbox)
        count = 0
        for first, last in ranges:
            for app_seq in range(first, last + 1):
                if count >= MAX_RESEND:
                    return
                count += 1
                seq = self.sent_index.get((key, app_seq))
                ciphertext = queue.archived(seq) if seq is not None else None
                if ciphertext is None:
                    log.info("%s: app seq %d is no longer held; cannot resend", key, app_seq)
                    continue
                attempt = min(self._attempts.get((target.mailbox, seq or 0), 0) + 1, 999)
                self._attempts[(target.mailbox, seq or 0)] = attempt
                try:
                    await self.relay.upload(
                        target.mailbox,
                        ciphertext,
                        resend_message_id(target.mailbox, seq or 0, attempt),
                    )
                    self.resent += 1
                except RelayError as e:
                    log.warning("%s: resend of %d failed: %s", key, app_seq, e)


__all__ = ["ControlReader"]
