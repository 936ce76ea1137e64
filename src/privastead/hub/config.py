"""The hub's config file, ``hub.toml``: where data goes and which cameras to read.

    [hub]
    data_dir = "~/.local/share/privastead/hub"   # clips land in <data_dir>/clips unless clips_dir

    [[cameras]]
    name = "garden"
    url = "rtsp://192.168.1.20:554/stream1"
    substream_url = "rtsp://192.168.1.20:554/stream2"  # optional: detect on the small stream
    username = "admin"
    password_file = "/etc/privastead/garden.pass"       # or password_env = "GARDEN_PASSWORD"
    transport = "tcp"                                   # or "udp", or "auto" (UDP, TCP on loss)
    audio = "auto"                                      # or "aac" (all audio to AAC), "off"
    decode = "keyframes"                                # or "full"
    continuous = true                                   # record 24/7 too (off by default)
    recording_days = 14                                 # this camera's own retention

    [cameras.detection]                                 # privastead.media.settings
    sensitivity = 0.6
    [cameras.events]
    pre_roll = 5.0

    [storage]                                           # retention and the full disk
    recording_days = 7
    clip_days = 30
    min_free_gb = 2

Passwords never live in the file (nor in a URL): ``password_file`` or ``password_env``. The
camera may ask for Basic or Digest authentication; FFmpeg answers either (Digest when the
camera offers both). ``privastead-hub discover`` writes these blocks for ONVIF cameras.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from privastead import configfile
from privastead.errors import ConfigError
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.storage_config import StorageSection
from privastead.media.audio import AudioPolicy
from privastead.media.ingest import IngestSettings
from privastead.media.settings import DetectionSettings, EventSettings
from privastead.media.transport import TransportMode
from privastead.protocol.relay_url import check_relay_url
from privastead.relay.accounts import split_token


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "privastead" / "hub"


def _check_url(url: str, key: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps"):
        raise ValueError(f"{key} must be an rtsp:// or rtsps:// URL, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"{key} has no host: {url!r}")
    if parts.password is not None:
        raise ValueError(
            f"{key} contains a password; remove it and set password_file (or password_env)"
        )


@dataclass(frozen=True)
class HubSection:
    """Where the hub keeps its state, and how it reports."""

    #: The hub's state: MLS groups, outbox, device list, clips (0700). Default:
    #: $XDG_DATA_HOME/privastead/hub, i.e. ~/.local/share/privastead/hub.
    data_dir: Path = field(default_factory=default_data_dir)
    #: Where clips, thumbnails and their sidecars go (default: <data_dir>/clips).
    clips_dir: Path | None = None
    #: Seconds between status lines on stderr (0: none).
    status_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.status_interval < 0:
            raise ValueError("status_interval must be >= 0")

    @property
    def clips(self) -> Path:
        return self.paths().clips

    def paths(self) -> HubDataDir:
        """Every path of the hub's data directory (``clips_dir`` included)."""
        return HubDataDir(self.data_dir, self.clips_dir)


