"""The relay's config model: strict file, environment overrides, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.errors import ConfigError
from privastead.relay import config


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
