"""PostgreSQL for tests: one throwaway server per session, a fresh database per test.

The server is the distribution's binary run by ``privastead.devcluster.postgres`` on its own
port and socket directory (no system service). Tests that restart or crash PostgreSQL start
their own with ``postgres_factory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from privastead.devcluster.postgres import PostgresServer
from privastead.devcluster.programs import MissingProgramError
from privastead.relay.backends.settings import PostgresSettings


def start_server() -> tuple[PostgresServer, Path]:
    # Not under pytest's tmp_path: as root the server runs as the 'postgres' account, which
    # cannot enter pytest's 0700 directories.
    root = Path(tempfile.mkdtemp(prefix="privastead-pg-"))
    try:
        server = PostgresServer(root, fsync=False)  # process crashes only: see PostgresServer
        server.init()
    except MissingProgramError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server, root


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server, root = start_server()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Servers of a test's own (to crash, stop and restart); all removed afterwards."""
    started: list[tuple[PostgresServer, Path]] = []

    def make() -> PostgresServer:
        started.append(start_server())
        return started[-1][0]

    try:
        yield make
    finally:
        for server, root in started:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


def settings_for(server: PostgresServer, database: str | None = None) -> PostgresSettings:
    dsn = server.dsn if database is None else server.dsn.rsplit("/", 1)[0] + "/" + database
    return PostgresSettings(dsn=dsn, password_file=server.password_file, min_connections=1)


async def admin_sql(server: PostgresServer, sql: str) -> None:
    """Run ``sql`` on the server's maintenance database (CREATE / DROP DATABASE)."""
    import asyncpg

    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=server.port,
        user="privastead",
        password=server.password,
        database="postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(server: PostgresServer) -> AsyncIterator[PostgresSettings]:
    """An empty database of its own on ``server``, dropped afterwards."""
    name = "t_" + secrets.token_hex(6)
    await admin_sql(server, f'CREATE DATABASE "{name}"')
    try:
        yield settings_for(server, name)
    finally:
        await asyncio.wait_for(admin_sql(server, f'DROP DATABASE "{name}" WITH (FORCE)'), 30)


@pytest.fixture
async def pg_settings(postgres_server: PostgresServer) -> AsyncIterator[PostgresSettings]:
    """An empty database of this test's own on the session's server."""
    async with fresh_database(postgres_server) as settings:
        yield settings
