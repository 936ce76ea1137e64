"""The local sockets' frames (``protocol.frames``): limits before allocation, and errors that
come back as our own classes only."""

from __future__ import annotations

import asyncio
import struct

import pytest

from privastead.errors import LocalSocketError, PrivasteadError, StateLockedError
from privastead.protocol.frames import encode_frame, error_reply, raise_remote, read_frame


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_a_frame_round_trips_and_a_clean_end_is_none() -> None:
    reader = _reader(encode_frame({"op": "ping"}))
    assert await read_frame(reader, 100, LocalSocketError, "test") == {"op": "ping"}
    assert await read_frame(reader, 100, LocalSocketError, "test") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack(">I", 101), "over the 100-byte limit"),
        (struct.pack(">I", 10) + b"{}", "broke off inside a frame"),
        (b"\x00\x00", "broke off inside a frame"),
        (struct.pack(">I", 2) + b"[]", "not a JSON object"),
        (struct.pack(">I", 3) + b"\xff\xfe{", "not JSON"),
    ],
)
async def test_malformed_frames_raise_the_callers_error(data: bytes, message: str) -> None:
    with pytest.raises(LocalSocketError, match=message):
        await read_frame(_reader(data), 100, LocalSocketError, "test")


def test_errors_come_back_as_our_classes_only() -> None:
    with pytest.raises(StateLockedError, match="in use"):
        raise_remote(error_reply(StateLockedError("in use"), "the client"))
    for name in ("SystemExit", "KeyboardInterrupt", "OSError", "nonsense"):
        with pytest.raises(PrivasteadError) as caught:
            raise_remote({"type": "error", "error": name, "message": "x"})
        assert type(caught.value) is PrivasteadError
    reply = error_reply(KeyError("secret detail"), "the client")
    assert reply["error"] == "PrivasteadError" and "secret detail" not in reply["message"]
