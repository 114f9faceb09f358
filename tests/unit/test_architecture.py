"""The house stays easy to change: packages import each other in one direction only (the layers of
``docs/architecture.md``), modules stay small and functions short."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "msc_graph"
#: Which package may import which (top-level modules are the base layer, "msc_graph").
LAYERS = ["msc_graph", "data", "protocols", "memory", "graphs", "results", "run", "train", "cli"]
#: ``cli`` may start the scripted server in process for ``--backend mock`` (msc_graph/testing/mock_backend.py).
ALLOWED_EXTRA = {("testing", "msc_graph"), ("testing", "protocols"), ("cli", "testing")}


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "msc_graph"


def import_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        here = package_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("msc_graph"):
                there = package_of(node.module)
                if there != here:
                    edges[here].add(there)
    return edges


def test_packages_import_downwards_only():
    for here, targets in import_edges().items():
        for there in targets:
            if (here, there) in ALLOWED_EXTRA:
                continue
            assert here in LAYERS and there in LAYERS, (here, there)
            assert LAYERS.index(there) < LAYERS.index(here), f"{here} imports {there}: a loop between layers"


def test_memory_never_imports_the_graphs():
    assert "graphs" not in import_edges().get("memory", set())


def test_modules_stay_under_400_lines_and_functions_under_60():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) < 400, path
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 60, f"{path}:{node.lineno} {node.name}"
