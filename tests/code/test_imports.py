"""The import rules of docs/architecture.md, checked on the source: imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> top-level names it must never import
FORBIDDEN: dict[str, set[str]] = {
    "features": {
        "ray",
        "actors",
        "deployments",
        "training",
        "simulator",
        "cli",
        "policy",
        "models",
    },
    "policy": {"ray", "actors", "deployments", "training", "simulator", "cli", "models"},
    "models": {"ray", "actors", "deployments", "training", "simulator", "cli"},
    "actors": {"deployments", "training", "simulator", "cli"},
    "training": {"actors", "deployments", "simulator", "cli"},
    "simulator": {"actors", "deployments", "training", "cli", "policy", "models"},
}


def imported(path: Path) -> set[str]:
    """Top-level names of every module a file imports (at any depth of the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}
