"""`[relay]` in hub.toml: strict keys, token from a file or the environment, never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.errors import ConfigError
from privastead.hub import config as hubconfig

BASE = """
[hub]
data_dir = "/tmp/x"
[[cameras]]
name = "door"
url = "rtsp://127.0.0.1:8554/cam"
"""


def test_relay_token_comes_from_its_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    cfg = hubconfig.parse(BASE + f'[relay]\nurl = "http://127.0.0.1:1"\ntoken_file = "{token}"\n')
    assert cfg.relay.token() == "secret-token"
    assert cfg.relay.keep_plaintext_clips is False


def test_missing_token_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVASTEAD_HUB_TOKEN", raising=False)
    cfg = hubconfig.parse(BASE + '[relay]\nurl = "http://127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="PRIVASTEAD_HUB_TOKEN"):
        cfg.relay.token()
    monkeypatch.setenv("PRIVASTEAD_HUB_TOKEN", "from-env")
    assert cfg.relay.token() == "from-env"


def test_a_token_inline_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="token"):
        hubconfig.parse(BASE + '[relay]\nurl = "http://127.0.0.1:1"\ntoken = "x"\n')


def test_relay_url_must_be_http() -> None:
    with pytest.raises(ConfigError):
        hubconfig.parse(BASE + '[relay]\nurl = "ftp://relay"\n')
