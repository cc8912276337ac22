"""The layer rules of docs/architecture.md: each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import starft

SRC = Path(starft.__file__).parent
COMMON = {"errors", "registry", "utils", "config", "method_configs", "__init__"}
ALLOWED = {
    "models": set(),
    "data": {"sandbox"},
    "losses": set(),
    "explain": {"models", "data", "losses"},
    "methods": {"models", "data", "losses", "eval", "explain", "discovery"},
    "eval": {"models", "data", "explain"},
    "masks": {"data"},
    "train": {"models", "data", "methods", "eval", "losses"},
    "report": {"eval"},
    "demo": {"train", "eval", "report", "methods", "models", "data"},
    "discovery": {"models", "data", "sandbox", "generation", "eval"},
    "discovery_bench": {
        "models",
        "data",
        "sandbox",
        "generation",
        "eval",
        "train",
        "methods",
        "discovery",
    },
}


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("starft."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("starft.")}
    return names


def test_layers_import_only_the_layers_below():
    for layer, allowed in ALLOWED.items():
        for path in sorted((SRC / layer).rglob("*.py")):
            bad = _imported_layers(path) - allowed - COMMON - {layer}
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"
