"""The hub's config file, ``hub.toml``: where data goes and which cameras to read.

    [hub]
    data_dir = "~/.local/share/privastead/hub"   # clips land in <data_dir>/clips unless clips_dir

    [[cameras]]
    name = "garden"
    url = "rtsp://192.168.1.20:554/stream1"
    substream_url = "rtsp://192.168.1.20:554/stream2"  # optional: detect on the small stream
    username = "admin"
    password_file = "/etc/privastead/garden.pass"       # or password_env = "GARDEN_PASSWORD"
    decode = "keyframes"                                # or "full"

    [cameras.detection]                                 # privastead.media.settings
    sensitivity = 0.6
    [cameras.events]
    pre_roll = 5.0

Passwords never live in the file (nor in a URL): ``password_file`` or ``password_env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from privastead import configfile
from privastead.errors import ConfigError
from privastead.media.settings import DetectionSettings, EventSettings


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
    data_dir: Path = field(default_factory=default_data_dir)
    clips_dir: Path | None = None  # default: <data_dir>/clips
    status_interval: float = 5.0  # seconds between status lines on stderr (0 = none)

    def __post_init__(self) -> None:
        if self.status_interval < 0:
            raise ValueError("status_interval must be >= 0")

    @property
    def clips(self) -> Path:
        return self.clips_dir if self.clips_dir is not None else self.data_dir / "clips"


@dataclass(frozen=True)
class CameraConfig:
    name: str
    url: str
    substream_url: str | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    decode: Literal["full", "keyframes"] = "keyframes"
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    events: EventSettings = field(default_factory=EventSettings)

    def __post_init__(self) -> None:
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

    The hub's owner token (``privastead-server accounts add``) comes from ``token_file`` or
    the environment variable ``token_env``, never from this file.
    """

    url: str = ""
    token_file: Path | None = None
    token_env: str = "PRIVASTEAD_HUB_TOKEN"  # noqa: S105 - a variable name
    hub_name: str = "home"
    outbox_quota_mb: float = 1024.0
    resend_retention_mb: float = 64.0  # uploaded ciphertext kept to answer resend requests
    heartbeat_interval: float = 60.0  # seconds between heartbeats in every control group
    # every group gets new keys at least this often (seconds); clips and livestreams more often
    key_rotation_interval: float = 86400.0
    keep_plaintext_clips: bool = False  # keep the recorded MP4 after its ciphertext is durable

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, not {self.url!r}")
        if self.outbox_quota_mb <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("outbox_quota_mb and heartbeat_interval must be positive")
        if self.key_rotation_interval <= 0:
            raise ValueError("key_rotation_interval must be positive")

    def token(self) -> str:
        """The owner token (``ConfigError`` says where it was looked for)."""
        if self.token_file is not None:
            try:
                return self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"[relay] cannot read token_file {self.token_file}: {exc.strerror}"
                ) from None
        value = os.environ.get(self.token_env, "").strip()
        if not value:
            raise ConfigError(
                f"[relay] no owner token: set token_file or the environment variable "
                f"{self.token_env} (create one with `privastead-server accounts add NAME`)"
            )
        return value


@dataclass(frozen=True)
class HubConfig:
    hub: HubSection = field(default_factory=HubSection)
    cameras: tuple[CameraConfig, ...] = ()
    relay: RelaySection = field(default_factory=RelaySection)  # last: keeps positional use

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
    "RelaySection",
    "default_data_dir",
    "load",
    "parse",
]
