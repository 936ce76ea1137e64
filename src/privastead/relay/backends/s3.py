"""Blobs in an S3-compatible object store (Garage in our tests and deployment guide).

The same calls as the file store (``relay.blobs.BlobStore``): ``write`` a stream into a new
blob with a random name, ``delete`` names, plus ``reader`` (stream one back), ``presign`` (a
short-lived GET URL so a client fetches ciphertext from the store directly, the relay still
being the only place that authorises) and ``sweep`` (objects no message references).

Client: aiobotocore, botocore on aiohttp. botocore is the AWS SDK's own request layer: its
SigV4 signer, presigner, retry policy and error model are the reference implementation,
maintained with every S3 change; aiobotocore runs it on the aiohttp the relay already uses,
without a thread per request. aioboto3 only adds boto3's resource layer on top (not needed).

Upload path: the body is spooled while it streams in (memory up to ``SPOOL_MEMORY``, then an
anonymous temporary file), hashed on the way, and sent once complete, with its SHA-256 as
the object's checksum (``x-amz-checksum-sha256``): the store verifies that what it keeps is
byte for byte what the relay received, and botocore does not hash the body a second time
(payload signing off: ``UNSIGNED-PAYLOAD``; integrity comes from the checksum). Spooling
gives botocore a seekable body, so a PUT failed by a transient error is retried, and bodies
of unknown length (chunked) work; ``multipart_threshold`` switches large bodies to
multipart uploads. Memory per upload is bounded either way.

A blob is durable in the store (acknowledged by a write quorum: two of three Garage nodes)
before ``write`` returns, and only then may its message row commit; a crash in between leaves
an unreferenced object that ``sweep`` removes once it is older than the grace period, never
a row without its object.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from privastead.errors import StorageError
from privastead.relay.backends.settings import S3Settings
from privastead.relay.blobs import BlobNotFoundError, TooLarge, WrittenBlob

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

_NAME = re.compile(r"\A[0-9a-f]{32}\Z")
_log = logging.getLogger(__name__)
SPOOL_MEMORY = 1024 * 1024  # bytes of a body kept in memory before spooling to a file
READ_CHUNK = 256 * 1024
_DELETE_BATCH = 1000  # the S3 maximum per DeleteObjects
_UNAVAILABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.HTTPClientError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,  # aiohttp's timeouts on Python 3.10 (the builtin from 3.11 on)
)


@dataclass
class BlobReader:
    """An object being downloaded: its size, then its bytes in chunks (call ``chunks`` once)."""

    size: int
    _body: Any

    async def chunks(self, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body.iter_chunks(size):
                yield chunk
        except _UNAVAILABLE as exc:
            raise _error("download", exc) from exc


def _error(what: str, exc: BaseException) -> StorageError:
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return BlobNotFoundError(f"object store {what}: no such object")
        error = StorageError(f"object store {what} refused: {code or exc}")
    else:
        error = StorageError(f"object store {what} unavailable: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _config(settings: S3Settings) -> AioConfig:
    return AioConfig(
        signature_version="s3v4",
        # Garage (like most S3-compatible stores) serves buckets by path, not by host name.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=settings.max_connections,
        # Only the checksums we ask for (the SHA-256 we computed); not botocore's default
        # CRC32 of every body, which would hash each upload a second time.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class S3BlobStore:
    """``await open()`` then ``write`` / ``reader`` / ``presign`` / ``delete`` / ``sweep``."""

    def __init__(self, settings: S3Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._env = env
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._public: S3Client | None = None  # signs URLs for the host clients will use

    async def open(self) -> None:
        s = self.settings
        session = get_session()
        secret = s.secret_key(self._env)

        def client(endpoint: str) -> Any:
            return session.create_client(
                "s3",
                endpoint_url=endpoint,
                region_name=s.region,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=secret,
                config=_config(s),
            )

        main: S3Client = await self._stack.enter_async_context(client(s.endpoint))
        self._client = main
        if s.public_endpoint:
            self._public = await self._stack.enter_async_context(client(s.public_endpoint))
        try:
            await main.head_bucket(Bucket=s.bucket)
        except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
            await self.close()
            raise _error(f"bucket {s.bucket!r}", exc) from exc

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._public = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise StorageError("object store is closed")
        return self._client

    def key(self, name: str) -> str:
        if not _NAME.match(name):
            raise StorageError("bad blob name")
        return self.settings.prefix + name

    async def write(
        self, chunks: AsyncIterator[bytes], limit: int, head: bytes = b""
    ) -> WrittenBlob:
        """Stream ``head`` + ``chunks`` into a new object; raises ``TooLarge`` past ``limit``."""
        name = secrets.token_hex(16)
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            if head:
                digest.update(head)
                spool.write(head)
                size = len(head)
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge
                digest.update(chunk)
                spool.write(chunk)
            spool.seek(0)
            if size > self.settings.multipart_threshold:
                await self._put_multipart(self.key(name), spool, size)
            else:
                await self._put(self.key(name), spool, size, digest.digest())
        return WrittenBlob(name=name, size=size, digest=digest.digest())

    async def _put(self, key: str, body: IO[bytes], size: int, sha256: bytes) -> None:
        try:
            await self.client.put_object(
                Bucket=self.settings.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ContentType="application/octet-stream",
                ChecksumSHA256=base64.b64encode(sha256).decode("ascii"),
            )
        except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
            raise _error("upload", exc) from exc

    async def _put_multipart(self, key: str, body: IO[bytes], size: int) -> None:
        bucket, part_size = self.settings.bucket, self.settings.part_size
        try:
            upload = await self.client.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                ContentType="application/octet-stream",
                ChecksumAlgorithm="SHA256",
            )
        except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
            raise _error("upload", exc) from exc
        upload_id = upload["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number in range(1, -(-size // part_size) + 1):
                data = body.read(part_size)  # one part in memory at a time
                sha = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
                part = await self.client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=sha,
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number, "ChecksumSHA256": sha})
            await self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, (botocore.exceptions.ClientError, *_UNAVAILABLE)):
                raise _error("upload", exc) from exc
            raise

    @contextlib.asynccontextmanager
    async def reader(self, name: str) -> AsyncIterator[BlobReader]:
        """``async with store.reader(name) as blob: async for chunk in blob.chunks(): ...``"""
        try:
            response = await self.client.get_object(Bucket=self.settings.bucket, Key=self.key(name))
        except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
            raise _error("download", exc) from exc
        body = response["Body"]
        try:
            yield BlobReader(size=int(response["ContentLength"]), _body=body)
        finally:
            body.close()

    async def presign(self, name: str, seconds: int | None = None) -> str | None:
        """A GET URL valid ``seconds`` (default from the settings); None without a public
        endpoint. The URL is a bearer capability for one ciphertext: hand it only to a client
        the relay has just authorised for that message."""
        if self._public is None:
            return None
        return await self._public.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.settings.bucket,
                "Key": self.key(name),
                "ResponseCacheControl": "no-store",
                "ResponseContentType": "application/octet-stream",
            },
            ExpiresIn=seconds or self.settings.presign_seconds,
        )

    async def delete(self, names: list[str]) -> None:
        """Best effort, like the file store: a failure leaves objects for ``sweep``."""
        keys = [self.key(n) for n in names if _NAME.match(n)]
        for i in range(0, len(keys), _DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            try:
                result = await self.client.delete_objects(
                    Bucket=self.settings.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
                _log.warning("object store delete failed (left for the sweep): %s", exc)
                continue
            for error in result.get("Errors", []):
                _log.warning("object store kept an object: %s", error.get("Code"))

    async def sweep(
        self,
        referenced: Callable[[list[str]], Awaitable[set[str]]],
        grace_seconds: float = 3600.0,
        now: float | None = None,
    ) -> int:
        """Delete objects older than ``grace_seconds`` that no message references.

        ``referenced(names)`` returns the subset still referenced (one indexed query per page
        of 1,000 names), so memory stays bounded however many objects there are. The grace
        period covers uploads whose row has not committed yet, on any relay process.
        """
        cutoff = (time.time() if now is None else now) - grace_seconds
        prefix = self.settings.prefix
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
                old = [
                    obj["Key"][len(prefix) :]
                    for obj in page.get("Contents", [])
                    if obj["LastModified"].timestamp() < cutoff
                ]
                names = [n for n in old if _NAME.match(n)]
                if not names:
                    continue
                keep = await referenced(names)
                orphans = [n for n in names if n not in keep]
                await self.delete(orphans)
                removed += len(orphans)
        except (botocore.exceptions.ClientError, *_UNAVAILABLE) as exc:
            raise _error("listing", exc) from exc
        if removed:
            _log.info("removed %d unreferenced objects", removed)
        return removed


__all__ = ["BlobNotFoundError", "BlobReader", "S3BlobStore"]
