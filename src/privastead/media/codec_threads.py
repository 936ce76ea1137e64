"""FFmpeg's codec threads at background priority, so the cores go to the event loop first.

Decoding 4K for motion detection is most of the hub's CPU, and it runs in FFmpeg's own
worker threads (frame or slice threads, created when a codec context is opened). The hub's
event loop routes every camera's packets to the recorder and answers the relay: each
millisecond it waits for a core is a millisecond of lag in recording, livestreams and
notifications. A decoder that waits a few milliseconds loses nothing (the analysis queue
absorbs it, and past its bound analysis skips to a keyframe while recording goes on).

On Linux the nice value is per thread and a new thread inherits its creator's. Lowering the
analysis thread itself would also lower a thread that holds the GIL between decoder calls,
and the loop would then wait for the GIL on a thread the scheduler holds back (priority
inversion). So the context is opened on a short-lived thread that lowers only itself: the
worker threads FFmpeg creates in ``open()`` are its children and inherit the lower priority,
while the Python thread that feeds the decoder keeps the process's. An unprivileged process
cannot raise a priority again, which is why the lowering happens on a throwaway thread.

Where per-thread priorities do not exist (not Linux) or the call is refused, the context is
opened on the calling thread as before: priority is an optimisation, never a condition.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

#: Added to the process's nice value for codec worker threads. 10 gives a runnable loop
#: thread about nine times their share of a contended core (kernel weights 1024 : 110).
BACKGROUND_NICE = 10


def lower_current_thread(step: int = BACKGROUND_NICE) -> bool:
    """Give the calling thread (and the threads it creates from now on) a nice value
    ``step`` above the process's. True if the thread now runs at that priority or lower."""
    if sys.platform != "linux" or step <= 0:
        return False
    tid = threading.get_native_id()
    try:
        wanted = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + step)
        if os.getpriority(os.PRIO_PROCESS, tid) < wanted:
            os.setpriority(os.PRIO_PROCESS, tid, wanted)
    except OSError:
        return False
    return True


def open_in_background(ctx: Any) -> None:
    """``ctx.open()`` on a thread at background priority, so the codec's worker threads run
    there; the caller keeps its own priority. Exceptions from ``open`` reach the caller."""
    if sys.platform != "linux":
        ctx.open()
        return
    failure: list[BaseException] = []

    def run() -> None:
        lower_current_thread()
        try:
            ctx.open()
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    opener = threading.Thread(target=run, name="codec-open", daemon=True)
    opener.start()
    opener.join()
    if failure:
        raise failure[0]
