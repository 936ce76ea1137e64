"""Bearer-token authentication, deny by default.

Every handler needs a valid token unless it is marked ``@public`` (only ``/healthz``) or
``@operator`` (``/metrics``, which takes the operator token from a file or the environment).
A token that checks out is always served; failures are throttled per token id and per client
address (``throttle.py``); a revoked token gets 401 ``device_removed`` (a device token) or
``token_revoked``, an expired one ``token_expired``, and neither counts as a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from aiohttp import web

from privastead.clock import Clock
from privastead.errors import RelayRejectedError
from privastead.relay import accounts
from privastead.relay.accounts import Principal
from privastead.relay.api import DEVICE_REMOVED, TOKEN_EXPIRED
from privastead.relay.config import AuthConfig
from privastead.relay.httputil import RetryAfter, retry_after_of
from privastead.relay.revocations import code_for
from privastead.relay.storage import Storage
from privastead.relay.throttle import ClientAddress, SharedThrottle, Throttle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
PRINCIPAL = web.RequestKey("principal", Principal)
_MAX_CACHED = 100_000  # bounded memory under a flood of distinct tokens


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


class Authenticator:
    """Turns a bearer token into a ``Principal`` (or raises 401/429); see ``throttle.py``."""

    def __init__(
        self, storage: Storage, config: AuthConfig, clock: Clock, operator_token: str | None
    ) -> None:
        self._storage = storage
        self._config = config
        self._clock = clock
        self._operator = operator_token
        self.throttle = Throttle(config, clock)
        # Failures counted by every relay process together (PostgreSQL backend), set by the
        # app; None: this process's throttle alone (one SQLite relay).
        self.shared: SharedThrottle | None = None
        self.addresses = ClientAddress(config)
        # sha256(token) -> (principal, checked at); short-lived, and revocations drop their
        # entry at once (``forget``), so only the cost of a lookup is saved.
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._cache_key: dict[str, bytes] = {}  # token id -> its cache key
        # sha256(token) -> error code of a token that is right but over (revoked): a removed
        # device that keeps retrying costs a dictionary lookup, not a database read.
        self._over: dict[bytes, str] = {}

    def forget(self, token_id: str) -> None:
        """Drop a revoked token's cached principal."""
        key = self._cache_key.pop(token_id, None)
        if key is not None:
            self._cache.pop(key, None)

    async def principal(self, request: web.BaseRequest) -> Principal:
        # The client's address (parsed, perhaps from a proxy's header) is needed only to
        # count a failure: a valid token in the cache costs a hash and a lookup.
        token = _bearer(request)
        if token is None:
            await self.refuse([self.addresses.key(request)], "send Authorization: Bearer <token>")
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._cache.get(key)
        if cached is not None and self._clock.monotonic() - cached[1] < self._config.cache_seconds:
            p = cached[0]
            if p.expires_at is None or self._clock.time() < p.expires_at:
                return p
        over = self._over.get(key)
        if over is not None:
            raise revoked_error(over)
        parts = accounts.split_token(token)
        if parts is None:  # malformed (non-ASCII, wrong length...): a failure like any other
            await self.refuse([self.addresses.key(request)], "invalid, expired or revoked token")
        result = await self._storage.verify_token(
            token_id=parts[0], secret=parts[1], now=self._clock.time()
        )
        if isinstance(result, Principal):
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
                self._cache_key.clear()
            self._cache[key] = (result, self._clock.monotonic())
            self._cache_key[result.token_id] = key
            return result
        if result.reason == "revoked":
            code = code_for(result.kind)
            if len(self._over) >= _MAX_CACHED:
                self._over.clear()
            self._over[key] = code
            raise revoked_error(code)
        if result.reason == "expired":
            raise revoked_error(TOKEN_EXPIRED)
        keys = [self.addresses.key(request)]
        if result.reason == "wrong_secret":
            keys.append("tid:" + result.token_id)
        return await self.refuse(keys, "invalid, expired or revoked token")

    async def locked(self, keys: list[str]) -> None:
        """Raise 429 if one of ``keys`` is locked, here or (shared) on any relay process."""
        wait = self.throttle.retry_after(keys)
        if wait <= 0 and self.shared is not None:
            wait = await self.shared.retry_after(keys)
        if wait > 0:
            raise _too_many(wait)

    async def count_failure(self, keys: list[str]) -> None:
        """Count one failure of each key (a public route's bad guess), here and shared."""
        self.throttle.fail(keys)
        if self.throttle.retry_after(keys) <= 0 and self.shared is not None:
            await self.shared.fail(keys)

    async def refuse(self, keys: list[str], message: str) -> NoReturn:
        """Count a failure; 429 once a key is locked, else 401 with ``message``. A key this
        process has locked already is refused without asking the shared throttle."""
        self.throttle.fail(keys)
        wait = self.throttle.retry_after(keys)
        if wait <= 0 and self.shared is not None:
            wait = await self.shared.fail(keys)
        if wait > 0:
            raise _too_many(wait)
        raise RelayRejectedError(message, 401, "unauthorized")

    async def check_operator(self, request: web.BaseRequest) -> None:
        token = _bearer(request)
        if self._operator is None:
            raise RelayRejectedError(
                "metrics are disabled: no operator token configured", 403, "forbidden"
            )
        if token is None or not hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), self._operator.encode()
        ):
            await self.refuse([self.addresses.key(request)], "operator token required")


def _too_many(wait: float) -> RelayRejectedError:
    error = RelayRejectedError("too many failed attempts; retry later", 429, "too_many_attempts")
    error.__cause__ = RetryAfter(math.ceil(wait))
    return error


def revoked_error(code: str) -> RelayRejectedError:
    """The 401 for a token that is right but over (revoked or expired)."""
    if code == TOKEN_EXPIRED:
        return RelayRejectedError("this token has expired", 401, code)
    if code == DEVICE_REMOVED:
        return RelayRejectedError(
            "this device was removed from the account: pair it again", 401, code
        )
    return RelayRejectedError("this token was revoked", 401, code)


def _bearer(request: web.BaseRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_owner(p: Principal) -> None:
    if p.kind != "owner":
        raise RelayRejectedError("this needs the account's owner token", 403, "forbidden")


def require_device(p: Principal) -> None:
    """Device rows and push targets belong to devices (and the owner), never to a
    restricted token: a pairing code must not be able to create either."""
    if p.kind == "restricted":
        raise RelayRejectedError("this needs a device or owner token", 403, "forbidden")


def require_mailbox(p: Principal, mailbox: str) -> None:
    if not p.may_use(mailbox):
        raise RelayRejectedError("this token may not use that mailbox", 403, "forbidden")


__all__ = [
    "PRINCIPAL",
    "Authenticator",
    "access_of",
    "operator",
    "public",
    "require_device",
    "require_mailbox",
    "require_owner",
    "retry_after_of",
    "revoked_error",
]
