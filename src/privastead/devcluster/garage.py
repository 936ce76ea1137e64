"""A Garage cluster on loopback: N nodes, replication 3, a layout, a bucket and an access key.

Each node has its own directory, ports and config; every address is bound to 127.0.0.1. The
RPC secret and admin token are files (0600) that no config or command line contains. The
bootstrap goes through Garage's admin API (v2, JSON over HTTP), the same calls an operator
makes with ``garage node connect`` / ``layout assign`` / ``layout apply`` / ``bucket create`` /
``key create`` / ``bucket allow``, and is idempotent, so a restarted cluster keeps its data.

Config choices, against Garage's defaults (read in its configuration reference):
- ``replication_factor = 3`` with one zone per node: every object on all three nodes; reads and
  writes need two (``consistency_mode = "consistent"``), so one node may fail.
- ``compression_level = "none"``: blobs are ciphertext, zstd would spend CPU for nothing.
- ``metadata_fsync`` / ``data_fsync``: off by default in Garage, which relies on replication;
  ``durable=True`` turns both on (what ``docs/deploy-cluster.md`` recommends).
- ``s3_web`` and ``k2v_api`` are not configured (not used), and the admin API listens on
  loopback only with a token.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privastead.devcluster import programs
from privastead.devcluster.process import ServerProcess, Supervised
from privastead.errors import StorageError
from privastead.ports import free_port

REGION = "garage"


@dataclass(frozen=True)
class S3Credentials:
    endpoint: str
    region: str
    bucket: str
    access_key_id: str
    secret_access_key: str


@dataclass
class GarageNode(Supervised):
    stop_signal = signal.SIGINT  # Garage's graceful shutdown
    index: int
    root: Path
    rpc_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    server: ServerProcess | None = field(default=None, repr=False)
    node_id: str = ""

    @property
    def config(self) -> Path:
        return self.root / "garage.toml"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def rpc_addr(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    def write_config(self, secrets_dir: Path, durable: bool) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsync = "true" if durable else "false"
        self.config.write_text(
            f"""# Garage node {self.index} of a loopback cluster (privastead.devcluster)
metadata_dir = "{self.root / "meta"}"
data_dir = "{self.root / "data"}"
db_engine = "lmdb"
lmdb_map_size = "1GiB"
replication_factor = 3
consistency_mode = "consistent"
metadata_fsync = {fsync}
data_fsync = {fsync}
compression_level = "none"
rpc_bind_addr = "{self.rpc_addr}"
rpc_public_addr = "{self.rpc_addr}"
rpc_secret_file = "{secrets_dir / "rpc_secret"}"
bootstrap_peers = []

[s3_api]
api_bind_addr = "127.0.0.1:{self.s3_port}"
s3_region = "{REGION}"

