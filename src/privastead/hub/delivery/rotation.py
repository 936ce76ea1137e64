"""Every group advances on a schedule: no epoch lives longer than ``interval`` (24 h by default).

``events`` changes epoch before every clip and ``live`` before every session, and any group
changes when a client's update proposal is folded in or a device comes or goes; a quiet group
(``control`` above all: heartbeats, live requests, re-add grants) could otherwise keep one
epoch for months. ``KeyRotation`` notes when each group's epoch was first seen, in
``rotation.json`` (so a hub restarted daily still rotates), and commits a self-update (fresh
keys for the hub's path; folding any client proposals) to each group whose epoch is older than
``interval``, checking every ``check_every`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.clock import Clock
from privastead.errors import CryptoError, StorageError
from privastead.hub.state.groups import HubGroups

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 86400.0


class KeyRotation:
    def __init__(self, groups: HubGroups, *, clock: Clock, interval: float = DEFAULT_INTERVAL):
        if interval <= 0:
            raise ValueError("the key rotation interval must be positive")
        self.groups = groups
        self.clock = clock
        self.interval = interval
        self.check_every = min(interval / 10, 600.0)
        self._path = groups.paths.rotation
        self._seen = self._load(self._path)  # key -> [epoch, hub time it was first seen]
        self.rotated = 0

    @staticmethod
    def _load(path: Path) -> dict[str, list[float]]:
        try:
            data = json.loads(path.read_bytes())
            return {str(k): [float(v[0]), float(v[1])] for k, v in dict(data).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, IndexError, KeyError):
            log.warning("rotation.json is unreadable: every group's epoch starts its clock now")
            return {}

    def due(self) -> list[str]:
        """The groups whose epoch is at least ``interval`` old (noting new epochs)."""
        now = self.clock.time()
        out = []
        changed = False
        for group in self.groups:
            epoch = float(group.identity.epoch(group.group_id))
            seen = self._seen.get(group.key)
            if seen is None or seen[0] != epoch or seen[1] > now:
                self._seen[group.key] = [epoch, now]
                changed = True
            elif now - seen[1] >= self.interval:
                out.append(group.key)
        if changed:
            self._save()
        return out

    def rotate_due(self) -> int:
        """Commit a self-update to every group that is due; how many. Synchronous: for callers
        that own every group (tests, tools); the running hub uses ``rotate_due_queued``."""
        done = sum(self._rotate(key) for key in self.due())
        self._finish(done)
        return done

    async def rotate_due_queued(self) -> int:
        """``rotate_due`` with each group's commit (and the state reads) on its worker."""
        done = 0
        due = await asyncio.to_thread(self.due)  # reads every epoch, may write rotation.json
        for key in due:
            camera, name = key.split("/", 1)
            done += await self.groups.get(camera, name).worker.call(self._rotate, key)
        await asyncio.to_thread(self._finish, done)
        return done

    def _rotate(self, key: str) -> int:
        camera, name = key.split("/", 1)
        group = self.groups.get(camera, name)
        try:
            group.self_update()
        except (CryptoError, StorageError) as e:
            log.warning("%s: scheduled key rotation failed: %s", key, e)
            return 0
        self._seen[key] = [float(group.identity.epoch(group.group_id)), self.clock.time()]
        return 1

    def _finish(self, done: int) -> None:
        if done:
            self._save()
            self.rotated += done
            log.info("rotated the keys of %d group(s) on schedule", done)

    def _save(self) -> None:
        write_atomic(self._path, json.dumps(self._seen, sort_keys=True).encode())

    async def run(self) -> None:
        while True:
            try:
                await self.rotate_due_queued()
            except Exception:  # the schedule must never stop the hub
                log.exception("key rotation failed")
            await self.clock.sleep(self.check_every)


__all__ = ["DEFAULT_INTERVAL", "KeyRotation"]
