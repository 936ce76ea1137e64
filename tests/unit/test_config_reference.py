"""docs/config.md and `privastead-hub init` come from the config models and stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.cli.config_reference import hub_keys, relay_keys, render
from privastead.cli.hub.init import render as init_text
from privastead.hub import config as hubconfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_reference_page_is_current() -> None:
    page = (ROOT / "docs" / "config.md").read_text()
    assert page == render(), (
        "docs/config.md is out of date: python -m privastead.cli.config_reference docs/config.md"
    )


@pytest.mark.parametrize("keys", [hub_keys, relay_keys], ids=["hub.toml", "relay.toml"])
def test_every_key_says_what_it_means(keys: object) -> None:
    assert callable(keys)
    undocumented = [f"{k.table}.{k.key}" for k in keys() if not k.doc]
    assert not undocumented, f"add a comment to these config fields: {undocumented}"


def test_init_writes_a_config_whose_shown_defaults_are_the_defaults(tmp_path: Path) -> None:
    text = init_text([("gate", "rtsp://10.0.0.5/s1"), ("yard", "rtsp://10.0.0.6/s1")])
    written = hubconfig.parse(text)
    assert [(c.name, c.url) for c in written.cameras] == [
        ("gate", "rtsp://10.0.0.5/s1"),
        ("yard", "rtsp://10.0.0.6/s1"),
    ]
    # Uncomment every "# key = value": the file must mean exactly the defaults it shows.
    uncommented = re.sub(r"(?m)^# (\w+ = .+)$", r"\1", text)
    assert uncommented != text
    assert hubconfig.parse(uncommented) == written


def test_init_sets_the_relay_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "hub.toml"
    token = tmp_path / "owner-token"
    cmd = [sys.executable, "-m", "privastead.cli.hub", "init", str(target)]
    args = ["--camera", "gate=rtsp://10.0.0.5/s1", "--relay", "https://relay.example"]
    first = subprocess.run(
        [*cmd, *args, "--token-file", str(token)], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    config = hubconfig.load(target)
    assert config.relay.url == "https://relay.example" and config.relay.token_file == token
    before = target.read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "exists already" in again.stderr
    assert target.read_text() == before
