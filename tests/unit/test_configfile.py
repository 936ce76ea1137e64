from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from privastead import configfile
from privastead.errors import ConfigError


@dataclass(frozen=True)
class Camera:
    name: str
    url: str
    mode: Literal["full", "keyframes"] = "full"
    fps: float = 5.0


@dataclass(frozen=True)
class Server:
    port: int = 8443
    data_dir: Path = Path("/tmp/x")


@dataclass(frozen=True)
class Model:
    server: Server = field(default_factory=Server)
    cameras: list[Camera] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    note: str | None = None


GOOD = """\
note = "hi"

[server]
port = 9000

[[cameras]]
name = "front"
url = "rtsp://a"

[[cameras]]
name = "back"
url = "rtsp://b"
mode = "keyframes"
fps = 2
"""


def test_parses_nested_tables_lists_and_defaults() -> None:
    model = configfile.parse(GOOD, Model)
    assert model.server == Server(port=9000)
    assert [c.name for c in model.cameras] == ["front", "back"]
    assert model.cameras[1].mode == "keyframes"
    assert model.cameras[1].fps == 2.0
    assert isinstance(model.cameras[1].fps, float)
    assert model.note == "hi"


def test_unknown_key_names_its_line() -> None:
    text = GOOD.replace('mode = "keyframes"', 'mood = "keyframes"')
    with pytest.raises(ConfigError, match=r"^<config>:13: cameras\[1\]\.mood: unknown key"):
        configfile.parse(text, Model)


def test_wrong_type_names_its_line() -> None:
    text = GOOD.replace("port = 9000", 'port = "9000"')
    with pytest.raises(ConfigError, match=r":4: server\.port: expected an integer, got a string"):
        configfile.parse(text, Model)


def test_literal_and_missing_required() -> None:
    with pytest.raises(ConfigError, match="must be one of 'full', 'keyframes'"):
        configfile.parse(GOOD.replace('"keyframes"', '"sometimes"'), Model)
    with pytest.raises(ConfigError, match=r":6: cameras\[0\]: missing required key 'url'"):
        configfile.parse(GOOD.replace('url = "rtsp://a"\n', ""), Model)


def test_bool_is_not_an_integer() -> None:
    with pytest.raises(ConfigError, match="expected an integer, got a boolean"):
        configfile.parse("[server]\nport = true\n", Model)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        configfile.parse("[server\n", Model)
    with pytest.raises(ConfigError, match="no such config file"):
        configfile.load(tmp_path / "nope.toml", Model)


@dataclass(frozen=True)
class Events:
    post_roll: float = 5.0


@dataclass(frozen=True)
class Cam:
    name: str
    events: Events = field(default_factory=Events)


@dataclass(frozen=True)
class Hub:
    cameras: list[Cam] = field(default_factory=list)


def test_nested_table_of_an_array_element_names_its_own_line() -> None:
    text = """\
[[cameras]]
name = "a"

[[cameras]]
name = "b"

[cameras.events]
post_roll = 3.0
post_rol = 1.0
"""
    with pytest.raises(ConfigError, match=r"^<config>:9: cameras\[1\]\.events\.post_rol: unknown"):
        configfile.parse(text, Hub)
    with pytest.raises(
        ConfigError, match=r"^<config>:8: cameras\[1\]\.events\.post_roll: expected"
    ):
        configfile.parse(
            text.replace("post_roll = 3.0", 'post_roll = "x"').replace("post_rol ", "#"), Hub
        )
