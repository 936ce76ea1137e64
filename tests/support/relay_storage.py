"""The relay's two storage backends for process-level tests: one fixture parameter.

``sqlite``: the data directory alone (the default). ``postgresql``: a database of its own on
the session's PostgreSQL server and a key prefix of its own in the session's Garage bucket,
written into ``relay.toml`` the way an operator would (``[storage]`` tables; the S3 secret in
the environment, the PostgreSQL password in a file). Tests taking a fixture parametrised with
``STORAGES`` run once on each; the ``postgresql`` case is marked ``garage`` (it runs last,
after the Garage build).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.devcluster.garage import GarageCluster
from privastead.devcluster.postgres import PostgresServer
from privastead.relay.backends.settings import S3Settings
from support.garage import s3_settings, secret_env
from support.postgres import admin_sql

STORAGES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.garage)]


@dataclass
class TestStorage:
    kind: str
    toml: str  # the [storage] tables of relay.toml ("" for the default)
    env: dict[str, str]  # secrets the relay reads from its environment
    s3: S3Settings | None = None

    async def blob_names(self, data_dir: Path) -> set[str]:
        """The blobs stored now: files in the data directory, or objects under the prefix."""
        if self.s3 is None:
            root = data_dir / "blobs"
            return {f.name for d in root.iterdir() if d.name != "tmp" for f in d.iterdir()}
        # Imported here: the `cluster` extra (aiobotocore) is optional, and tests that only
        # use the SQLite relay load this module too (the lowest-versions run has no S3 client).
        from privastead.relay.backends.s3 import S3BlobStore

        store = S3BlobStore(self.s3, self.env)
        await store.open()
        try:
            pages = store.client.get_paginator("list_objects_v2")
            names: set[str] = set()
            async for page in pages.paginate(Bucket=self.s3.bucket, Prefix=self.s3.prefix):
                names.update(o["Key"][len(self.s3.prefix) :] for o in page.get("Contents", []))
            return names
        finally:
            await store.close()


@contextlib.contextmanager
def storage_for(
    kind: str, request: pytest.FixtureRequest, server: PostgresServer | None = None
) -> Iterator[TestStorage]:
    """Backend ``kind`` for one relay's tests, on ``server`` (default: the session's
    PostgreSQL); its database is dropped afterwards."""
    if kind == "sqlite":
        yield TestStorage(kind, "", {})
        return
    if server is None:
        server = request.getfixturevalue("postgres_server")
        assert server is not None
    garage: GarageCluster = request.getfixturevalue("garage_cluster")
    assert garage.credentials is not None
    creds = garage.credentials
    name = "r_" + secrets.token_hex(6)
    asyncio.run(admin_sql(server, f'CREATE DATABASE "{name}"'))
    dsn = server.dsn.rsplit("/", 1)[0] + "/" + name
    toml = f"""
[storage]
backend = "postgresql"

[storage.postgresql]
dsn = "{dsn}"
password_file = "{server.password_file}"
min_connections = 1
max_connections = 4

[storage.s3]
endpoint = "{creds.endpoint}"
bucket = "{creds.bucket}"
access_key_id = "{creds.access_key_id}"
region = "{creds.region}"
prefix = "{name}/"
public_endpoint = "{creds.endpoint}"
"""
    s3 = s3_settings(creds, prefix=name + "/")
    try:
        yield TestStorage(kind, toml, secret_env(creds), s3)
    finally:
        asyncio.run(admin_sql(server, f'DROP DATABASE "{name}" WITH (FORCE)'))


__all__ = ["STORAGES", "TestStorage", "storage_for"]
