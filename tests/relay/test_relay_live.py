"""Live channels: fan-out, back-pressure on slow viewers, signals to the publisher."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from relay_harness import InProcess, mailbox_id, start_inprocess, wait_until

from privastead.clock import FakeClock
from privastead.errors import RelayRejectedError
from privastead.relay.config import Limits, RelayConfig


async def _events_until(
    ws: aiohttp.ClientWebSocketResponse, kind: str, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event: dict[str, Any] = json.loads(msg.data)
        seen.append(event)
        if event["type"] == kind:
            return event


async def test_fan_out_in_order_and_viewer_counts(inproc: InProcess) -> None:
    session = mailbox_id()
    async with inproc.client() as hub, inproc.client() as app:
        viewer1 = await app.live(session, "viewer")
        assert json.loads((await viewer1.receive()).data) == {"type": "waiting"}
        pub = await hub.live(session, "publisher")
        assert json.loads((await pub.receive()).data) == {"type": "viewers", "count": 1}
        assert json.loads((await viewer1.receive()).data) == {"type": "publisher_joined"}
        viewer2 = await app.live(session, "viewer")
        assert json.loads((await pub.receive()).data) == {"type": "viewers", "count": 2}
        for i in range(20):
            await pub.send_bytes(i.to_bytes(4, "big") * 1000)
        for viewer in (viewer1, viewer2):
            got = [int.from_bytes((await viewer.receive()).data[:4], "big") for _ in range(20)]
            assert got == list(range(20))
        with pytest.raises(RelayRejectedError) as err:
            await hub.live(session, "publisher")
        assert err.value.status == 409
        await viewer2.close()
        seen: list[dict[str, Any]] = []
        left = await _events_until(pub, "viewer_left", seen)
        assert left["count"] == 1
        await pub.send_json({"type": "end"})  # the session is over on purpose
        await pub.close()
        msg = await viewer1.receive()
        assert json.loads(msg.data) == {"type": "ended"}
        assert (await viewer1.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await wait_until(lambda: not inproc.state.live.sessions)


async def test_a_lost_publisher_keeps_its_viewers_until_it_joins_again(
    inproc: InProcess,
) -> None:
    """A publisher socket that closes without ``end`` (its connection broke) is
    ``publisher_lost`` to the viewers, who stay; the same session id joined again brings the
    publisher back (``publisher_joined``, the viewer count to the publisher) and its frames."""
    session = mailbox_id()
    async with inproc.client() as hub, inproc.client() as app:
        viewer = await app.live(session, "viewer")
        assert json.loads((await viewer.receive()).data) == {"type": "waiting"}
        pub = await hub.live(session, "publisher")
        assert json.loads((await pub.receive()).data) == {"type": "viewers", "count": 1}
        assert json.loads((await viewer.receive()).data) == {"type": "publisher_joined"}
        await pub.send_str("not json")  # other publisher text is ignored: not an end
        await pub.send_bytes(b"one")
        assert (await viewer.receive()).data == b"one"
        await pub.close()
        assert json.loads((await viewer.receive()).data) == {"type": "publisher_lost"}
        assert session in inproc.state.live.sessions  # kept for its viewer
        pub = await hub.live(session, "publisher")
        assert json.loads((await pub.receive()).data) == {"type": "viewers", "count": 1}
        assert json.loads((await viewer.receive()).data) == {"type": "publisher_joined"}
        await pub.send_bytes(b"two")
        assert (await viewer.receive()).data == b"two"
        # The last viewer leaving is no_viewers to the publisher, and the session stays with
        # it: a viewer joining again is a viewer count the publisher hears.
        await viewer.close()
        seen: list[dict[str, Any]] = []
        await _events_until(pub, "no_viewers", seen)
        assert session in inproc.state.live.sessions
        viewer = await app.live(session, "viewer")
        assert (await _events_until(pub, "viewers", seen))["count"] == 1
        await pub.send_bytes(b"three")
        assert (await viewer.receive()).data == b"three"
        await viewer.close()
        await pub.close()
    await wait_until(lambda: not inproc.state.live.sessions)


async def test_slow_viewer_drops_frames_and_publisher_is_told(tmp_path: Path) -> None:
    limit = 8
    cfg = RelayConfig(limits=dataclasses.replace(Limits(), live_queue_frames=limit))
    relay = await start_inprocess(tmp_path, FakeClock(), cfg)
    session = mailbox_id()
    try:
        async with relay.client() as hub, relay.client() as fast_app, relay.client() as slow_app:
            slow = await slow_app.live(session, "viewer")  # never reads
            fast = await fast_app.live(session, "viewer")
            pub = await hub.live(session, "publisher")
            received: list[int] = []

            async def read_fast() -> None:
                while True:
                    msg = await fast.receive()
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        received.append(int.from_bytes(msg.data[:4], "big"))
                    elif msg.type != aiohttp.WSMsgType.TEXT:
                        return

            reader = asyncio.create_task(read_fast())
            frame = bytes(256 * 1024)
            deepest = 0
            for i in range(300):
                await pub.send_bytes(i.to_bytes(4, "big") + frame)
                await asyncio.sleep(0)
                for s in relay.state.live.sessions.values():
                    deepest = max([deepest, *(len(v.frames) for v in s.viewers.values())])
            seen: list[dict[str, Any]] = []
            # FakeClock does not move: the first drop is signalled, later ones are batched.
            lag = await _events_until(pub, "lagging", seen)
            assert lag["dropped"] >= 1
            assert deepest <= limit + 1  # bounded: frames beyond the queue were dropped
            assert relay.state.metrics.value("relay_live_frames_dropped_total") > 0
            await wait_until(lambda: bool(received))
            assert received == sorted(received)  # a viewer may miss frames, never reorder
            await slow.close()
            await fast.close()
            await _events_until(pub, "no_viewers", seen)
            reader.cancel()
            await pub.close()
    finally:
        await relay.server.close()


async def test_bad_session_ids_and_roles(inproc: InProcess) -> None:
    async with inproc.client() as c:
        # "../x" is resolved by the URL layer and so matches no route at all (404).
        for session, role, statuses in [
            ("../x", "viewer", {404}),
            ("A" * 32, "viewer", {400}),
            ("%2e%2e", "viewer", {400, 404}),
            (mailbox_id(), "admin", {400}),
        ]:
            with pytest.raises(RelayRejectedError) as err:
                await c.live(session, role)
            assert err.value.status in statuses


async def test_a_viewer_ack_reaches_the_publisher_and_other_text_does_not(
    inproc: InProcess,
) -> None:
    """Playback's flow control: the relay forwards a viewer's well-formed acknowledgement to
    the publisher, with the viewer's id; malformed or other text goes nowhere."""
    session = mailbox_id()
    async with inproc.client() as hub, inproc.client() as app:
        pub = await hub.live(session, "publisher")
        assert json.loads((await pub.receive()).data)["type"] == "viewers"
        viewer = await app.live(session, "viewer")
        seen: list[dict[str, Any]] = []
        await _events_until(pub, "viewers", seen)
        for junk in (
            "not json",
            '{"type": "ack", "index": -1}',
            '{"type": "ack", "index": true}',
            '{"type": "hello"}',
            "[1, 2]",
            "[" * 50_000 + "]" * 50_000,  # nested too deep for the JSON parser
        ):
            await viewer.send_str(junk)
        await viewer.send_str('{"type": "ack", "index": 7}')
        ack = await _events_until(pub, "ack", seen)
        assert ack["index"] == 7 and ack["viewer"].startswith("v")
        assert [e["type"] for e in seen] == ["viewers", "ack"]  # nothing from the junk
        await viewer.close()
        await pub.close()


async def test_a_publisher_rejoining_before_the_relay_let_go_of_its_old_socket(
    inproc: InProcess,
) -> None:
    """``rejoin_live`` as a publisher retries the relay's 409 (the lost socket is still
    registered, as with a half-open connection) until the old one is gone; as a viewer a
    refusal is the answer at once."""
    session = mailbox_id()
    async with inproc.client() as hub, inproc.client() as app:
        old = await hub.live(session, "publisher")
        rejoin = asyncio.create_task(hub.rejoin_live(session, "publisher"))
        await asyncio.sleep(1.2)  # at least two refused attempts (one every 0.5 s)
        assert not rejoin.done()
        await old.close()  # the relay lets go of it
        again = await asyncio.wait_for(rejoin, 20)
        assert again is not None
        assert json.loads((await again.receive()).data) == {"type": "viewers", "count": 0}
        await again.close()
        with pytest.raises(RelayRejectedError) as err:
            await app.rejoin_live("A" * 32, "viewer")  # refused (bad id): no retry
        assert err.value.status == 400
    await wait_until(lambda: not inproc.state.live.sessions)
