"""A work queue shared by accounts without letting one of them take it over.

Each key (an account) has its own FIFO of at most ``per_key_queue`` jobs and at most
``per_key_running`` jobs running at once; keys are served round-robin; at most ``running``
jobs run in all and at most ``queued`` wait in all (the last-resort global limits). So an
account whose webhook accepts connections and never answers holds ``per_key_running`` slots
until its timeouts fire, and every other account keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Generic, TypeVar

from privastead import compat

J = TypeVar("J")


class FairQueue(Generic[J]):
    def __init__(
        self,
        run: Callable[[J], Coroutine[Any, Any, None]],
        *,
        running: int,
        queued: int,
        per_key_running: int,
        per_key_queue: int,
    ) -> None:
        self._run = run
        self._max_running = running
        self._max_queued = queued
        self._key_running = per_key_running
        self._key_queue = per_key_queue
        self._queues: dict[str, deque[J]] = {}
        self._active: dict[str, int] = {}
        self._order: deque[str] = deque()  # keys with queued jobs, in serving order
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()  # set whenever nothing is queued or running
        self._idle.set()
        self.queued = 0

    @property
    def running(self) -> int:
        return len(self._tasks)

    def submit(self, key: str, job: J) -> bool:
        """Queue ``job`` for ``key``; False (dropped) when its share or the queue is full."""
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        if len(q) >= self._key_queue or self.queued >= self._max_queued:
            if not q:
                del self._queues[key]
            return False
        if not q:
            self._order.append(key)
        q.append(job)
        self.queued += 1
        self._idle.clear()
        self._pump()
        return True

    def _pump(self) -> None:
        idle_turns = 0
        while (
            self._order and len(self._tasks) < self._max_running and idle_turns < len(self._order)
        ):
            key = self._order.popleft()
            if self._active.get(key, 0) >= self._key_running:
                self._order.append(key)  # busy: its turn comes again
                idle_turns += 1
                continue
            idle_turns = 0
            q = self._queues[key]
            job = q.popleft()
            self.queued -= 1
            if q:
                self._order.append(key)
            else:
                del self._queues[key]
            self._active[key] = self._active.get(key, 0) + 1
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(partial(self._done, key=key))

    def _done(self, task: asyncio.Task[None], key: str) -> None:
        self._tasks.discard(task)
        left = self._active[key] - 1
        if left:
            self._active[key] = left
        else:
            del self._active[key]
        if not task.cancelled():
            task.exception()  # retrieved: the runner logs its own failures
        self._pump()
        if not self._tasks and not self.queued:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Let queued and running jobs finish for ``grace`` seconds, then cancel the rest."""
        with contextlib.suppress(TimeoutError):
            async with compat.timeout(grace):
                await self._idle.wait()
        self._queues.clear()
        self._order.clear()
        self.queued = 0
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["FairQueue"]
