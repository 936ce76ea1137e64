"""Small HTTP helpers shared by the handlers: JSON errors, bounded JSON bodies, id checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from privastead.errors import RelayRejectedError
from privastead.relay.api import is_mailbox_id
from privastead.relay.bodies import reader

MAX_JSON_BODY = 64 * 1024
MAX_JSON_DEPTH = 16  # our documents nest 3 deep; anything deeper is refused, never recursed


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The one error shape of the API: ``{"error": {"code": ..., "message": ...}}``."""
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


class RetryAfter(Exception):
    """Set as the ``__cause__`` of a refusal to add ``Retry-After: seconds`` to it."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def retry_after_of(exc: BaseException) -> int | None:
    cause = exc.__cause__
    return cause.seconds if isinstance(cause, RetryAfter) else None


def reject(status: int, code: str, message: str) -> RelayRejectedError:
    return RelayRejectedError(message, status, code)


def mailbox_param(request: web.Request, name: str = "mailbox") -> str:
    value = request.match_info[name]
    if not is_mailbox_id(value):
        raise reject(400, "bad_mailbox_id", "ids are 32 lowercase hex characters (128 bits)")
    return value


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise reject(400, "bad_query", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise reject(400, "bad_query", f"{name} must be between {low} and {high}")
    return value


def body_limit(limit: int) -> Callable[[web.Request], None]:
    """A pre-body check: a declared Content-Length over ``limit`` is 413 at once."""

    def check(request: web.Request) -> None:
        length = request.content_length
        if length is not None and length > limit:
            raise reject(413, "body_too_large", f"bodies here are limited to {limit} bytes")

    return check


JSON_SPACE = b" \t\n\r"  # whitespace as JSON defines it (RFC 8259)


async def read_json(
    request: web.Request, *, optional: bool = False, limit: int = MAX_JSON_BODY
) -> dict[str, Any]:
    """A JSON object body of at most ``limit`` bytes (400 / 413 otherwise)."""
    length = request.content_length
    if length is not None and length > limit:
        raise reject(413, "body_too_large", f"JSON bodies are limited to {limit} bytes")
    parts: list[bytes] = []
    body = reader(request)  # stall timeout and floor rate: a trickle gets 408
    try:
        async for chunk in body.chunks():  # a body may arrive in many chunks
            if body.received > limit:
                raise reject(413, "body_too_large", f"JSON bodies are limited to {limit} bytes")
            parts.append(chunk)
    except (ConnectionError, HttpProcessingError, asyncio.IncompleteReadError):
        raise reject(400, "truncated", "the body ended early or was malformed") from None
    raw = b"".join(parts)
    if not raw.strip(JSON_SPACE):  # bytes.strip() would also take \x0b and \x0c
        if optional:
            return {}
        raise reject(400, "bad_json", "a JSON object body is required")
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise reject(400, "bad_json", "the body must be a JSON object")
    return data


def parse_json(raw: bytes | str) -> Any:
    """Parse a JSON document from a client: 400 ``bad_json`` for anything we would not
    store or echo safely (invalid syntax or UTF-8, nesting deeper than ``MAX_JSON_DEPTH``,
    strings with lone surrogates, which no UTF-8 encoder accepts). The parser itself stops
    at Python's recursion limit; the walk after it costs one step per value, not per byte."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise reject(400, "bad_json", "the body is not valid JSON") from None
    problem = _check(data)
    if problem:
        raise reject(400, "bad_json", problem)
    return data


def _check(value: Any) -> str:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "strings must be valid Unicode (no lone surrogates)"
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return ""


def field_int(
    data: dict[str, Any], name: str, low: int, high: int, default: int | None = None
) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise reject(400, "bad_field", f"{name} must be an integer between {low} and {high}")
    return value


def only_keys(data: dict[str, Any], *allowed: str) -> None:
    """Unknown keys are errors, not silently ignored (a typo must not look accepted)."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise reject(400, "unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")


def field_str(
    data: dict[str, Any],
    name: str,
    max_len: int,
    default: str | None = None,
    *,
    nullable: bool = False,
) -> str | None:
    if name in data and data[name] is None and not nullable:
        raise reject(400, "bad_field", f"{name} must be a string, not null")
    value = data.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise reject(400, "bad_field", f"{name} must be a string of at most {max_len} chars")
    return value


__all__ = [
    "RetryAfter",
    "body_limit",
    "error_response",
    "field_int",
    "field_str",
    "int_query",
    "mailbox_param",
    "only_keys",
    "parse_json",
    "read_json",
    "reject",
    "retry_after_of",
]