@dataclass(frozen=True)
class CameraConfig:
    """One camera (repeat the table for each)."""

    #: The camera's name in events, clips and on clients: letters, digits, '-' and '_'.
    name: str
    #: The main stream, recorded as is: rtsp:// or rtsps://, without a password in it.
    url: str
    #: A low-resolution stream of the same camera to run detection on (optional).
    substream_url: str | None = None
    #: The camera's user name, if it needs one.
    username: str | None = None
    #: A file holding the camera's password (never the password itself in this file).
    password_file: Path | None = None
    #: Or: an environment variable holding the password.
    password_env: str | None = None
    #: RTP over "tcp" (interleaved: works through anything), "udp", or "auto": UDP, moving
    #: to TCP when UDP loses more than 1 % of its packets, is refused or is blocked.
    transport: TransportMode = "tcp"
    #: The camera's audio: "auto" copies AAC and Opus and turns G.711 into AAC; "aac" makes
    #: everything AAC (for players without Opus in MP4); "off" records video only.
    audio: AudioPolicy = "auto"
    #: "keyframes" decodes only keyframes while nothing moves (a fraction of the CPU) and
    #: every frame during motion; "full" always decodes every frame.
    decode: Literal["full", "keyframes"] = "keyframes"
    #: Record this camera 24/7 in segments on the hub's disk (<data_dir>/recordings), beside
    #: the event clips. Off by default: it needs disk (a 4K camera at 16 Mbit/s: ~170 GB a day).
    continuous: bool = False
    #: Length of a continuous-recording segment in seconds (default: [storage]).
    segment_seconds: float | None = None
    #: Days of this camera's continuous recording to keep (default: [storage]; 0: no limit).
    recording_days: float | None = None
    #: GB (10^9 bytes) of this camera's continuous recording to keep at most (default: none).
    recording_gb: float | None = None
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    events: EventSettings = field(default_factory=EventSettings)

    def __post_init__(self) -> None:
        for key in ("segment_seconds", "recording_days", "recording_gb"):
            value = getattr(self, key)
            if value is not None and (value < 0 or (value == 0 and key != "recording_days")):
                raise ValueError(f"{key} must be positive")
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, '-' and '_' only")
        _check_url(self.url, "url")
        if self.substream_url is not None:
            _check_url(self.substream_url, "substream_url")
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set password_file or password_env, not both")
        if (self.password_file or self.password_env) and not self.username:
            raise ValueError("a password needs a username")

    def password(self) -> str | None:
        """The camera password from its file or environment variable (``ConfigError`` if
        missing), or None without credentials."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"camera {self.name}: cannot read password_file {self.password_file}: "
                    f"{exc.strerror}"
                ) from None
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"camera {self.name}: environment variable {self.password_env} is not set"
                )
            return value
        return None

    def ingest_settings(self, base: IngestSettings | None = None) -> IngestSettings:
        """``base`` (timeouts, backoff) with this camera's transport and audio choices."""
        return dataclasses.replace(
            base or IngestSettings(), transport=self.transport, audio_policy=self.audio
        )

    def with_credentials(self, url: str) -> str:
        """``url`` with the username and password inserted (for the reader only; never log it)."""
        if not self.username:
            return url
        parts = urlsplit(url)
        secret = self.password()
        auth = quote(self.username, safe="")
        if secret is not None:
            auth += ":" + quote(secret, safe="")
        netloc = f"{auth}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class RelaySection:
    """Where encrypted events go (``[relay]``). Without ``url`` the hub only records locally.
    (``hub_name`` of older files is refused: clients name a hub by its cameras.)

    The hub's owner token (``privastead-server accounts add``) comes from ``token_file`` or
    the environment variable ``token_env``, never from this file.
    """

    #: Keys of older hub.toml files, refused with what to do instead (never silently ignored).
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "hub_name": "clients name a hub by its cameras (from the pairing code); delete the line",
    }

    #: The relay's address, https:// (http:// only on this machine, or on a trusted network
    #: with PRIVASTEAD_INSECURE_HTTP=1 in the environment of the hub and the app).
    url: str = ""
    #: A file holding the hub's owner token (`privastead-server accounts add NAME > FILE`).
    token_file: Path | None = None
    #: Or: the environment variable that holds the owner token.
    token_env: str = "PRIVASTEAD_HUB_TOKEN"  # noqa: S105 - a variable name
    #: Most ciphertext (MB) kept waiting for the relay; the oldest clips go first past it.
    outbox_quota_mb: float = 1024.0
    #: Uploaded ciphertext (MB) kept to answer clients' resend requests.
    resend_retention_mb: float = 64.0
    #: Seconds between heartbeats in every camera's control group (clients judge freshness
    #: by the hub time inside them: keep this well below their offline threshold, 150 s).
    heartbeat_interval: float = 60.0
    #: Seconds an epoch of any group may live at most before the hub commits new keys (clips
    #: and livestreams rotate more often; the control group relies on this).
    key_rotation_interval: float = 86400.0
    #: Keep the recorded MP4 after its ciphertext is durable (tests compare bytes).
    keep_plaintext_clips: bool = False

    def __post_init__(self) -> None:
        if self.url:
            try:
                check_relay_url(self.url)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        if self.outbox_quota_mb <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("outbox_quota_mb and heartbeat_interval must be positive")
        if self.key_rotation_interval <= 0:
            raise ValueError("key_rotation_interval must be positive")

    def token(self) -> str:
        """The owner token (``ConfigError`` says where it was looked for, or what is wrong).

        Surrounding whitespace is fine (an editor's final newline); anything else that is not
        one relay token is refused here, naming its source, rather than failing later as a
        malformed HTTP header.
        """
        if self.token_file is not None:
            try:
                text = self.token_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(
                    f"[relay] cannot read token_file {self.token_file}: {reason}"
                ) from None
            return _one_token(text, f"token_file {self.token_file}")
        value = os.environ.get(self.token_env, "")
        if not value.strip():
            raise ConfigError(
                f"[relay] no owner token: set token_file or the environment variable "
                f"{self.token_env} (create one with `privastead-server accounts add NAME`)"
            )
        return _one_token(value, f"environment variable {self.token_env}")


