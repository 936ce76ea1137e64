"""One serial worker thread per MLS group: the only place its crypto and durable writes run.

The hub's concurrency rule (``docs/design/hub-concurrency.md``): the event loop never waits on
disk or on MLS. Whatever touches a group (encrypting a clip fragment, a heartbeat or a live
fragment, a commit, a decryption, the outbox write that makes a message durable) is handed to
that group's worker:

- ``submit(fn, *args)`` from the loop queues the job and returns at once (camera callbacks,
  which must not wait); jobs run in submission order, so a group's messages keep their order;
- ``await call(fn, *args)`` queues it and waits for its result (control, live, admin, rotation);
- a job that submits to its own group runs in place: it already holds the group;
- ``defer(fn, *args)`` queues behind everything waiting, also from the worker itself: a job
  that did a bounded share of its work continues later, letting other callers' jobs run in
  between (``drain`` and ``wait_idle`` wait for such continuations too); once the worker is
  closing it refuses (returns False) and the job goes on in place.

One thread per group keeps ``GroupSender``'s rule (calls on a group never overlap) without a
lock, lets different groups and cameras encrypt in parallel (the Rust core releases the GIL),
and keeps a slow disk from holding up packet routing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class GroupWorker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"group-{name}", initializer=self._started
        )
        self._thread: threading.Thread | None = None
        self.jobs = 0
        self.failed = 0
        self._deferred = 0  # continuations queued by ``defer`` and not yet run
        self._closing = False
        self._lock = threading.Lock()

    def _started(self) -> None:
        self._thread = threading.current_thread()

    def on_worker(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[..., R], *args: Any) -> concurrent.futures.Future[R]:
        """Run ``fn(*args)`` after every job submitted before; never waits. A job that raises
        is logged (nobody may be waiting for it) and its future holds the exception."""
        if self.on_worker():
            done: concurrent.futures.Future[R] = concurrent.futures.Future()
            try:
                done.set_result(self._run(fn, *args))
            except BaseException as exc:
                done.set_exception(exc)
            return done
        return self._executor.submit(self._run, fn, *args)

    def defer(self, fn: Callable[..., R], *args: Any) -> bool:
        """Queue ``fn(*args)`` behind every job waiting, even when called on the worker.
        False once the worker is closing (it takes no new job): the caller goes on in place."""
        with self._lock:
            if self._closing:
                return False
            self._deferred += 1
            self._executor.submit(self._run_deferred, fn, *args)
            return True

    @property
    def closing(self) -> bool:
        """``close`` has begun: the worker runs what is queued and takes no new job."""
        with self._lock:
            return self._closing

    def _run_deferred(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return self._run(fn, *args)
        finally:
            with self._lock:
                self._deferred -= 1

    def _pending_continuations(self) -> bool:
        with self._lock:
            return self._deferred > 0

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` on the worker, in order with the other jobs, and return its result."""
        if self.on_worker():
            return fn(*args)
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    def _run(self, fn: Callable[..., R], *args: Any) -> R:
        self.jobs += 1
        try:
            return fn(*args)
        except Exception:
            self.failed += 1
            log.exception("group %s: a queued job failed", self.name)
            raise

    def drain(self) -> None:
        """Block until every job submitted so far, and what it deferred, has run (for
        shutdown and tests)."""
        if not self.on_worker():
            self._executor.submit(lambda: None).result()
            while self._pending_continuations():
                self._executor.submit(lambda: None).result()

    async def wait_idle(self) -> None:
        """Wait (without blocking the loop) until every job submitted so far, and what it
        deferred, has run."""
        if self.on_worker():
            return  # the worker holds its own queue: nothing could run before this returns
        await self.call(lambda: None)
        while self._pending_continuations():
            await self.call(lambda: None)

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._lock:
            self._closing = True
        self._executor.shutdown(wait=True)


__all__ = ["GroupWorker"]