[admin]
api_bind_addr = "127.0.0.1:{self.admin_port}"
admin_token_file = "{secrets_dir / "admin_token"}"
"""
        )

    def start(self, binary: Path) -> None:
        self.server = ServerProcess(
            f"garage{self.index}",
            [str(binary), "-c", str(self.config), "server"],
            self.root / "garage.log",
            env={"RUST_LOG": "garage=warn", "PATH": "/usr/bin:/bin"},
        )
        self.server.start()


@dataclass
class GarageCluster:
    """``start()`` brings every node up and bootstraps the cluster once."""

    root: Path
    nodes_count: int = 3
    bucket: str = "privastead-blobs"
    key_name: str = "privastead-relay"
    durable: bool = False
    nodes: list[GarageNode] = field(default_factory=list)
    credentials: S3Credentials | None = None
    binary: Path = field(default_factory=programs.garage_path)

    def __post_init__(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = self.root / "ports.json"
        if state.exists():  # a restarted cluster keeps its ports (peers remember them)
            ports = json.loads(state.read_text())
        else:
            ports = [[free_port(), free_port(), free_port()] for _ in range(self.nodes_count)]
            state.write_text(json.dumps(ports))
        self.nodes = [
            GarageNode(i, self.root / f"node{i}", rpc, s3, admin)
            for i, (rpc, s3, admin) in enumerate(ports)
        ]

    @property
    def admin_token(self) -> str:
        return (self.root / "admin_token").read_text().strip()

    def _secrets(self) -> None:
        for name, value in (
            ("rpc_secret", secrets.token_hex(32)),
            ("admin_token", secrets.token_urlsafe(32)),
        ):
            path = self.root / name
            if not path.exists():
                path.touch(mode=0o600)
                path.write_text(value + "\n")

    def start(self, binary: Path | None = None, timeout: float = 60.0) -> S3Credentials:
        self.binary = binary or programs.garage()
        self._secrets()
        for node in self.nodes:
            node.write_config(self.root, self.durable)
            node.start(self.binary)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.node_id = self._wait_node_id(node, deadline)
        self._connect(deadline)
        self._layout()
        self.wait_healthy(deadline - time.monotonic())
        self.credentials = self._bucket_and_key()
        return self.credentials

    def _call(
        self, node: GarageNode, method: str, endpoint: str, body: Any = None, timeout: float = 10
    ) -> Any:
        """One admin API v2 call; raises ``StorageError`` with Garage's message on failure."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{node.admin_port}/v2/{endpoint}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.admin_token}"}
            | ({"Content-Type": "application/json"} if data is not None else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise StorageError(f"garage admin {endpoint}: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise StorageError(f"garage admin {endpoint}: {exc}") from None
        return json.loads(raw) if raw else None

    def _wait_node_id(self, node: GarageNode, deadline: float) -> str:
        while True:
            if not node.running():
                assert node.server is not None
                raise StorageError(f"garage node {node.index} exited: {node.server.tail()}")
            try:
                info = self._call(node, "GET", "GetNodeInfo?node=self", timeout=2)
                return str(next(iter(info["success"])))
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _connect(self, deadline: float) -> None:
        first, *others = self.nodes
        peers = [f"{n.node_id}@{n.rpc_addr}" for n in others]
        while True:
            results = self._call(first, "POST", "ConnectClusterNodes", peers)
            status = self._call(first, "GET", "GetClusterStatus")
            up = {n["id"] for n in status["nodes"] if n["isUp"]}
            if all(n.node_id in up for n in self.nodes):
                return
            if time.monotonic() > deadline:
                raise StorageError(f"garage nodes did not connect: {results}")
            time.sleep(0.2)

    def _layout(self) -> None:
        first = self.nodes[0]
        layout = self._call(first, "GET", "GetClusterLayout")
        if layout["version"] > 0:
            return  # assigned on a previous start
        roles = [
            {"id": n.node_id, "zone": f"z{n.index}", "capacity": 1 << 30, "tags": []}
            for n in self.nodes
        ]
        self._call(first, "POST", "UpdateClusterLayout", {"roles": roles})
        self._call(first, "POST", "ApplyClusterLayout", {"version": 1})

    def health(self) -> dict[str, Any]:
        node = next(n for n in self.nodes if n.running())
        result: dict[str, Any] = self._call(node, "GET", "GetClusterHealth", timeout=5)
        return result

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every node up and every partition fully replicated."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.health()
            except StorageError:
                health = {}
            if health.get("status") == "healthy":
                return
            if time.monotonic() > deadline:
                raise StorageError(f"garage cluster not healthy: {health}")
            time.sleep(0.2)

    def _bucket_and_key(self) -> S3Credentials:
        saved = self.root / "s3-credentials.json"
        if saved.exists():
            return S3Credentials(**json.loads(saved.read_text()))
        node = self.nodes[0]
        bucket = self._call(node, "POST", "CreateBucket", {"globalAlias": self.bucket})
        key = self._call(node, "POST", "CreateKey", {"name": self.key_name})
        self._call(
            node,
            "POST",
            "AllowBucketKey",
            {
                "bucketId": bucket["id"],
                "accessKeyId": key["accessKeyId"],
                "permissions": {"read": True, "write": True, "owner": False},
            },
        )
        credentials = S3Credentials(
            endpoint=node.s3_endpoint,
            region=REGION,
            bucket=self.bucket,
            access_key_id=key["accessKeyId"],
            secret_access_key=key["secretAccessKey"],
        )
        saved.touch(mode=0o600)
        saved.write_text(json.dumps(credentials.__dict__))
        return credentials

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


__all__ = ["REGION", "GarageCluster", "GarageNode", "S3Credentials"]
