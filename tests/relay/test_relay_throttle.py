"""The throttle of failed authentication: a valid token is never refused because of someone
else's failures; failures are counted per token id and per client address (the real client
behind a trusted proxy), every malformed secret included, with growing delays."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict
from relay_harness import InProcess, start_inprocess

from privastead.clock import FakeClock
from privastead.relay.config import AuthConfig, RelayConfig
from privastead.relay.throttle import ClientAddress


async def _me(url: str, token: str, headers: dict[str, str] | None = None) -> tuple[int, str, int]:
    """(status, error code or kind, Retry-After) of GET /v1/me."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(url + "/v1/me", headers={"Authorization": f"Bearer {token}", **(headers or {})}) as r,
    ):
        body = await r.json()
        code = body["error"]["code"] if r.status >= 400 else body["kind"]
        return r.status, code, int(r.headers.get("Retry-After", "0"))


BAD_SECRETS = [
    "pst_bad",
    "nonsense",
    "pst_0123456789abcdef_" + "é" * 43,  # non-ASCII: a failure like any other, not a 500
    "pst_0123456789abcdef_" + "\u00a0" * 43,
    "pst_" + "\uff10" * 10 + "abcdef_" + "A" * 43,  # full-width digits pass str.isalnum()
    "pst_0000000000000000_" + "A" * 43,  # well formed, unknown
]


async def test_failures_are_throttled_but_valid_tokens_always_served(inproc: InProcess) -> None:
    auth = inproc.state.config.auth
    for i in range(auth.max_failures):
        status, code, _ = await _me(inproc.url, BAD_SECRETS[i % len(BAD_SECRETS)])
        assert (status, code) == (401, "unauthorized")
    waits = []
    for _ in range(4):
        status, code, wait = await _me(inproc.url, "pst_bad")
        assert (status, code) == (429, "too_many_attempts")
        waits.append(wait)
        # The household's valid token from the same address: served, every time.
        assert (await _me(inproc.url, inproc.owner_token))[:2] == (200, "owner")
    assert waits == sorted(waits) and waits[-1] > waits[0], "delays grow"
    # A quiet address starts afresh after its lock and the window.
    inproc.clock.advance(auth.max_delay_seconds + auth.window_seconds + 1)
    assert (await _me(inproc.url, "pst_bad"))[:2] == (401, "unauthorized")


async def test_wrong_secrets_for_a_token_id_never_lock_the_token(inproc: InProcess) -> None:
    """Anyone can learn a token id (it is the first part of the token); guessing its secret
    from many addresses locks the guesses, not the token or its account."""
    token_id = inproc.owner_token.split("_")[1]
    auth = inproc.state.config.auth
    for _ in range(auth.max_failures + 3):
        status, _, _ = await _me(inproc.url, f"pst_{token_id}_{'B' * 43}")
        assert status in (401, 429)
    assert inproc.state.auth.throttle.retry_after(["tid:" + token_id]) > 0
    assert (await _me(inproc.url, inproc.owner_token))[:2] == (200, "owner")
    async with inproc.client() as owner:
        device = await owner.create_device("phone")
    assert (await _me(inproc.url, device.token))[:2] == (200, "device")


@pytest.fixture
async def behind_proxy(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcess]:
    cfg = RelayConfig(
        auth=dataclasses.replace(AuthConfig(), trusted_proxies=("127.0.0.0/8",), max_failures=3)
    )
    relay = await start_inprocess(tmp_path, clock, cfg)
    try:
        yield relay
    finally:
        await relay.server.close()


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
    behind_proxy: InProcess,
) -> None:
    relay = behind_proxy
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    neighbour = {"X-Forwarded-For": "198.51.100.9, 127.0.0.1"}  # via a second proxy hop
    for _ in range(3):
        assert (await _me(relay.url, "pst_bad", attacker))[0] == 401
    assert (await _me(relay.url, "pst_bad", attacker))[0] == 429
    # Hops a client wrote into the header itself are ignored: the right-most untrusted hop
    # counts, i.e. what the proxy appended, so the attacker cannot pose as someone else.
    spoof = {"X-Forwarded-For": "192.0.2.1, 203.0.113.7"}
    assert (await _me(relay.url, "pst_bad", spoof))[0] == 429
    # Another client behind the same proxy fails on its own count.
    assert (await _me(relay.url, "pst_bad", neighbour))[0] == 401
    assert (await _me(relay.url, relay.owner_token, attacker))[:2] == (200, "owner")


class _Request:
    """What ``ClientAddress`` reads of a request: the peer address, the headers, and the
    connection (``protocol``: none from the native front here)."""

    def __init__(self, remote: str | None, forwarded: str | None) -> None:
        self.remote = remote
        self.protocol = None
        self.headers = CIMultiDict({"X-Forwarded-For": forwarded} if forwarded else {})


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "key"),
    [
        ("198.51.100.1", "203.0.113.7", (), "addr:198.51.100.1"),  # header ignored: no proxy
        ("10.0.0.2", "203.0.113.7", ("10.0.0.0/8",), "addr:203.0.113.7"),
        ("10.0.0.2", "junk, 203.0.113.7", ("10.0.0.0/8",), "addr:203.0.113.7"),
        ("10.0.0.2", "203.0.113.7, junk", ("10.0.0.0/8",), "addr:10.0.0.2"),
        ("10.0.0.2", None, ("10.0.0.0/8",), "addr:10.0.0.2"),
        ("::ffff:198.51.100.1", None, (), "addr:198.51.100.1"),
        ("2001:db8:1:2:3:4:5:6", None, (), "addr:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", None, (), "addr:2001:db8:1:2::/64"),
        (None, None, (), "addr:?"),
    ],
)
def test_client_address_keys(
    remote: str | None, forwarded: str | None, trusted: tuple[str, ...], key: str
) -> None:
    addresses = ClientAddress(AuthConfig(trusted_proxies=trusted))
    assert addresses.key(_Request(remote, forwarded)) == key  # type: ignore[arg-type]
