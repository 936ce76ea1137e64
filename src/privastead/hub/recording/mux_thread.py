"""One camera's muxing thread: clip writes leave the event loop, in order, in batches.

The hub's concurrency rule (``docs/design/hub-concurrency.md``): the event loop never waits on
disk. A clip's muxer appends every packet to the clip file and parses the fMP4 boxes it wrote,
in Python, once per packet: at 4K that is megabytes a second of copying and a ``write`` +
``flush`` per fragment on the loop that routes every camera. So the recorder hands each packet
to this thread instead (``put``), which runs the jobs one after the other in submission order
(a clip's packets must reach its muxer in order, and its close after its last packet).

Jobs are queued in a deque and the thread takes everything queued at once: a burst of packets
wakes it once, not once per packet. The backlog is bounded by the caller (``backlog``): if the
disk stalls for long, the recorder ends the clip it is writing (logged and counted) instead
of queueing the camera's stream in memory without end.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class MuxThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._cond = threading.Condition()
        self._closed = False
        self._in_batch = 0  # jobs of the batch being run not yet done (written by the thread)
        # Started by the first job: a camera that never records runs no thread.
        self._thread = threading.Thread(target=self._run, name=f"mux-{name}", daemon=True)

    @property
    def backlog(self) -> int:
        """Jobs queued and not yet done (read without a lock: an estimate, never negative)."""
        return len(self._jobs) + self._in_batch

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def put(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)`` after every job queued before; never waits. A job that raises
        is logged; jobs report their own failures (the recorder's do)."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"mux thread {self.name} is closed")
            if self._thread.ident is None:
                self._thread.start()
            self._jobs.append((fn, args))
            if len(self._jobs) == 1:
                self._cond.notify()

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` in order with the queued jobs; await its result."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def job() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.put(job)
        return await asyncio.wrap_future(future)

    def drain(self) -> None:
        """Block until every job queued so far has run (for shutdown and tests)."""
        if self.on_thread():
            return
        done = threading.Event()
        self.put(done.set)
        done.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return  # closed and drained
                batch = list(self._jobs)
                self._jobs.clear()
                self._in_batch = len(batch)
            for fn, args in batch:
                try:
                    fn(*args)
                except Exception:
                    log.exception("mux thread %s: a job failed", self.name)
                self._in_batch -= 1

    def close(self) -> None:
        """Run what is queued, then stop the thread (blocks: call it in a thread)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.ident is not None and not self.on_thread():
            self._thread.join()


__all__ = ["MuxThread"]
