"""The relay's config model: strict file, environment overrides, secrets from files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.errors import ConfigError
from privastead.relay import config
from privastead.relay.backends.settings import S3_SECRET_ENV


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('port = 9000\ndata_dir = "/srv/relay"\n[limits]\nmax_blob_size = 1048576\n')
    cfg = config.load(path, env={"PRIVASTEAD_RELAY_PORT": "9443"})
    assert cfg.port == 9443  # the environment wins
    assert cfg.data_dir == Path("/srv/relay")
    assert cfg.limits.max_blob_size == 1048576
    with pytest.raises(ConfigError, match="PRIVASTEAD_RELAY_PORT"):
        config.load(path, env={"PRIVASTEAD_RELAY_PORT": "eighty"})


def test_invalid_values_are_errors_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('tls_cert = "/x.pem"\n')
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        config.load(path, env={})
    path.write_text("[limits]\ninline_max = 99999999999\n")
    with pytest.raises(ConfigError, match="inline_max must not exceed max_blob_size"):
        config.load(path, env={})
    path.write_text('durability = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"relay\.toml:1: durability: must be one of"):
        config.load(path, env={})


def test_metrics_token_comes_from_env_or_file_never_the_config(tmp_path: Path) -> None:
    secret = tmp_path / "metrics.token"
    secret.write_text("0123456789abcdef0123\n")
    cfg = config.RelayConfig(metrics_token_file=secret)
    assert config.metrics_token(cfg, env={}) == "0123456789abcdef0123"
    assert config.metrics_token(cfg, env={config.METRICS_TOKEN_ENV: "from-env"}) == "from-env"
    assert config.metrics_token(config.RelayConfig(), env={}) is None
    secret.write_text("short")
    with pytest.raises(ConfigError, match="at least 16"):
        config.metrics_token(cfg, env={})


STORAGE = """
[storage]
backend = "postgresql"
[storage.postgresql]
dsn = "postgresql://privastead@127.0.0.1:{port}/privastead"
connect_timeout_seconds = 2.0
[storage.s3]
endpoint = "http://127.0.0.1:9"
bucket = "blobs"
access_key_id = "GK1"
"""


def test_storage_tables_are_strict(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        '[storage]\nbackend = "postgresql"\n[storage.postgresql]\npassword_file = "x"\n'
    )
    with pytest.raises(ConfigError, match=r"relay\.toml.*dsn"):
        config.load(path, env={})
    path.write_text('[storage]\nbackend = "postgresql"\n')
    with pytest.raises(ConfigError, match=r"needs \[storage\.postgresql\] and \[storage\.s3\]"):
        config.load(path, env={})
    path.write_text(STORAGE.format(port=5432).replace('"postgresql"\n', '"sqlite"\n', 1))
    with pytest.raises(ConfigError, match="only with backend = 'postgresql'"):
        config.load(path, env={})
    path.write_text(STORAGE.format(port=5432) + 'dsn = "x"\n')
    with pytest.raises(ConfigError, match=r"relay\.toml"):  # a key twice
        config.load(path, env={})


def test_an_unreachable_database_stops_the_relay_naming_the_setting(
    tmp_path: Path, free_port: int
) -> None:
    """Nothing listens on the DSN's port: the relay exits with one line that names
    [storage.postgresql] dsn and what to check, not a traceback (and no password)."""
    cfg = tmp_path / "relay.toml"
    cfg.write_text(STORAGE.format(port=free_port))
    out = subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, S3_SECRET_ENV: "s3-secret-not-in-output"},
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "[storage.postgresql] dsn" in out.stderr and str(free_port) in out.stderr
    assert "PostgreSQL runs" in out.stderr
    assert "Traceback" not in out.stderr and "s3-secret-not-in-output" not in out.stderr
    # No S3 secret at all: refused before anything is contacted, naming where it goes.
    out = subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != S3_SECRET_ENV},
        cwd=tmp_path,
    )
    assert out.returncode != 0 and "secret_key_file" in out.stderr
