"""Each package imports only what is below it (core <- vehicle <- sim <- cluster), and rclpy stays on the vehicle.

Verbs that need more (`roadloop bag play` needs rclpy) reach the `roadloop` command through
entry-point groups, never through an import from the lower package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
FORBIDDEN = {
    "roadloop_core": {"roadloop_vehicle", "roadloop_sim", "roadloop_cluster", "rclpy", "torch"},
    "roadloop_vehicle": {"roadloop_sim", "roadloop_cluster", "torch"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_from_above(package: str) -> None:
    found = {
        f"{path.relative_to(SRC)}: {name}"
        for path in (SRC / package / package).rglob("*.py")
        for name in _imports(path) & FORBIDDEN[package]
    }
    assert not found, sorted(found)
