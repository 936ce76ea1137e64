"""The layer rules of the README, checked for every module of the package.

Lowest first: a module may import its own package and packages of a strictly lower layer,
never a sibling or a higher one. Only the crypto facade touches the Rust extension.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "privastead"

# The README's table ("Python layers, lowest first"); each top-level module or package.
LAYERS: list[set[str]] = [
    {"errors", "compat"},
    {"clock", "configfile", "configdoc", "atomic_file", "logs", "ports", "_native"},
    {"crypto", "media", "protocol"},
    {"relay"},
    {"hub", "client", "camsim"},
    {"cli", "demo", "demo_crypto", "demo_processes", "devcluster"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# The top layer assembles programs: its modules may use each other (demo starts processes).
TOP = len(LAYERS) - 1


def _unit(path: Path) -> str:
    return path.relative_to(SRC).with_suffix("").parts[0]


def _imported_units(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("privastead.") and n.count(".") >= 1}


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def test_every_unit_has_a_layer() -> None:
    units = {_unit(p) for p in MODULES} | {p.stem for p in SRC.glob("*.pyi")}
    assert units <= set(RANK), f"put these in the README's layer table: {units - set(RANK)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    unit = _unit(path)
    rank = RANK[unit]
    for other in _imported_units(path) - {unit}:
        assert other in RANK, f"{other} has no layer"
        if other == "_native":
            assert unit == "crypto", "only privastead.crypto may import the Rust extension"
            continue
        if rank == TOP and RANK[other] == TOP:
            continue
        assert RANK[other] < rank, (
            f"{unit} (layer {rank}) imports {other} (layer {RANK[other]}): "
            "a layer may only import lower ones"
        )
