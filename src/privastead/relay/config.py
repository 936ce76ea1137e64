"""The relay's one strict config model: a TOML file, then environment overrides.

Secrets (the metrics operator token, the FCM service-account key) are never in the file
itself: the file names a path, or the environment carries them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from privastead import configfile
from privastead.errors import ConfigError
from privastead.relay.backends.settings import StorageSettings

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Limits:
    """Sizes, counts and timeouts that bound what one client can make the relay do."""

    max_blob_size: int = 8 * MiB  # largest message body (clip fragments)
    # Bodies up to this size live in the database, so one commit (one fsync, shared by every
    # upload waiting) makes them durable; larger ones go to files (an fsync, a rename and a
    # directory fsync each) or the object store. 64 KiB halved the CPU of a 64 KiB upload.
    inline_max: int = 64 * KiB
    list_body_max: int = 16 * KiB  # bodies up to this size come with a listing, not fetched
    max_push_payload: int = 4 * KiB  # opaque wake-up ciphertext carried by FCM / webhook
    default_ttl_seconds: int = 7 * 24 * 3600  # a message unread this long is deleted
    account_quota_bytes: int = 2 * 1024 * MiB  # per account, oldest messages evicted first
    max_list: int = 1000  # messages per listing page
    max_wait_seconds: int = 60  # long-poll cap
    max_websockets: int = 10_000  # concurrent WebSockets (subscriptions + live), all accounts
    ws_queue_events: int = 256  # per subscription socket; overflow => one "resync" event
    live_queue_frames: int = 64  # per viewer; overflow => frames dropped for that viewer
    max_live_frame: int = 2 * MiB  # largest live fragment frame
    idle_timeout: float = 15.0  # no complete request header within this => connection closed
    body_timeout: float = 30.0  # no body bytes for this long => 408, nothing stored
    # After the grace, a body must keep up with this floor rate (bytes/s) or get 408: a
    # trickle must not hold a connection, a handler and a temp file for days.
    body_grace_seconds: float = 10.0
    body_min_rate: int = 8 * KiB  # the floor rate (bytes/s) a body must keep after the grace
    shutdown_timeout: float = 20.0  # graceful stop waits this long for in-flight requests

    def __post_init__(self) -> None:
        if self.inline_max > self.max_blob_size:
            raise ValueError("inline_max must not exceed max_blob_size")
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive")


@dataclass(frozen=True)
class Budgets:
    """Each household's share of what all share (``budgets.py``): past its share a request
    is refused (429) before any work; the global limits (503) are the last resort."""

    sockets_per_account: int = 64  # WebSockets: subscriptions, live publishers and viewers
    sockets_per_token: int = 32  # ... of one token
    waits_per_account: int = 64  # pending long-polls
    waits_per_token: int = 32  # ... of one token
    waits_total: int = 10_000  # ... of all accounts (the last resort)
    bodies_per_account: int = 64  # request bodies being received at once
    bodies_per_token: int = 48  # ... of one token
    bodies_total: int = 2_048  # ... of all accounts (the last resort)
    live_sessions_per_account: int = 8  # live sessions (a publisher or viewers) at once
    live_sessions_total: int = 2_000  # ... of all accounts (the last resort)
    live_viewer_queue_bytes: int = 8 * MiB  # frames queued for one viewer, in bytes
    live_account_queue_bytes: int = 32 * MiB  # ... for all viewers of one account
    # PostgreSQL backend: an account's slots are leases counted by every relay process;
    # each process renews its own every third of this. A process that dies without giving
    # its leases back (kill -9, power loss) holds the account's slots this long at most.
    lease_seconds: float = 15.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive")


@dataclass(frozen=True)
class AuthConfig:
    """Tokens: throttling of failures (per token id and per client address), revocations.

    See ``throttle.py``: only failing requests are ever slowed; the first ``max_failures``
    failures of a key within ``window_seconds`` are free, each further one locks the key for
    ``base_delay_seconds`` doubled per failure, up to ``max_delay_seconds``.
    """

    max_failures: int = 10  # failures of one key within window_seconds that are free
    window_seconds: float = 60.0  # the window in which failures are counted
    base_delay_seconds: float = 1.0  # the first lock after max_failures, doubled per failure
    max_delay_seconds: float = 300.0  # the longest lock
    cache_seconds: float = 2.0  # how long a token lookup is trusted
    # Behind a reverse proxy every client has the proxy's address: name the proxies (CIDR)
    # whose client_address_header is believed (right-most untrusted hop = the client).
    trusted_proxies: tuple[str, ...] = ()
    client_address_header: str = "X-Forwarded-For"  # read only from trusted_proxies
    # Tombstones of revoked tokens (so a removed device is told, not throttled) are kept this
    # long, and at most accounts.REVOKED_PER_ACCOUNT per account.
    revoked_retention_days: float = 30.0
    # How often a running relay looks for revocations made elsewhere (the CLI).
    revocation_poll_seconds: float = 0.5

    def __post_init__(self) -> None:
        for net in self.trusted_proxies:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {net!r} is not an address or CIDR") from None
        for name in ("window_seconds", "base_delay_seconds", "max_delay_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_failures < 0 or self.revocation_poll_seconds <= 0:
            raise ValueError("max_failures must be >= 0 and revocation_poll_seconds positive")


@dataclass(frozen=True)
class PushConfig:
    """Wake-up pushes: FCM via firebase-admin, and webhooks."""

    # Path of the Firebase service-account JSON (a secret: kept out of this file's contents).
    fcm_credentials_file: Path | None = None
    fcm_project_id: str = ""  # the Firebase project to send through (default: the key file's)
    # Override of the FCM send URL ("{project}" is replaced). Tests point this, and the
    # key file's token_uri, at a local stand-in because Google cannot be reached there.
    fcm_endpoint: str = ""
    webhook_allow_http: bool = False  # plain-http webhooks (tests, private networks)
    retries: int = 3  # further attempts after a failed push
    retry_delay_seconds: float = 0.5  # first delay between attempts (doubling)
    timeout_seconds: float = 10.0  # one push attempt's deadline
    max_in_flight: int = 256  # pushes waiting in all; beyond this dropped and counted
    concurrency: int = 64  # pushes being sent at once, all accounts
    per_account_concurrency: int = 2  # ... of one account (a silent webhook holds no more)
    per_account_queue: int = 32  # pushes one account may have waiting
    # Webhooks reach public Internet addresses only; list networks (CIDR) to allow more,
    # e.g. a UnifiedPush distributor on the operator's own network.
    webhook_allow_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelayConfig:
    """The relay server (top-level keys; PRIVASTEAD_RELAY_<KEY> overrides some)."""

    data_dir: Path = Path("relay-data")  # the database and blob files (0700)
    host: str = "127.0.0.1"  # address to listen on
    port: int = 8080  # port to listen on
    tls_cert: Path | None = None  # PEM certificate chain: serve HTTPS (with tls_key)
    tls_key: Path | None = None  # PEM private key of tls_cert
    durability: Literal["full", "normal"] = "full"  # SQLite synchronous= (full survives power loss)
    metrics_token_file: Path | None = None  # operator token for /metrics (or the environment)
    sweep_interval_seconds: float = 30.0  # TTL sweep; 0 disables the background sweeper
    log_format: Literal["text", "json"] = "text"  # log lines on stderr
    # uvloop answers small requests about 15 % cheaper; blob files go out by the kernel's
    # sendfile() under both (uvloop has no loop.sendfile, so the relay calls it itself).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Who accepts connections. "native": a Rust front process answers single small uploads
    # and message downloads itself and forwards every other request to this relay; "python":
    # this relay serves everything; "auto": native with SQLite storage and without TLS (the
    # front speaks plain HTTP and writes SQLite), else python.
    front: Literal["auto", "native", "python"] = "auto"
    limits: Limits = field(default_factory=Limits)
    auth: AuthConfig = field(default_factory=AuthConfig)
    budgets: Budgets = field(default_factory=Budgets)
    push: PushConfig = field(default_factory=PushConfig)
    # Where the index and the blobs live: the data directory (SQLite + files, the default),
    # or PostgreSQL + an S3 store shared by several relay processes.
    storage: StorageSettings = field(default_factory=StorageSettings)

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.front not in ("auto", "native", "python"):
            raise ValueError("front is auto, native or python")


# Environment variables that override (or supply secrets to) the file.
ENV_PREFIX = "PRIVASTEAD_RELAY_"
METRICS_TOKEN_ENV = "PRIVASTEAD_RELAY_METRICS_TOKEN"  # noqa: S105 - a variable name


def load(path: Path | None, env: Mapping[str, str] | None = None) -> RelayConfig:
    """Read ``path`` (or defaults) and apply ``PRIVASTEAD_RELAY_*`` overrides."""
    config = configfile.load(path, RelayConfig) if path else RelayConfig()
    return apply_env(config, os.environ if env is None else env)


def apply_env(config: RelayConfig, env: Mapping[str, str]) -> RelayConfig:
    changes: dict[str, object] = {}
    for name, convert in (
        ("data_dir", Path),
        ("host", str),
        ("port", int),
        ("tls_cert", Path),
        ("tls_key", Path),
        ("metrics_token_file", Path),
        ("front", str),
    ):
        raw = env.get(ENV_PREFIX + name.upper())
        if raw:
            try:
                changes[name] = convert(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: bad value {raw!r}") from None
    try:
        return dataclasses.replace(config, **changes) if changes else config  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}*: {exc}") from None


def metrics_token(config: RelayConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The operator token that guards ``/metrics``: from the environment or a file."""
    env = os.environ if env is None else env
    token = env.get(METRICS_TOKEN_ENV, "").strip()
    if token:
        return token
    if config.metrics_token_file is not None:
        try:
            token = config.metrics_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"metrics_token_file: cannot read: {exc}") from None
        if len(token) < 16:
            raise ConfigError("metrics_token_file: token must have at least 16 characters")
        return token
    return None


__all__ = [
    "AuthConfig",
    "Budgets",
    "Limits",
    "PushConfig",
    "RelayConfig",
    "apply_env",
    "load",
    "metrics_token",
]
