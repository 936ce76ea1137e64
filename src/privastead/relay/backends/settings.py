"""Typed settings of the shared backends: PostgreSQL and an S3-compatible object store.

Meant to be a ``[storage]`` table of ``relay.toml`` (strict: unknown keys are errors). Secrets
are never in the file: a DSN carries no password (``password_file`` or the environment does),
and the S3 secret key comes from ``secret_key_file`` or the environment.

    [storage]
    backend = "postgresql"            # or "sqlite" (the default: one data directory)

    [storage.postgresql]
    dsn = "postgresql://privastead@db1:5432/privastead?sslmode=verify-full"
    password_file = "/etc/privastead/pg-password"

    [storage.s3]
    endpoint = "http://127.0.0.1:3900"
    bucket = "privastead-blobs"
    access_key_id = "GK..."
    secret_key_file = "/etc/privastead/s3-secret"
    public_endpoint = "https://s3.example.org"   # presigned URLs for clients; empty: none
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from privastead.errors import ConfigError

PG_PASSWORD_ENV = "PRIVASTEAD_RELAY_PG_PASSWORD"  # noqa: S105 - a variable name
S3_SECRET_ENV = "PRIVASTEAD_RELAY_S3_SECRET_KEY"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class PostgresSettings:
    dsn: str  # postgresql://user@host:port/database[?sslmode=...], without a password
    password_file: Path | None = None  # the role's password (or PRIVASTEAD_RELAY_PG_PASSWORD)
    min_connections: int = 2  # pooled connections kept open by each relay process
    max_connections: int = 16  # per relay process; PostgreSQL's max_connections bounds the sum
    statement_timeout_seconds: float = 10.0  # no query runs longer (the server cancels it)
    connect_timeout_seconds: float = 5.0  # to open one connection

    def __post_init__(self) -> None:
        parts = urlsplit(self.dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("dsn must start with postgresql://")
        if parts.password is not None:
            raise ValueError(
                "dsn must not contain a password: use password_file or the environment"
            )
        if not 1 <= self.min_connections <= self.max_connections:
            raise ValueError("need 1 <= min_connections <= max_connections")

    def password(self, env: Mapping[str, str] | None = None) -> str | None:
        """From ``$PRIVASTEAD_RELAY_PG_PASSWORD``, else ``password_file``; None: none needed."""
        return _secret(env, PG_PASSWORD_ENV, self.password_file, "postgresql.password_file")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # where the relay reaches the store (a load balancer over its nodes)
    bucket: str  # the blobs' bucket (made beforehand: the relay never creates one)
    access_key_id: str  # an identifier, not a secret
    secret_key_file: Path | None = None  # the key's secret (or PRIVASTEAD_RELAY_S3_SECRET_KEY)
    region: str = "garage"  # the store's region name (Garage: s3_region of garage.toml)
    prefix: str = "blobs/"  # object names start with this
    public_endpoint: str = ""  # where clients reach it for presigned GETs; empty: no presigning
    presign_seconds: int = 300  # lifetime of a presigned GET URL
    # Bodies up to this size are uploaded in one PUT; larger ones in parts of part_size.
    multipart_threshold: int = 16 * 1024 * 1024
    part_size: int = 8 * 1024 * 1024  # one part of a multipart upload (S3 minimum: 5 MiB)
    max_connections: int = 64  # concurrent connections to the store per relay process

    def __post_init__(self) -> None:
        for name in ("endpoint", "public_endpoint"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme not in ("http", "https"):
                raise ValueError(f"{name} must be an http:// or https:// URL")
        if self.part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        if not 1 <= self.presign_seconds <= 7 * 24 * 3600:
            raise ValueError("presign_seconds must be between 1 and 604800")

    def secret_key(self, env: Mapping[str, str] | None = None) -> str:
        secret = _secret(env, S3_SECRET_ENV, self.secret_key_file, "s3.secret_key_file")
        if not secret:
            raise ConfigError(f"s3: set secret_key_file or {S3_SECRET_ENV}")
        return secret


@dataclass(frozen=True)
class StorageSettings:
    # sqlite: the data directory, one process; postgresql: [storage.postgresql] and
    # [storage.s3], shared by any number of relay processes
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    postgresql: PostgresSettings | None = None  # the index, with backend = "postgresql"
    s3: S3Settings | None = None  # the blobs, with backend = "postgresql"

    def __post_init__(self) -> None:
        if self.backend == "postgresql" and (self.postgresql is None or self.s3 is None):
            raise ValueError("backend = 'postgresql' needs [storage.postgresql] and [storage.s3]")
        if self.backend == "sqlite" and (self.postgresql is not None or self.s3 is not None):
            raise ValueError(
                "[storage.postgresql] and [storage.s3] are used only with backend = 'postgresql'"
                " (set it, or remove them)"
            )


def _secret(env: Mapping[str, str] | None, name: str, path: Path | None, key: str) -> str | None:
    env = os.environ if env is None else env
    value = env.get(name, "").strip()
    if value:
        return value
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None


__all__ = [
    "PG_PASSWORD_ENV",
    "S3_SECRET_ENV",
    "PostgresSettings",
    "S3Settings",
    "StorageSettings",
]
