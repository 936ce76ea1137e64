"""Relay processes behind HAProxy on loopback, for the cluster tests.

Three ``privastead-server serve`` processes (``privastead.devcluster.relays``) on the
PostgreSQL backend (a database of their own on the session's server, a prefix of their own in
the session's Garage bucket) and HAProxy in front of them, with the routing of
``privastead.devcluster.haproxy``. Tests taking ``relay_cluster`` are marked ``garage``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.devcluster.haproxy import HAProxy
from privastead.devcluster.programs import MissingProgramError
from privastead.devcluster.relays import RelayInstance, server_cli
from support.relay_storage import TestStorage, storage_for

OPERATOR_TOKEN = "operator-token-for-cluster-tests-0123"
CONFIG = "[limits]\nidle_timeout = 5.0\nbody_timeout = 5.0\n[auth]\nmax_failures = 1000000\n"


@dataclass
class RelayCluster:
    balancer: HAProxy
    relays: list[RelayInstance]
    owner_token: str
    storage: TestStorage

    @property
    def url(self) -> str:
        return self.balancer.url

    def stop(self) -> None:
        self.balancer.stop()
        for relay in self.relays:
            relay.stop()


def start_relay_cluster(
    root: Path, storage: TestStorage, count: int = 3, limits: str = ""
) -> RelayCluster:
    """``limits``: extra lines of ``[limits]`` in the relays' ``relay.toml``."""
    data, logs = root / "data", root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config = root / "relay.toml"
    config.write_text(CONFIG.replace("[limits]\n", "[limits]\n" + limits) + storage.toml)
    env = {"PRIVASTEAD_RELAY_METRICS_TOKEN": OPERATOR_TOKEN, **storage.env}
    out = server_cli(
        "accounts", "add", "home", "--config", str(config), "--data-dir", str(data), env=env
    )
    token = out.strip().splitlines()[-1]
    relays = [RelayInstance(i, data, config, logs, env=env) for i in range(1, count + 1)]
    balancer = HAProxy(root / "haproxy", [r.port for r in relays])
    cluster = RelayCluster(balancer, relays, token, storage)
    try:
        for relay in relays:
            relay.start()
        balancer.start()
    except MissingProgramError as exc:
        cluster.stop()
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def relay_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RelayCluster]:
    with storage_for("postgresql", request) as storage:
        cluster = start_relay_cluster(tmp_path, storage)
        try:
            yield cluster
        finally:
            cluster.stop()
