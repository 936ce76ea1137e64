"""Bearer-token authentication, deny by default, with throttling of failed attempts.

Every handler needs a valid token unless it is marked ``@public`` (only ``/healthz``) or
``@operator`` (``/metrics``, which takes the operator token from a file or the environment).
After ``max_failures`` failed attempts within ``window_seconds``, a client address, and
separately the account a presented token id belongs to, is locked out for
``lockout_seconds``: every request from it gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from privastead.clock import Clock
from privastead.errors import RelayRejectedError
from privastead.relay import accounts
from privastead.relay.accounts import Principal
from privastead.relay.config import AuthConfig
from privastead.relay.db import Database

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
PRINCIPAL = web.RequestKey("principal", Principal)
_log = logging.getLogger(__name__)
_MAX_TRACKED = 100_000  # bounded memory under a flood of distinct addresses


def public(handler: H) -> H:
    """Mark a handler as reachable without a token."""
    handler.__privastead_access__ = "public"  # type: ignore[attr-defined]
    return handler


def operator(handler: H) -> H:
    """Mark a handler as reachable with the operator token only."""
    handler.__privastead_access__ = "operator"  # type: ignore[attr-defined]
    return handler


def access_of(handler: Any) -> str:
    return str(getattr(handler, "__privastead_access__", "token"))


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class Throttle:
    """Counts failures per key ("addr:..." or "acct:...") on the injected clock."""

    def __init__(self, config: AuthConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._keys: dict[str, _Failures] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: not locked)."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock.monotonic())

    def fail(self, key: str) -> None:
        now = self._clock.monotonic()
        if len(self._keys) >= _MAX_TRACKED:
            self._prune(now)
        entry = self._keys.setdefault(key, _Failures())
        entry.times.append(now)
        while entry.times and entry.times[0] <= now - self._config.window_seconds:
            entry.times.popleft()
        if len(entry.times) >= self._config.max_failures:
            entry.locked_until = now + self._config.lockout_seconds
            entry.times.clear()
            _log.warning("auth lockout (%s) after repeated failures", key.partition(":")[0])

    def _prune(self, now: float) -> None:
        horizon = now - self._config.window_seconds
        for key in [
            k
            for k, e in self._keys.items()
            if e.locked_until <= now and (not e.times or e.times[-1] <= horizon)
        ]:
            del self._keys[key]
        if len(self._keys) >= _MAX_TRACKED:  # still full: forget the oldest half
            for key in list(self._keys)[: _MAX_TRACKED // 2]:
                del self._keys[key]


class Authenticator:
    """Turns a bearer token into a ``Principal`` (or raises 401/429)."""

    def __init__(
        self, db: Database, config: AuthConfig, clock: Clock, operator_token: str | None
    ) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._operator = operator_token
        self.throttle = Throttle(config, clock)
        # sha256(token) -> (principal, checked at); short-lived so CLI revocations apply fast.
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    def forget(
        self,
        *,
        token_id: str | None = None,
        account: str | None = None,
        device_id: str | None = None,
    ) -> None:
        """Drop cached principals after a revocation through the API."""
        for key, (p, _) in list(self._cache.items()):
            if (token_id and p.token_id == token_id) or (
                account and p.account == account and (device_id in (None, p.device_id))
            ):
                del self._cache[key]

    def _locked(self, key: str) -> None:
        wait = self.throttle.retry_after(key)
        if wait > 0:
            raise RelayRejectedError(
                "too many failed attempts; retry later",
                429,
                "too_many_attempts",
            ) from _RetryAfter(math.ceil(wait))

    async def principal(self, request: web.Request) -> Principal:
        addr = "addr:" + (request.remote or "?")
        self._locked(addr)
        token = _bearer(request)
        if token is None:
            raise RelayRejectedError("send Authorization: Bearer <token>", 401, "unauthorized")
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self._clock.time()
        cached = self._cache.get(key)
        if cached is not None and self._clock.monotonic() - cached[1] < self._config.cache_seconds:
            p = cached[0]
            if p.expires_at is None or now < p.expires_at:
                return p
        parts = accounts.split_token(token)
        result: Principal | str = ""
        if parts is not None:
            result = self._db.read(
                partial(accounts.verify_token, token_id=parts[0], secret=parts[1], now=now)
            )
        if isinstance(result, Principal):
            self._locked("acct:" + result.account)
            if len(self._cache) > _MAX_TRACKED:
                self._cache.clear()
            self._cache[key] = (result, self._clock.monotonic())
            return result
        if result:
            self._locked("acct:" + result)
            self.throttle.fail("acct:" + result)
        self.throttle.fail(addr)
        raise RelayRejectedError("invalid, expired or revoked token", 401, "unauthorized")

    def check_operator(self, request: web.Request) -> None:
        addr = "addr:" + (request.remote or "?")
        self._locked(addr)
        token = _bearer(request)
        if self._operator is None:
            raise RelayRejectedError(
                "metrics are disabled: no operator token configured", 403, "forbidden"
            )
        if token is None or not hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), self._operator.encode()
        ):
            self.throttle.fail(addr)
            raise RelayRejectedError("operator token required", 401, "unauthorized")


class _RetryAfter(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def retry_after_of(exc: BaseException) -> int | None:
    cause = exc.__cause__
    return cause.seconds if isinstance(cause, _RetryAfter) else None


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_owner(p: Principal) -> None:
    if p.kind != "owner":
        raise RelayRejectedError("this needs the account's owner token", 403, "forbidden")


def require_mailbox(p: Principal, mailbox: str) -> None:
    if not p.may_use(mailbox):
        raise RelayRejectedError("this token may not use that mailbox", 403, "forbidden")


__all__ = [
    "PRINCIPAL",
    "Authenticator",
    "Throttle",
    "access_of",
    "operator",
    "public",
    "require_mailbox",
    "require_owner",
    "retry_after_of",
]
