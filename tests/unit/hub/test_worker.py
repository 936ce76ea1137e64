"""The per-group worker (hub/delivery/worker.py) with real threads: jobs run in submission
order on one thread that is not the loop's, a job submitted from the worker runs in place,
``call`` returns results and raises errors, a failing job is counted and does not stop the
ones after it, and ``close`` runs what was queued."""

from __future__ import annotations

import asyncio
import threading

import pytest

from privastead.hub.delivery.worker import GroupWorker


async def test_jobs_run_in_order_on_one_thread_off_the_loop() -> None:
    worker = GroupWorker("cam/events")
    seen: list[tuple[int, int]] = []
    try:
        for i in range(50):
            worker.submit(lambda i=i: seen.append((i, threading.get_ident())))
        await worker.wait_idle()
        assert [i for i, _ in seen] == list(range(50))
        threads = {t for _, t in seen}
        assert len(threads) == 1 and threading.get_ident() not in threads
        assert worker.jobs == 50
    finally:
        worker.close()


async def test_a_job_that_submits_to_its_own_worker_runs_in_place() -> None:
    worker = GroupWorker("cam/control")
    order: list[str] = []

    def outer() -> None:
        order.append("outer start")
        inner = worker.submit(lambda: order.append("inner"))
        assert inner.done()  # ran at once: waiting for it here would deadlock
        order.append("outer end")

    try:
        worker.submit(outer)
        await worker.wait_idle()
        assert order == ["outer start", "inner", "outer end"]
    finally:
        worker.close()


async def test_call_returns_results_and_errors_and_a_failure_stops_nothing() -> None:
    worker = GroupWorker("cam/live")
    try:
        assert await worker.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            await worker.call(lambda: 1 / 0)
        failed = worker.submit(lambda: 1 / 0)  # nobody waits: logged and counted
        after = worker.submit(lambda: "still running")
        assert await asyncio.wrap_future(after) == "still running"
        assert isinstance(failed.exception(), ZeroDivisionError)
        assert worker.failed == 1
    finally:
        worker.close()


async def test_a_blocked_job_never_holds_the_loop_and_close_runs_the_queue() -> None:
    worker = GroupWorker("cam/events")
    release = threading.Event()
    done: list[int] = []
    # The first job can only finish once the loop has run on and released it.
    worker.submit(lambda: (release.wait(30), done.append(1)))
    worker.submit(lambda: done.append(2))
    await asyncio.sleep(0)
    assert done == []
    release.set()
    worker.close()
    assert done == [1, 2]
