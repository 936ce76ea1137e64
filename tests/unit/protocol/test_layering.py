"""The protocol layer stays below hub and client; the client never reaches into the hub."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "privastead"
PROTOCOL_MAY_IMPORT = {
    "privastead.errors",
    "privastead.clock",
    "privastead.compat",
    "privastead.protocol",
}
THIRD_PARTY_OK = {"segno", "zxingcpp", "png", "numpy"}  # QR rendering/decoding only


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "protocol").glob("*.py")), ids=lambda p: p.name)
def test_protocol_imports_only_lower_layers(path: Path) -> None:
    import sys

    for name in imports(path):
        top = name.split(".")[0]
        if top == "privastead":
            assert any(name == p or name.startswith(p + ".") for p in PROTOCOL_MAY_IMPORT), name
        elif top not in sys.stdlib_module_names and top != "__future__":
            assert top in THIRD_PARTY_OK, name
            assert path.name == "pairing_qr.py", f"{name} outside pairing_qr.py"


@pytest.mark.parametrize("path", sorted((SRC / "client").glob("*.py")), ids=lambda p: p.name)
def test_client_does_not_import_the_hub(path: Path) -> None:
    assert not [n for n in imports(path) if n.startswith("privastead.hub")]
