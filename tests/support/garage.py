"""A three-node Garage cluster on loopback for tests (one per session).

The binary is built once per machine by ``scripts/garage.sh`` (``make test`` starts that build
in the background first). If a build is running, the fixture waits for it, up to
``$PRIVASTEAD_GARAGE_WAIT`` seconds (default 45 min); tests marked ``garage`` run last so that
the wait is usually over. Without a binary and without a build, it fails naming the binary
and the command that builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from privastead.devcluster import programs
from privastead.devcluster.garage import GarageCluster, S3Credentials
from privastead.relay.backends.settings import S3Settings

BUILD_WAIT = float(os.environ.get("PRIVASTEAD_GARAGE_WAIT", "2700"))


def garage_binary() -> Path:
    try:
        return programs.garage(wait=BUILD_WAIT)
    except programs.MissingProgramError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def garage_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageCluster]:
    binary = garage_binary()
    cluster = GarageCluster(tmp_path_factory.mktemp("garage"))
    try:
        cluster.start(binary)
        yield cluster
    finally:
        cluster.stop()


def s3_settings(credentials: S3Credentials, **changes: object) -> S3Settings:
    fields: dict[str, object] = {
        "endpoint": credentials.endpoint,
        "bucket": credentials.bucket,
        "access_key_id": credentials.access_key_id,
        "region": credentials.region,
        "public_endpoint": credentials.endpoint,
    }
    fields.update(changes)
    return S3Settings(**fields)  # type: ignore[arg-type]


def secret_env(credentials: S3Credentials) -> dict[str, str]:
    """The S3 secret the way a relay gets it: from the environment, not the config."""
    return {"PRIVASTEAD_RELAY_S3_SECRET_KEY": credentials.secret_access_key}
