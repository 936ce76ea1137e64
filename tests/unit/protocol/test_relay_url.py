"""The relay URL policy: https:// everywhere, http:// only to loopback unless asked for."""

from __future__ import annotations

import pytest

from privastead.errors import ConfigError
from privastead.protocol.relay_url import check_relay_url, is_loopback_host
from privastead.relay.client import RelayClient


@pytest.mark.parametrize(
    "url",
    [
        "https://relay.example.org",
        "https://203.0.113.5:8443/r",
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:1",
        "http://relay.localhost",
        "http://[::1]:80",
    ],
)
def test_allowed(url: str) -> None:
    assert check_relay_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://relay.example.org",
        "http://192.168.1.2:8080",
        "http://[2001:db8::1]",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_off_the_machine_is_refused_with_what_to_do(url: str) -> None:
    with pytest.raises(ConfigError, match=r"Use https://.*PRIVASTEAD_INSECURE_HTTP=1"):
        check_relay_url(url)
    assert check_relay_url(url, insecure_http=True) == url


@pytest.mark.parametrize(
    "url", ["ftp://relay.example.org", "relay.example.org", "https://", "http://[::1"]
)
def test_not_a_relay_url(url: str) -> None:
    with pytest.raises(ConfigError, match="relay URL"):
        check_relay_url(url, insecure_http=True)


def test_loopback_hosts() -> None:
    assert is_loopback_host("LOCALHOST.")
    assert not is_loopback_host("10.0.0.1")


async def test_the_relay_client_refuses_before_sending_a_token() -> None:
    with pytest.raises(ConfigError, match="plain http://"):
        RelayClient("http://relay.example.org", "secret-token")
    async with RelayClient("http://relay.example.org", "t", insecure_http=True) as c:
        assert c.base_url == "http://relay.example.org"


def test_the_environment_opts_in_for_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://relay.lan:8080"
    with pytest.raises(ConfigError, match="PRIVASTEAD_INSECURE_HTTP=1"):
        check_relay_url(url)
    monkeypatch.setenv("PRIVASTEAD_INSECURE_HTTP", "1")
    assert check_relay_url(url) == url


def test_an_explicit_refusal_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVASTEAD_INSECURE_HTTP", "1")
    with pytest.raises(ConfigError):
        check_relay_url("http://relay.lan", insecure_http=False)


def test_the_hub_config_applies_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from privastead.hub import config as hubconfig

    text = '[relay]\nurl = "http://relay.lan:8080"\n'
    with pytest.raises(ConfigError, match="PRIVASTEAD_INSECURE_HTTP"):
        hubconfig.parse(text)
    monkeypatch.setenv("PRIVASTEAD_INSECURE_HTTP", "1")
    assert hubconfig.parse(text).relay.url == "http://relay.lan:8080"
