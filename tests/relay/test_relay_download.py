"""Blob downloads against a real relay process: under uvloop the body leaves by ``sendfile``
from the event loop as far as the socket takes it, the rest through the transport
(relay/download.py). Whatever the split, every byte arrives once and in order: on one
kept-alive connection, beside other downloads, and to readers too slow for the socket."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest
from relay_harness import OPERATOR_TOKEN, RelayProcess, mailbox_id, make_process

SIZES = (256 * 1024 + 1, 1024 * 1024 + 123, 5 * 1024 * 1024 + 7)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_downloads_are_whole_on_a_kept_alive_connection_beside_slow_readers(
    tmp_path: Path, loop: str
) -> None:
    # The relay's own download path (the native front would forward it: front.md).
    relay: RelayProcess = make_process(tmp_path, f'event_loop = "{loop}"\nfront = "python"\n')
    try:
        box = mailbox_id()
        bodies = [os.urandom(n) for n in SIZES]
        async with relay.client() as owner:
            await owner.create_mailbox(box)
            seqs = [(await owner.upload(box, b, f"b{i}")).seq for i, b in enumerate(bodies)]
        headers = {"Authorization": f"Bearer {relay.owner_token}"}
        urls = [f"{relay.url}/v1/mailboxes/{box}/messages/{s}" for s in seqs]

        async def fetch(session: aiohttp.ClientSession, i: int, slow: bool) -> None:
            async with session.get(urls[i], headers=headers) as r:
                assert r.status == 200
                digest, got = hashlib.sha256(), 0
                async for chunk in r.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    got += len(chunk)
                    if slow:
                        await asyncio.sleep(0.005)  # the socket's buffer fills meanwhile
                assert got == len(bodies[i])
                assert digest.digest() == hashlib.sha256(bodies[i]).digest()

        # One connection, one response after the other: no byte of one in another.
        one = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=one) as session:
            for i in (0, 1, 2, 2, 1, 0):
                await fetch(session, i, slow=False)
        # Slow and fast readers at once, on their own connections.
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(fetch(session, i % 3, slow=i % 2 == 0) for i in range(12)))
            # The kernel sent (most of) them from the file, under either loop.
            auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            async with session.get(relay.url + "/metrics", headers=auth) as r:
                text = await r.text()
        sent = sum(len(bodies[i % 3]) for i in (0, 1, 2, 2, 1, 0, *range(12)))
        direct = next(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("relay_sendfile_bytes_total ")
        )
        assert 0.5 * sent < direct <= sent
    finally:
        relay.kill9()
