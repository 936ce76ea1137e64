"""Strict, typed config files: TOML into frozen dataclasses, errors that name the line.

Every program's config is one dataclass tree. Unknown keys are errors (a typo must never be
silently ignored), types are checked, and each error says ``file:line: key: what is wrong``.
Secrets never live in config files: a config names a file or an environment variable that
holds them.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path``,
``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested
dataclasses. A field's default makes it optional.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from privastead.compat import tomllib
from privastead.errors import ConfigError

T = TypeVar("T")
KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def load(path: Path, model: type[T]) -> T:
    """Read ``path`` as TOML into ``model``. Raises ``ConfigError`` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse(text, model, source=str(path))


def parse(text: str, model: type[T], *, source: str = "<config>") -> T:
    """Parse TOML ``text`` into ``model``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return from_mapping(data, model, source=source, text=text)


def from_mapping(
    data: dict[str, Any], model: type[T], *, source: str = "<config>", text: str = ""
) -> T:
    """Build ``model`` from an already parsed mapping (TOML, JSON or defaults)."""
    return typing.cast("T", _Builder(source, text).build(model, data, ()))


class _Builder:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def fail(self, path: KeyPath, message: str) -> ConfigError:
        line = locate(self.lines, path)
        where = f"{self.source}:{line}" if line else self.source
        key = _dotted(path)
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def build(self, tp: Any, value: Any, path: KeyPath) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.build_dataclass(tp, value, path)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            errors: list[ConfigError] = []
            for arg in (a for a in args if a is not type(None)):
                try:
                    return self.build(arg, value, path)
                except ConfigError as exc:
                    errors.append(exc)
            raise errors[0] if len(errors) == 1 else self.fail(path, f"unexpected value {value!r}")
        if origin is Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise self.fail(
                    path, f"must be one of {', '.join(map(repr, choices))}, not {value!r}"
                )
            return value
        if origin in (list, tuple):
            if not isinstance(value, list):
                raise self.fail(path, f"expected a list, got {_kind(value)}")
            (item_tp, *_rest) = typing.get_args(tp) or (Any,)
            items = [self.build(item_tp, v, (*path, i)) for i, v in enumerate(value)]
            return items if origin is list else tuple(items)
        if origin is dict:
            _key_tp, item_tp = typing.get_args(tp)
            if not isinstance(value, dict):
                raise self.fail(path, f"expected a table, got {_kind(value)}")
            return {k: self.build(item_tp, v, (*path, k)) for k, v in value.items()}
        return self.build_scalar(tp, value, path)

    def build_scalar(self, tp: Any, value: Any, path: KeyPath) -> Any:
        if tp is Any:
            return value
        if tp is bool:
            if not isinstance(value, bool):
                raise self.fail(path, f"expected true or false, got {_kind(value)}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(path, f"expected an integer, got {_kind(value)}")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(path, f"expected a number, got {_kind(value)}")
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise self.fail(path, f"expected a string, got {_kind(value)}")
            return value
        if tp is Path:
            if not isinstance(value, str):
                raise self.fail(path, f"expected a path string, got {_kind(value)}")
            return Path(value).expanduser()
        raise TypeError(f"configfile: unsupported field type {tp!r} at {_dotted(path)}")

    def build_dataclass(self, model: type[Any], value: Any, path: KeyPath) -> Any:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        hints = typing.get_type_hints(model)
        fields = {f.name: f for f in dataclasses.fields(model) if f.init}
        removed: dict[str, str] = getattr(model, "REMOVED_KEYS", {})
        for key in value:
            if key in removed:
                raise self.fail((*path, key), f"no longer a setting: {removed[key]}")
            if key not in fields:
                known = ", ".join(sorted(fields)) or "none"
                raise self.fail((*path, key), f"unknown key (known keys here: {known})")
        kwargs = {}
        for name, field in fields.items():
            if name in value:
                kwargs[name] = self.build(hints[name], value[name], (*path, name))
            elif (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise self.fail(path, f"missing required key '{name}'")
        try:
            obj = model(**kwargs)
        except (ValueError, TypeError) as exc:  # __post_init__ validation
            raise self.fail(path, str(exc)) from None
        return obj


def locate(lines: list[str], path: KeyPath) -> int | None:
    """Best-effort 1-based line number of ``path`` in TOML source ``lines``.

    The key's own line if it is assigned explicitly, else the line of the deepest table header
    that contains it (for a missing key, or a table given as a whole).
    """
    if not lines or not path:
        return None
    table: list[str | int] = []
    counts: dict[tuple[str, ...], int] = {}
    best: int | None = None
    best_depth = -1
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            table = _resolve(_split_key(header.group(2)), counts, header.group(1) == "[[")
            if tuple(table) == path[: len(table)] and len(table) > best_depth:
                best, best_depth = number, len(table)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            full = (*table, *_split_key(assign.group(1)))
            if full == path[: len(full)]:
                return number
    return best


def _resolve(names: list[str], counts: dict[tuple[str, ...], int], array: bool) -> list[str | int]:
    """The indexed key path of a table header: ``[cameras.events]`` after the second
    ``[[cameras]]`` is ``cameras[1].events``."""
    resolved: list[str | int] = []
    for i, name in enumerate(names):
        resolved.append(name)
        prefix = tuple(names[: i + 1])
        if array and i == len(names) - 1:
            counts[prefix] = counts.get(prefix, -1) + 1
            for nested in [
                k for k in counts if len(k) > len(prefix) and k[: len(prefix)] == prefix
            ]:
                del counts[nested]  # a new element starts its own nested arrays afresh
            resolved.append(counts[prefix])
        elif prefix in counts:
            resolved.append(counts[prefix])
    return resolved


def _split_key(key: str) -> list[str]:
    return [
        part.strip().strip("\"'")
        for part in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", key)
    ]


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


__all__ = ["from_mapping", "load", "locate", "parse"]
