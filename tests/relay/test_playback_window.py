"""The hub's playback sessions against a real relay process: the hub never has more than its
window unacknowledged (so the relay's per-viewer queue never overflows and drops), a viewer
that acknowledges gets every message in order, and the last one is marked final.

The MLS group is a stand-in that passes plaintext through (its encryption is tested with the
rest of the MLS core, and end to end in tests/e2e/test_playback_e2e.py); the relay, the
recording files and the session logic are real."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp

from privastead.hub.control import playback_sessions
from privastead.hub.control.playback_sessions import PlaybackSessions
from privastead.protocol.playback import PlaybackPayload, ack_text
from privastead.protocol.playback_messages import PlaybackAnswer, PlaybackRequest
from support.recordings import record

WALL = 1_800_000_000.0


class _Worker:
    async def call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done


class _Identity:
    def epoch(self, _group_id: bytes) -> int:
        return 3

    def encrypt(self, _group_id: bytes, plaintext: bytes) -> bytes:
        return plaintext  # a stand-in: see the module's docstring


class _Group:
    def __init__(self, name: str) -> None:
        self.camera, self.group, self.key = "door", name, f"door/{name}"
        self.group_id = b"g"
        self.worker, self.identity = _Worker(), _Identity()
        self.rekeyed = 0

    def self_update(self) -> bytes:
        self.rekeyed += 1
        return b""


class _Groups:
    def __init__(self) -> None:
        self.control, self.live = _Group("control"), _Group("live")

    def get(self, _camera: str, name: str) -> _Group:
        return self.control if name == "control" else self.live


async def test_the_window_holds_until_the_viewer_acknowledges(relay: Any, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    record(recordings, "door", WALL, 40.0)  # 40 one-second fragments + the init
    groups = _Groups()
    answers: list[PlaybackAnswer] = []
    async with relay.client() as hub, relay.client() as app:
        sessions = PlaybackSessions(
            groups,  # type: ignore[arg-type]
            hub,
            lambda _group, build: answers.append(build(len(answers))),  # type: ignore[arg-type]
            recordings,
            recordings / "index.sqlite",
            protected=(protected := {"door/kept-by-someone-else.mp4"}),
        )
        runner = asyncio.create_task(sessions.run())
        request = PlaybackRequest("door", "ab" * 16, WALL + 0.5, WALL + 39.0)
        await sessions.handle(groups.control, b"member", request)  # type: ignore[arg-type]
        (answer,) = answers
        assert not answer.error and answer.pieces == 40 and groups.live.rekeyed == 1
        # Retention may not delete what is being sent: the session's files are held.
        (session,) = sessions.running.values()
        files = {str(f.path.relative_to(recordings)) for f in session.plan.fragments}
        assert files and all((recordings / name).is_file() for name in files)
        assert protected == files | {"door/kept-by-someone-else.mp4"}
        viewer = await app.live(answer.session_id, "viewer")
        got: list[PlaybackPayload] = []

        async def read(count: int, seconds: float) -> None:
            while len(got) < count:
                msg = await asyncio.wait_for(viewer.receive(), seconds)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got.append(PlaybackPayload.decode(msg.data))

        # Nothing acknowledged: the hub stops at its window and waits (nothing is dropped).
        await read(playback_sessions.WINDOW_MESSAGES, 20)
        try:
            await read(playback_sessions.WINDOW_MESSAGES + 1, 1.5)
            raise AssertionError("the hub sent past its window")
        except TimeoutError:
            pass
        # Acknowledging lets the rest through, in order, with the last one final.
        while not got[-1].final:
            await viewer.send_str(ack_text(got[-1].index))
            await read(len(got) + 1, 20)
        await viewer.send_str(ack_text(got[-1].index))
        assert [p.index for p in got] == list(range(len(got))) and len(got) == answer.pieces
        assert got[0].is_init and all(p.session == answer.session_id for p in got)
        assert sum(len(p.data) for p in got) == answer.bytes
        for _ in range(100):
            if not sessions.running:
                break
            await asyncio.sleep(0.05)
        assert sessions.ended == ["complete"]
        assert protected == {"door/kept-by-someone-else.mp4"}  # released, others' kept
        await viewer.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_busy_sessions_refuse_but_abandoned_ones_make_room(
    relay: Any, tmp_path: Path
) -> None:
    """At most two playbacks per camera: a third request is refused as ``busy`` while both
    stream, but a session whose viewer never came (its client gave up) makes room."""
    recordings = tmp_path / "recordings"
    record(recordings, "door", WALL, 20.0)
    groups = _Groups()
    answers: list[PlaybackAnswer] = []
    async with relay.client() as hub, relay.client() as app:
        sessions = PlaybackSessions(
            groups,  # type: ignore[arg-type]
            hub,
            lambda _group, build: answers.append(build(len(answers))),  # type: ignore[arg-type]
            recordings,
            recordings / "index.sqlite",
        )

        async def ask(n: int) -> PlaybackAnswer:
            request = PlaybackRequest("door", f"{n:032x}", WALL + 1.0, WALL + 19.0)
            await sessions.handle(groups.control, b"member", request)  # type: ignore[arg-type]
            return answers[-1]

        first, abandoned = await ask(1), await ask(2)
        viewer = await app.live(first.session_id, "viewer")  # only the first one is watched
        for _ in range(100):
            if sessions.running[first.session_id].sent:
                break
            await asyncio.sleep(0.05)
        third = await ask(3)  # the abandoned one makes room
        assert not third.error and abandoned.session_id not in sessions.running
        watcher = await app.live(third.session_id, "viewer")
        for _ in range(100):
            if sessions.running[third.session_id].sent:
                break
            await asyncio.sleep(0.05)
        refused = await ask(4)
        assert refused.error == "busy" and "try again" in refused.detail
        await viewer.close()
        await watcher.close()
        for running in list(sessions.running.values()):
            assert running.task is not None
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
