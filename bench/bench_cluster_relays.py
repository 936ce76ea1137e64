"""Relay cluster benchmark: whole relay processes on PostgreSQL + Garage against the SQLite relay.

Three set-ups measured in one run, with the same load generator as ``bench_relay.py`` (its
``--load`` child process, many households at once):

- ``sqlite_1``: one relay process on SQLite and its local blob directory (the default);
- ``pg_s3_1``: one relay process on PostgreSQL (fsync on) and a three-node Garage
  (replication 3), the relay addressed directly;
- ``pg_s3_3``: three relay processes on the same PostgreSQL and Garage behind HAProxy
  (``privastead.devcluster``'s routing), the load addressed to HAProxy; the WebSocket
  subscribers then sit on one relay while uploads land on any, so delivery crosses processes
  over LISTEN/NOTIFY.

For each: small (256-byte) uploads per second from ``--senders`` concurrent senders spread over
``--accounts`` households, messages per relay CPU-second (summed over the relay processes),
PostgreSQL's, Garage's and HAProxy's CPU in the same interval (they run on other machines in
a real cluster), and blob PUT/GET of 64 KiB and 1 MiB with ``--clients`` concurrent clients
(``*_ms``: mean time per request, clients x seconds / requests; ``*_mb_s``: MB/s, 1 MB = 10^6
bytes). Everything shares this machine's cores on loopback: compare within a run.

    python bench/bench_cluster_relays.py [--seconds 3] [--senders 32] [--accounts 8]

Prints a table and one JSON line (``{"bench": "cluster_relays", ...}``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

import bench_relay

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from privastead.devcluster import programs  # noqa: E402
from privastead.devcluster.garage import GarageCluster  # noqa: E402
from privastead.devcluster.haproxy import HAProxy  # noqa: E402
from privastead.devcluster.postgres import PostgresServer  # noqa: E402
from privastead.devcluster.relays import RelayInstance, server_cli, storage_config  # noqa: E402

# One account plays several senders and a subscriber: its socket shares are raised (bench_relay).
BUDGETS = "[budgets]\nsockets_per_account = 10000\nsockets_per_token = 10000\n"
SIZES = {"64k": 64 * 1024, "1m": 1024 * 1024}
TARGETS = ("sqlite_1", "pg_s3_1", "pg_s3_3")


@dataclass
class Target:
    """What one set-up exposes to the load: its URL and the processes whose CPU is counted."""

    name: str
    url: str
    relays: list[int]
    others: dict[str, Callable[[], list[int]]] = field(default_factory=dict)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (PostgreSQL forks a backend per connection)."""
    try:
        leader = psutil.Process(pid)
        return [pid, *(c.pid for c in leader.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


class CpuMeter:
    """CPU-seconds of groups of processes over an interval; a process born meanwhile (a new
    PostgreSQL backend) counts from zero."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start = {name: cpu_by_pid(pids()) for name, pids in groups.items()}

    def used(self) -> dict[str, float]:
        out = {}
        for name, pids in self.groups.items():
            now = cpu_by_pid(pids())
            out[name] = sum(v - self.start[name].get(pid, 0.0) for pid, v in now.items())
        return out


def create_mailboxes(url: str, households: list[dict[str, Any]]) -> None:
    for home in households:
        for box in home["mailboxes"]:
            req = urllib.request.Request(
                f"{url}/v1/mailboxes/{box}",
                method="PUT",
                headers={"Authorization": f"Bearer {home['token']}"},
            )
            urllib.request.urlopen(req, timeout=30).close()


def measure(target: Target, tokens: list[str], args: argparse.Namespace) -> dict[str, Any]:
    households = [
        {"token": t, "mailboxes": [os.urandom(16).hex() for _ in range(2)]} for t in tokens
    ]
    blob_boxes = [os.urandom(16).hex() for _ in range(2)]
    create_mailboxes(target.url, [*households, {"token": tokens[0], "mailboxes": blob_boxes}])
    groups = {"relay": lambda: target.relays, **target.others}
    out: dict[str, Any] = {"relays": len(target.relays), "loadavg": os.getloadavg()[0]}

    def spent(phase: str, cpu: dict[str, float], requests: int) -> None:
        """CPU milliseconds per request of the relays and of Garage (None: not in this set-up)."""
        for name in ("relay", "garage"):
            used = cpu.get(name)
            out[f"{phase}_{name}_cpu_ms"] = None if used is None else 1000 * used / max(requests, 1)

    meter = CpuMeter(groups)
    small = bench_relay.run_load(
        "small",
        {
            "url": target.url,
            "accounts": households,
            "clients": args.senders,
            "seconds": args.seconds,
        },
    )
    cpu = meter.used()
    out["messages"] = small["messages"]
    out["msgs_per_s"] = small["msgs_per_s"]
    out["relay_cpu_s"] = cpu["relay"]
    out["msgs_per_relay_cpu_s"] = small["messages"] / max(cpu["relay"], 1e-9)
    for name in ("pg", "garage", "haproxy"):
        out[f"{name}_cpu_s"] = cpu.get(name)
    backend_cpu = cpu["relay"] + (cpu.get("pg") or 0.0)
    out["msgs_per_cpu_s_with_pg"] = small["messages"] / max(backend_cpu, 1e-9)
    out["delivered"] = small["delivered"]
    out["delivery_p50_ms"] = small["p50_ms"]
    out["upload_p50_ms"] = small["upload_p50_ms"]
    for label, size in SIZES.items():
        meter = CpuMeter(groups)
        put = bench_relay.run_load(
            "put",
            {
                "url": target.url,
                "token": tokens[0],
                "mailbox": blob_boxes[0],
                "size": size,
                "clients": args.clients,
                "seconds": args.seconds,
            },
        )
        spent(f"put_{label}", meter.used(), put["requests"])
        seqs = bench_relay.upload_blobs(target.url, tokens[0], blob_boxes[1], size, 16)
        urls = [f"{target.url}/v1/mailboxes/{blob_boxes[1]}/messages/{s}" for s in seqs]
        meter = CpuMeter(groups)
        got = bench_relay.run_load(
            "get",
            {
                "urls": urls,
                "token": tokens[0],
                "size": size,
                "clients": args.clients,
                "seconds": args.seconds,
            },
        )
        spent(f"get_{label}", meter.used(), got["requests"])
        for kind, r in (("put", put), ("get", got)):
            # Little's law: with `clients` requests always in flight, each took this long.
            out[f"{kind}_{label}_ms"] = 1000 * args.clients * r["seconds"] / max(r["requests"], 1)
            out[f"{kind}_{label}_mb_s"] = r["requests"] * size / r["seconds"] / 1e6
    return out


def add_accounts(count: int, config: Path, data: Path) -> list[str]:
    return [
        server_cli("accounts", "add", f"home{i}", "--config", str(config), "--data-dir", str(data))
        .strip()
        .splitlines()[-1]
        for i in range(count)
    ]


def run_sqlite(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / "sqlite"
    (root / "logs").mkdir(parents=True)
    config = root / "relay.toml"
    config.write_text(BUDGETS)
    tokens = add_accounts(args.accounts, config, root / "data")
    relay = RelayInstance(1, root / "data", config, root / "logs")
    relay.start()
    try:
        assert relay.server is not None
        return measure(Target("sqlite_1", relay.url, [relay.server.pid]), tokens, args)
    finally:
        relay.stop()


def run_cluster(work: Path, args: argparse.Namespace, binary: Path) -> dict[str, dict[str, Any]]:
    pg_root = Path(tempfile.mkdtemp(prefix="privastead-bench-pg-"))
    postgres = PostgresServer(pg_root, fsync=True)
    garage = GarageCluster(work / "garage")
    relays: list[RelayInstance] = []
    balancer: HAProxy | None = None
    try:
        postgres.init()
        if not postgres.running():
            postgres.start()
        server_cli(
            "migrate", "--postgresql", postgres.dsn, "--password-file", str(postgres.password_file)
        )
        creds = garage.start(binary)
        config, data, logs = work / "relay.toml", work / "relay-data", work / "logs"
        logs.mkdir()
        config.write_text(
            storage_config(
                postgres.dsn, postgres.password_file, creds, creds.endpoint, work / "s3-secret"
            )
            + BUDGETS
        )
        tokens = add_accounts(args.accounts, config, data)
        assert postgres.server is not None
        pg_pid = postgres.server.pid

        def garage_pids() -> list[int]:
            return [n.server.pid for n in garage.nodes if n.server is not None]

        others: dict[str, Callable[[], list[int]]] = {
            "pg": lambda: tree(pg_pid),
            "garage": garage_pids,
        }
        results: dict[str, dict[str, Any]] = {}
        relays = [RelayInstance(i, data, config, logs) for i in range(1, 4)]
        relays[0].start()
        pids = [r.server.pid for r in relays[:1] if r.server is not None]
        results["pg_s3_1"] = measure(Target("pg_s3_1", relays[0].url, pids, others), tokens, args)
        for relay in relays[1:]:
            relay.start()
        balancer = HAProxy(work / "haproxy", [r.port for r in relays])
        balancer.start()
        assert balancer.server is not None
        haproxy_pid = balancer.server.pid
        pids = [r.server.pid for r in relays if r.server is not None]
        target = Target("pg_s3_3", balancer.url, pids, {**others, "haproxy": lambda: [haproxy_pid]})
        results["pg_s3_3"] = measure(target, tokens, args)
        return results
    finally:
        if balancer is not None:
            balancer.stop()
        for relay in relays:
            relay.stop()
        garage.stop()
        postgres.stop()
        shutil.rmtree(pg_root, ignore_errors=True)


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


ROWS = (
    ("small uploads msg/s", "msgs_per_s", ",.0f"),
    ("  per relay CPU-second (all relays)", "msgs_per_relay_cpu_s", ",.0f"),
    ("  per CPU-second, relays + PostgreSQL", "msgs_per_cpu_s_with_pg", ",.0f"),
    ("  relay CPU-s used", "relay_cpu_s", ".2f"),
    ("  PostgreSQL CPU-s used", "pg_cpu_s", ".2f"),
    ("  Garage CPU-s used", "garage_cpu_s", ".2f"),
    ("  HAProxy CPU-s used", "haproxy_cpu_s", ".2f"),
    ("  upload answer p50 ms", "upload_p50_ms", ".1f"),
    ("  upload -> WebSocket p50 ms", "delivery_p50_ms", ".1f"),
    ("blob PUT 64 KiB ms", "put_64k_ms", ".1f"),
    ("blob GET 64 KiB ms", "get_64k_ms", ".1f"),
    ("blob PUT 64 KiB MB/s", "put_64k_mb_s", ".0f"),
    ("blob GET 64 KiB MB/s", "get_64k_mb_s", ".0f"),
    ("blob PUT 1 MiB ms", "put_1m_ms", ".1f"),
    ("blob GET 1 MiB ms", "get_1m_ms", ".1f"),
    ("blob PUT 1 MiB MB/s", "put_1m_mb_s", ".0f"),
    ("blob GET 1 MiB MB/s", "get_1m_mb_s", ".0f"),
    ("  relay CPU ms per 1 MiB PUT", "put_1m_relay_cpu_ms", ".1f"),
    ("  relay CPU ms per 1 MiB GET", "get_1m_relay_cpu_ms", ".1f"),
    ("  Garage CPU ms per 1 MiB PUT (3 nodes)", "put_1m_garage_cpu_ms", ".1f"),
    ("  Garage CPU ms per 1 MiB GET", "get_1m_garage_cpu_ms", ".1f"),
    ("load average (1 min) at start", "loadavg", ".1f"),
)


def table(result: dict[str, Any]) -> None:
    print(
        f"relay cluster benchmark: {result['senders']} senders over {result['accounts']} "
        f"accounts, {result['clients']} blob clients, {result['seconds']:g} s per load, "
        f"{result['cpus']} CPUs shared by everything"
    )
    print(f"  {'':<40} {'sqlite_1':>12} {'pg_s3_1':>12} {'pg_s3_3':>12}")
    for label, key, spec in ROWS:
        cells = " ".join(f"{fmt((result[t] or {}).get(key), spec):>12}" for t in TARGETS)
        print(f"  {label:<40} {cells}")
    if result.get("cluster_skipped"):
        print(f"pg_s3_1, pg_s3_3 skipped: {result['cluster_skipped']}")


def _interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so that the servers started here are stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs PostgreSQL, HAProxy (scripts/system-deps.sh) and Garage (scripts/garage.sh).",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each load")
    parser.add_argument("--senders", type=int, default=32, help="concurrent small uploaders")
    parser.add_argument(
        "--accounts", type=int, default=8, help="households the senders are spread over"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent blob clients")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "bench": "cluster_relays",
        "seconds": args.seconds,
        "senders": args.senders,
        "accounts": args.accounts,
        "clients": args.clients,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
    }
    work = Path(tempfile.mkdtemp(prefix="privastead-bench-relays-"))
    start = time.monotonic()
    try:
        # Both found before anything starts; missing, the cluster columns are skipped and
        # the message says how to install them.
        binary: Path | None = programs.garage()
        programs.haproxy()
    except programs.MissingProgramError as exc:
        binary = None
        result["pg_s3_1"] = result["pg_s3_3"] = None
        result["cluster_skipped"] = str(exc)
    try:
        result["sqlite_1"] = run_sqlite(work, args)
        if binary is not None:
            result.update(run_cluster(work, args, binary))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_end"] = os.getloadavg()[0]
    result["wall_s"] = time.monotonic() - start
    table(result)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
