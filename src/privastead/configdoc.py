"""The reference of a config model, read from the model itself: keys, types, defaults, docs.

Each field of a config dataclass documents itself with the comment on its line or the comment
lines right above it (``#:`` or ``#``). :func:`describe` walks a model into one
:class:`KeyDoc` per key; :func:`markdown` renders the reference page (``docs/config.md`` is
generated with it and a test keeps it current) and :func:`example_toml` a commented example
file (``privastead-hub init``). Documentation and parser can therefore never disagree about
which keys exist or what they default to.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

_PRAGMA = re.compile(r"#\s*(noqa|type:|pragma)")


@dataclass(frozen=True)
class KeyDoc:
    """One key of a config file."""

    table: str  # "" for the top level, "hub", "cameras.events", ...
    key: str
    type: str  # a short, human form: "number", "string", "\"tcp\" | \"udp\"", ...
    default: str  # TOML text of the default, "" when the key is required
    doc: str
    array: bool  # the table is an array of tables ([[cameras]])
    table_doc: str = ""  # the first paragraph of the table's class docstring


def _comments(model: type[Any]) -> dict[str, str]:
    """Field name -> its comment, from the class's source."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):  # pragma: no cover - classes built at run time
        return {}
    lines = source.splitlines()
    own: dict[int, str] = {}  # line number -> comment text
    alone: set[int] = set()  # lines that hold nothing but a comment
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        # Linter pragmas are not documentation.
        text = "" if _PRAGMA.match(tok.string) else tok.string.lstrip("#").lstrip(":").strip()
        own[tok.start[0]] = text
        if not lines[tok.start[0] - 1][: tok.start[1]].strip():
            alone.add(tok.start[0])
    docs: dict[str, str] = {}
    cls = ast.parse(source).body[0]
    assert isinstance(cls, ast.ClassDef)
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            parts: list[str] = []
            above = node.lineno - 1
            while above in alone:
                parts.insert(0, own[above])
                above -= 1
            if node.lineno in own and node.lineno not in alone:
                parts.append(own[node.lineno])
            docs[node.target.id] = " ".join(p for p in parts if p)
    return docs


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " | ".join(_type_text(a) for a in args) + " (optional)"
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (item, *_rest) = typing.get_args(tp) or (Any,)
        return f"list of {_type_text(item)}"
    if origin is dict:
        return f"table of {_type_text(typing.get_args(tp)[1])}"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def toml_value(value: Any) -> str:
    """``value`` as TOML text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _nested(tp: Any) -> tuple[type[Any] | None, bool]:
    """The dataclass behind a field's type, and whether it is an array of tables."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp, False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # an optional table
        tables = [a for a in typing.get_args(tp) if a is not type(None)]
        table = tables[0] if len(tables) == 1 else None
        if dataclasses.is_dataclass(table) and isinstance(table, type):
            return table, False
    if typing.get_origin(tp) in (list, tuple):
        (item, *_rest) = typing.get_args(tp) or (Any,)
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            return item, True
    return None, False


def describe(model: type[Any], table: str = "", array: bool = False) -> list[KeyDoc]:
    """Every key of ``model`` (a config dataclass), tables after the keys of their parent."""
    hints = typing.get_type_hints(model)
    docs = _comments(model)
    table_doc = (inspect.getdoc(model) or "").split("\n\n")[0].replace("\n", " ")
    if table_doc.startswith(model.__name__ + "("):  # dataclass's generated signature
        table_doc = ""
    keys: list[KeyDoc] = []
    tables: list[KeyDoc] = []
    for field in dataclasses.fields(model):
        if not field.init:
            continue
        tp = hints[field.name]
        nested, is_array = _nested(tp)
        if nested is not None:
            name = f"{table}.{field.name}" if table else field.name
            tables.extend(describe(nested, name, is_array))
            continue
        default = _default(field)
        keys.append(
            KeyDoc(
                table=table,
                key=field.name,
                type=_type_text(tp),
                default="" if default is dataclasses.MISSING else _default_text(default),
                doc=docs.get(field.name, ""),
                array=array,
                table_doc=table_doc,
            )
        )
    return keys + tables


def _default_text(value: Any) -> str:
    return "(none)" if value is None else toml_value(value)


def _header(table: str, array: bool) -> str:
    return f"[[{table}]]" if array else f"[{table}]"


def _tables(keys: list[KeyDoc]) -> dict[tuple[str, bool], list[KeyDoc]]:
    out: dict[tuple[str, bool], list[KeyDoc]] = {}
    for key in keys:
        out.setdefault((key.table, key.array), []).append(key)
    return out


def markdown(title: str, intro: str, keys: list[KeyDoc]) -> str:
    """A reference section: one table of keys per TOML table."""
    out = [f"## {title}", "", intro, ""]
    for (table, array), rows in _tables(keys).items():
        out += [f"### `{_header(table, array)}`" if table else "### top level", ""]
        if rows[0].table_doc:
            out += [rows[0].table_doc, ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for k in rows:
            default = f"`{k.default}`" if k.default and k.default != "(none)" else k.default
            out.append(
                f"| `{k.key}` | {k.type.replace('|', '/')} | {default or '**required**'} | "
                f"{k.doc.replace('|', '/')} |"
            )
        out.append("")
    return "\n".join(out)


def example_toml(keys: list[KeyDoc], values: dict[str, Any]) -> str:
    """A config file: keys in ``values`` (``"table.key"``) set, every other key commented out
    at its default, each with its documentation above it."""
    out: list[str] = []
    for (table, array), rows in _tables(keys).items():
        if table:
            out += ["", _header(table, array)]
        for k in rows:
            name = f"{table}.{k.key}" if table else k.key
            if k.doc:
                out += textwrap.wrap(k.doc, width=98, initial_indent="# ", subsequent_indent="# ")
            if name in values:
                out.append(f"{k.key} = {toml_value(values[name])}")
            elif k.default and k.default != "(none)":
                out.append(f"# {k.key} = {k.default}")
            else:
                out.append(f"# {k.key} =")
    return "\n".join(out).lstrip("\n") + "\n"


__all__ = ["KeyDoc", "describe", "example_toml", "markdown", "toml_value"]