_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")  # base64url: what an HTTP header carries as is


def _one_token(text: str, source: str) -> str:
    token = text.strip()
    if split_token(token) is None or not _TOKEN_CHARS.fullmatch(token):
        lines = len(token.splitlines())
        found = f"{lines} lines" if lines > 1 else "something else"
        raise ConfigError(
            f"[relay] {source} must hold one relay token (pst_...) and nothing else, but holds "
            f"{found}: write the token alone, e.g. `privastead-server accounts add NAME > FILE`"
        )
    return token


def _local_address(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"listen must be HOST:PORT (e.g. 127.0.0.1:9814), not {listen!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(
                f"listen: {host!r} is not an IP address (use 127.0.0.1 or a LAN address)"
            ) from None
        return host, int(port_text)
    if address.is_unspecified or not (address.is_loopback or address.is_private):
        raise ValueError(
            f"listen: {host} is not a loopback or private address; the endpoint has no "
            "authentication, so it only listens on this machine or the home network"
        )
    return host, int(port_text)


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus metrics and a health check over HTTP (``[metrics]``), for people who watch
    the hub with their own monitoring. Off by default; no authentication, local addresses only.
    """

    #: Serve GET /metrics (Prometheus text format) and GET /health (JSON: 200 when every camera
    #: is connected, 503 otherwise) on ``listen``.
    enabled: bool = False
    #: HOST:PORT to listen on: a loopback or private (home network) address, never a public one.
    listen: str = "127.0.0.1:9814"

    def __post_init__(self) -> None:
        _local_address(self.listen)

    def address(self) -> tuple[str, int]:
        return _local_address(self.listen)


@dataclass(frozen=True)
class HubConfig:
    hub: HubSection = field(default_factory=HubSection)
    cameras: tuple[CameraConfig, ...] = ()
    relay: RelaySection = field(default_factory=RelaySection)  # keeps positional use
    metrics: MetricsSection = field(default_factory=MetricsSection)
    storage: StorageSection = field(default_factory=StorageSection)

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique: {', '.join(duplicates)}")


def load(path: Path) -> HubConfig:
    config = configfile.load(path, HubConfig)
    if not config.cameras:
        raise ConfigError(f"{path}: no [[cameras]] configured")
    return config


def parse(text: str, source: str = "<hub.toml>") -> HubConfig:
    return configfile.parse(text, HubConfig, source=source)


__all__ = [
    "CameraConfig",
    "HubConfig",
    "HubSection",
    "MetricsSection",
    "RelaySection",
    "StorageSection",
    "default_data_dir",
    "load",
    "parse",
]
