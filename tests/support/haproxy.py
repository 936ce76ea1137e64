"""Relay processes behind HAProxy on loopback, for the cluster tests.

Three ``privastead-server serve`` processes (``privastead.devcluster.relays``: until the relay
has its PostgreSQL backend they share one SQLite data directory) and HAProxy in front of them,
with the routing of ``privastead.devcluster.haproxy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.devcluster.haproxy import HAProxy
from privastead.devcluster.programs import MissingProgramError
from privastead.devcluster.relays import RelayInstance, server_cli

OPERATOR_TOKEN = "operator-token-for-cluster-tests-0123"
CONFIG = "[limits]\nidle_timeout = 5.0\nbody_timeout = 5.0\n[auth]\nmax_failures = 1000000\n"


@dataclass
class RelayCluster:
    balancer: HAProxy
    relays: list[RelayInstance]
    owner_token: str

    @property
    def url(self) -> str:
        return self.balancer.url

    def stop(self) -> None:
        self.balancer.stop()
        for relay in self.relays:
            relay.stop()


def start_relay_cluster(root: Path, count: int = 3) -> RelayCluster:
    data, logs = root / "data", root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config = root / "relay.toml"
    config.write_text(CONFIG)
    out = server_cli("accounts", "add", "home", "--config", str(config), "--data-dir", str(data))
    token = out.strip().splitlines()[-1]
    env = {"PRIVASTEAD_RELAY_METRICS_TOKEN": OPERATOR_TOKEN}
    relays = [RelayInstance(i, data, config, logs, env=env) for i in range(1, count + 1)]
    balancer = HAProxy(root / "haproxy", [r.port for r in relays])
    cluster = RelayCluster(balancer, relays, token)
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
def relay_cluster(tmp_path: Path) -> Iterator[RelayCluster]:
    cluster = start_relay_cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
