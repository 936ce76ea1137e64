"""The S3 blob store against a real three-node Garage cluster (replication 3) on loopback:
streaming round trips, multipart, limits, presigned URLs (and their tampering), deletion,
the orphan sweep, and the loss of one node."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest

from privastead.devcluster.garage import GarageCluster
from privastead.errors import StorageError
from privastead.relay.backends.s3 import BlobNotFoundError, S3BlobStore
from privastead.relay.blobs import TooLarge
from support.garage import s3_settings, secret_env

pytestmark = pytest.mark.garage
MiB = 1024 * 1024


@pytest.fixture
async def store(garage_cluster: GarageCluster) -> AsyncIterator[S3BlobStore]:
    assert garage_cluster.credentials is not None
    blobs = S3BlobStore(
        s3_settings(garage_cluster.credentials, multipart_threshold=6 * MiB, part_size=5 * MiB),
        env=secret_env(garage_cluster.credentials),
    )
    await blobs.open()
    try:
        yield blobs
    finally:
        await blobs.close()


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


async def read_all(store: S3BlobStore, name: str) -> bytes:
    async with store.reader(name) as blob:
        data = b"".join([chunk async for chunk in blob.chunks()])
        assert blob.size == len(data)
    return data


@pytest.mark.parametrize("size", [1, 300 * 1024, 3 * MiB, 13 * MiB + 7])
async def test_round_trip_streams_any_size(store: S3BlobStore, size: int) -> None:
    data = os.urandom(size)
    written = await store.write(chunked(data[100:]), limit=16 * MiB, head=data[:100])
    assert written.size == size
    assert written.digest == hashlib.sha256(data).digest()
    assert await read_all(store, written.name) == data


async def test_too_large_stores_nothing(store: S3BlobStore) -> None:
    before = await _keys(store)
    with pytest.raises(TooLarge):
        await store.write(chunked(os.urandom(2 * MiB)), limit=MiB)
    assert await _keys(store) == before


async def _keys(store: S3BlobStore) -> set[str]:
    listed = await store.client.list_objects_v2(Bucket=store.settings.bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


async def test_presigned_url_serves_only_that_object_until_it_expires(store: S3BlobStore) -> None:
    data = os.urandom(200 * 1024)
    written = await store.write(chunked(data), limit=MiB)
    url = await store.presign(written.name, seconds=2)
    assert url is not None and store.settings.access_key_id in url
    async with aiohttp.ClientSession() as http:  # no credentials: the URL is the capability
        async with http.get(url) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            assert await r.read() == data
        # Pointing the signature at another object, or changing its expiry, breaks it.
        other = await store.write(chunked(b"other"), limit=MiB)
        async with http.get(url.replace(written.name, other.name)) as r:
            assert r.status == 403
        async with http.get(_with_query(url, **{"X-Amz-Expires": "3600"})) as r:
            assert r.status == 403
        await asyncio.sleep(3)
        async with http.get(url) as r:
            # Garage answers an expired signature with 400 (AWS with 403): refused either way.
            assert r.status in (400, 403), r.status
            assert "too old" in await r.text()  # Garage: "Date is too old"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_delete_and_missing_objects(store: S3BlobStore) -> None:
    written = await store.write(chunked(b"x" * 1000), limit=MiB)
    await store.delete([written.name, "0" * 32, "not-a-name"])  # unknown and bad names: no error
    with pytest.raises(BlobNotFoundError):
        await read_all(store, written.name)
    with pytest.raises(StorageError, match="bad blob name"):
        store.key("../../etc/passwd")


async def test_sweep_removes_only_old_unreferenced_objects(store: S3BlobStore) -> None:
    kept = await store.write(chunked(b"kept"), limit=MiB)
    orphan = await store.write(chunked(b"orphan"), limit=MiB)
    referenced = {kept.name}
    asked: list[list[str]] = []

    async def still_referenced(names: list[str]) -> set[str]:
        asked.append(names)
        return {n for n in names if n in referenced or n not in (kept.name, orphan.name)}

    # Within the grace period nothing goes (an upload whose row is not committed yet).
    assert await store.sweep(still_referenced, grace_seconds=3600) == 0
    removed = await store.sweep(still_referenced, grace_seconds=0, now=time.time() + 5)
    assert removed == 1
    assert await read_all(store, kept.name) == b"kept"
    with pytest.raises(BlobNotFoundError):
        await read_all(store, orphan.name)
    assert all(len(batch) <= 1000 for batch in asked)


async def test_one_node_down_loses_nothing(
    store: S3BlobStore, garage_cluster: GarageCluster
) -> None:
    """Replication 3, quorum 2: with one node killed, writes and reads go on through the
    others (the store's endpoint is node 0, so node 2 is the one killed)."""
    before = os.urandom(2 * MiB)
    old = await store.write(chunked(before), limit=4 * MiB)
    victim = garage_cluster.nodes[2]
    victim.kill9()
    try:
        during = os.urandom(2 * MiB)
        new = await store.write(chunked(during), limit=4 * MiB)
        assert await read_all(store, old.name) == before
        assert await read_all(store, new.name) == during
    finally:
        victim.start(garage_cluster.binary)
        await asyncio.to_thread(garage_cluster.wait_healthy, 120)
    assert await read_all(store, new.name) == during


async def test_wrong_secret_and_missing_bucket_fail_at_open(
    garage_cluster: GarageCluster,
) -> None:
    credentials = garage_cluster.credentials
    assert credentials is not None
    wrong = S3BlobStore(s3_settings(credentials), env={"PRIVASTEAD_RELAY_S3_SECRET_KEY": "0" * 64})
    with pytest.raises(StorageError, match="refused"):
        await wrong.open()
    missing = S3BlobStore(
        s3_settings(credentials, bucket="no-such-bucket"), env=secret_env(credentials)
    )
    with pytest.raises(StorageError, match="no-such-bucket"):
        await missing.open()
