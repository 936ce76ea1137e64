"""`[relay]` in hub.toml: strict keys, token from a file or the environment, never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.errors import ConfigError
from privastead.hub import config as hubconfig

TOKEN = "pst_" + "a1b2c3d4e5f6a7b8" + "_" + "x" * 43  # the relay's token format
BASE = """
[hub]
data_dir = "/tmp/x"
[[cameras]]
name = "door"
url = "rtsp://127.0.0.1:8554/cam"
"""


def test_relay_token_comes_from_its_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(f"\n  {TOKEN}\r\n\n")  # surrounding whitespace is fine
    cfg = hubconfig.parse(BASE + f'[relay]\nurl = "http://127.0.0.1:1"\ntoken_file = "{token}"\n')
    assert cfg.relay.token() == TOKEN
    assert cfg.relay.keep_plaintext_clips is False


def test_missing_token_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVASTEAD_HUB_TOKEN", raising=False)
    cfg = hubconfig.parse(BASE + '[relay]\nurl = "http://127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="PRIVASTEAD_HUB_TOKEN"):
        cfg.relay.token()
    monkeypatch.setenv("PRIVASTEAD_HUB_TOKEN", TOKEN + "\n")
    assert cfg.relay.token() == TOKEN
    monkeypatch.setenv("PRIVASTEAD_HUB_TOKEN", "from-env")
    with pytest.raises(ConfigError, match="environment variable PRIVASTEAD_HUB_TOKEN must hold"):
        cfg.relay.token()


@pytest.mark.parametrize(
    "content",
    [
        # what `accounts add NAME > FILE` wrote before it printed the token alone
        f"account home created; owner token (shown once):\n{TOKEN}\n",
        f"{TOKEN} {TOKEN}\n",
        f"Bearer {TOKEN}\n",
        TOKEN[:-1] + "\u00e9\n",
        "",
    ],
)
def test_a_token_file_holding_anything_else_is_refused_naming_it(
    tmp_path: Path, content: str
) -> None:
    token = tmp_path / "owner-token"
    token.write_text(content)
    cfg = hubconfig.parse(BASE + f'[relay]\nurl = "http://127.0.0.1:1"\ntoken_file = "{token}"\n')
    with pytest.raises(ConfigError, match=f"token_file {token} must hold one relay token"):
        cfg.relay.token()


def test_an_unreadable_token_file_is_named(tmp_path: Path) -> None:
    token = tmp_path / "owner-token"
    token.write_bytes(b"\xff\xfe")
    cfg = hubconfig.parse(BASE + f'[relay]\nurl = "http://127.0.0.1:1"\ntoken_file = "{token}"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        cfg.relay.token()


def test_a_token_inline_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="token"):
        hubconfig.parse(BASE + '[relay]\nurl = "http://127.0.0.1:1"\ntoken = "x"\n')


def test_relay_url_must_be_http() -> None:
    with pytest.raises(ConfigError):
        hubconfig.parse(BASE + '[relay]\nurl = "ftp://relay"\n')
