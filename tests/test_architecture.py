"""The architecture as executable rules: what each package may import, and no import cycles within src.

    roadloop_core     everywhere       imports none of roadloop_vehicle, roadloop_sim, roadloop_cluster, roadloop_hub
    roadloop_vehicle  the car          imports neither torch nor roadloop_sim, roadloop_cluster, roadloop_hub
    roadloop_sim      sim hosts        imports neither torch nor roadloop_cluster, roadloop_hub
    roadloop_hub      the hub server   imports roadloop_core only of ours, and no torch

Every import counts for the layering, wherever it is written (module level, inside a function, under
`if TYPE_CHECKING:`): a lazy import is still a dependency the deployable must install. Cycles are
looked for among every import that can run, module level or inside a function: a lazy import on one
side still makes two modules depend on each other (the review found `bag/storage.py` <-> its two
backends written exactly so); only `if TYPE_CHECKING:` imports, which never run, are left out. The
checker runs on the real tree and, to show it can fail, on small synthetic trees with a deliberate
violation.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("roadloop_core", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster", "roadloop_hub")

# package -> top-level modules it must never import (any import, however lazy)
FORBIDDEN: dict[str, frozenset[str]] = {
    "roadloop_core": frozenset({"roadloop_vehicle", "roadloop_sim", "roadloop_cluster", "roadloop_hub"}),
    "roadloop_vehicle": frozenset({"torch", "torchvision", "roadloop_sim", "roadloop_cluster", "roadloop_hub"}),
    "roadloop_sim": frozenset({"torch", "torchvision", "roadloop_cluster", "roadloop_hub"}),
    "roadloop_hub": frozenset({"torch", "torchvision", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster"}),
    "roadloop_cluster": frozenset({"torchvision"}),  # torch yes (it trains), torchvision is not a dependency
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module as written (absolute), dotted
    names: tuple[str, ...]  # `from target import names` (empty for `import target`)
    line: int
    runs: bool  # False only under `if TYPE_CHECKING:` (never executed)
    lazy: bool  # inside a function: runs when called, not at import time

    def where(self, src: Path) -> str:
        return f"{self.module} (line {self.line})"


def module_files(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every package under src/<pkg>/<pkg>/."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        root = src / pkg / pkg
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path) -> list[Import]:
    """Every import statement in the file, relative ones resolved, with whether and when it runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, runs: bool, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, (), child.lineno, runs, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                names = tuple(a.name for a in child.names)
                found.append(Import(module, target, names, child.lineno, runs, lazy))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, runs, True)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), False, lazy)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), runs, lazy)
            else:
                visit(child, runs, lazy)

    visit(tree, True, False)
    return found


def layer_violations(src: Path) -> dict[str, list[str]]:
    """Package -> 'module (line N) imports X' for every forbidden import, however lazy."""
    out: dict[str, list[str]] = {pkg: [] for pkg in FORBIDDEN}
    for module, path in module_files(src).items():
        pkg = module.split(".")[0]
        for imp in imports_of(module, path):
            top = imp.target.split(".")[0]
            if top in FORBIDDEN.get(pkg, frozenset()):
                kind = " (lazily)" if imp.lazy else " (for type checking)" if not imp.runs else ""
                out[pkg].append(f"{imp.where(src)} imports {imp.target}{kind}")
    return out


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the src modules its imports execute, now or when called (`from a import b` runs a, and a.b).

    A submodule taking a sibling from its own package (`from pkg import sibling` inside pkg) is an edge to
    the sibling only: the package has already started importing; a *name* from the package's
    `__init__` is an edge to the package, since that name may not be defined yet.
    """
    files = module_files(src)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for imp in imports_of(module, path):
            if not imp.runs:
                continue
            submodules = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in files]
            # `from <my own package> import <submodule>` needs no more of the package than has already run
            own_package = module.startswith(f"{imp.target}.") and imp.names and len(submodules) == len(imp.names)
            targets = submodules if own_package else [imp.target, *submodules]
            graph[module] |= {t for t in targets if t in files and t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path (a -> b -> ... -> a) for every strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_cycle_in(graph, set(g)) for g in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group (breadth first)."""
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in group {sorted(group)}")


# -- the rules on this tree ----------------------------------------------------------------------


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    if not (SRC / package / package).is_dir():
        pytest.skip(f"src/{package} does not exist yet; the rule applies as soon as it does")
    bad = layer_violations(SRC)[package]
    assert not bad, f"{package} may not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(bad)


def test_no_import_cycle_within_src() -> None:
    cycles = find_cycles(import_graph(SRC))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_the_whole_tree() -> None:
    files = module_files(SRC)
    assert {"roadloop_core.registry", "roadloop_vehicle.pipeline", "roadloop_sim.cli"} <= set(files)
    assert len(files) > 100
    graph = import_graph(SRC)
    assert "roadloop_core.config" in graph["roadloop_core.registry"]


# Config is resolved where a process starts and handed down: `config_dir()` (where config/ lives) is
# called only by entry points (CLI verbs, node main()s). Of roadloop_cluster, the loop passes its config
# down already; the rest joins once its data entry points do too.
ENTRY_POINT_PACKAGES = ("roadloop_core", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster.loop")


def is_entry_point(module: str) -> bool:
    parts = module.split(".")
    node_entry = parts[-2:-1] == ["nodes"] and (parts[-1].endswith("_node") or parts[-1] == "entry")  # node main()s
    return parts[-1] == "cli" or "cli" in parts[:-1] or node_entry


def config_dir_calls(src: Path, packages: tuple[str, ...] = ENTRY_POINT_PACKAGES) -> list[str]:
    """'module (line N)' for every call of config_dir() outside an entry point module."""
    out = []
    for module, path in module_files(src).items():
        checked = any(module == p or module.startswith(f"{p}.") for p in packages)
        if not checked or is_entry_point(module) or module == "roadloop_core.config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name == "config_dir":
                    out.append(f"{module} (line {node.lineno})")
    return out


def test_config_dir_is_resolved_only_at_entry_points() -> None:
    calls = config_dir_calls(SRC)
    assert not calls, "config_dir() below an entry point (resolve it in the CLI/main and pass config down):\n" + (
        "\n".join(calls)
    )


def test_checker_finds_config_dir_below_an_entry_point(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "roadloop_vehicle/replay/cli.py": "from roadloop_core.config import config_dir\np = config_dir()\n",
            "roadloop_vehicle/nodes/drive_node.py": "from roadloop_core import config\np = config.config_dir()\n",
            "roadloop_vehicle/pipeline.py": "import roadloop_core.config as c\ndef f():\n    return c.config_dir()\n",
        },
    )
    assert config_dir_calls(src) == ["roadloop_vehicle.pipeline (line 3)"]


# -- the checker itself, on synthetic trees ------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write `{"roadloop_core/a.py": source}` as src/roadloop_core/roadloop_core/a.py (+ __init__.py files)."""
    src = tmp_path / "src"
    for rel, text in files.items():
        pkg = rel.split("/")[0]
        path = src / pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(src / pkg).parents:
            if str(parent) != ".":
                init = src / pkg / parent / "__init__.py"
                if not init.exists():
                    init.write_text("")
        path.write_text(text)
    return src


def test_checker_finds_a_lazy_upward_import_in_core(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "roadloop_core/fine.py": "import numpy\nfrom roadloop_core import other\n",
            "roadloop_core/other.py": "",
            "roadloop_core/bad.py": "def f():\n    from roadloop_vehicle.pipeline import Pipeline\n",
        },
    )
    assert layer_violations(src)["roadloop_core"] == [
        "roadloop_core.bad (line 2) imports roadloop_vehicle.pipeline (lazily)"
    ]


@pytest.mark.parametrize(
    ("package", "source", "target"),
    [
        ("roadloop_vehicle", "import torch.nn\n", "torch.nn"),
        ("roadloop_vehicle", "from roadloop_cluster.train import x\n", "roadloop_cluster.train"),
        (
            "roadloop_vehicle",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import roadloop_sim\n",
            "roadloop_sim",
        ),
        ("roadloop_sim", "try:\n    import torch\nexcept ImportError:\n    torch = None\n", "torch"),
        ("roadloop_sim", "import roadloop_hub.app\n", "roadloop_hub.app"),
        ("roadloop_hub", "from roadloop_vehicle.bridge import wire\n", "roadloop_vehicle.bridge"),
        ("roadloop_hub", "class A:\n    def f(self):\n        import torch\n", "torch"),
    ],
)
def test_checker_finds_each_forbidden_import(tmp_path: Path, package: str, source: str, target: str) -> None:
    src = _tree(tmp_path, {f"{package}/mod.py": source})
    (bad,) = layer_violations(src)[package]
    assert bad.startswith(f"{package}.mod (line ") and f"imports {target}" in bad


def test_checker_allows_what_the_layers_allow(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "roadloop_vehicle/a.py": "import onnxruntime\nfrom roadloop_core.registry import x\n",
            "roadloop_sim/a.py": "from roadloop_vehicle.pipeline import Pipeline\n",
            "roadloop_hub/a.py": "from roadloop_core.contract import wire\nimport fastapi\n",
            "roadloop_cluster/a.py": "import torch\nfrom roadloop_sim import x\n",
        },
    )
    assert not any(layer_violations(src).values())


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"roadloop_core/bag/reader.py": "from ..errors import X\nfrom . import storage\n"})
    imps = imports_of("roadloop_core.bag.reader", src / "roadloop_core/roadloop_core/bag/reader.py")
    assert [(i.target, i.names) for i in imps] == [
        ("roadloop_core.errors", ("X",)),
        ("roadloop_core.bag", ("storage",)),
    ]


def test_checker_reports_an_import_cycle_with_its_path(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "roadloop_core/bag/storage.py": "def open_storage():\n    from roadloop_core.bag import storage_mcap\n",
            "roadloop_core/bag/storage_mcap.py": "from roadloop_core.bag.reindex import x\n",
            "roadloop_core/bag/reindex.py": "from roadloop_core.bag.storage import Storage\n",
            "roadloop_core/bag/fine.py": "from roadloop_core.bag.storage import Storage\n",
        },
    )
    assert find_cycles(import_graph(src)) == [
        [
            "roadloop_core.bag.reindex",
            "roadloop_core.bag.storage",
            "roadloop_core.bag.storage_mcap",
            "roadloop_core.bag.reindex",
        ]
    ]


def test_a_sibling_from_the_own_package_is_no_cycle_but_a_name_from_its_init_is(tmp_path: Path) -> None:
    files = {
        "roadloop_core/train/__init__.py": "from roadloop_core.train.launch import launch\n",
        "roadloop_core/train/launch.py": "from roadloop_core.train import steps\n",
        "roadloop_core/train/steps.py": "",
    }
    src = _tree(tmp_path, files)
    assert find_cycles(import_graph(src)) == []
    (src / "roadloop_core/roadloop_core/train/launch.py").write_text(
        "from roadloop_core.train import DEFAULTS, steps\n"
    )
    assert find_cycles(import_graph(src)) == [
        ["roadloop_core.train", "roadloop_core.train.launch", "roadloop_core.train"]
    ]


def test_a_type_checking_import_makes_no_cycle_a_lazy_one_does(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "roadloop_core/a.py": "from roadloop_core import b\n",
            "roadloop_core/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from roadloop_core import a\n",
        },
    )
    assert find_cycles(import_graph(src)) == []
    (tmp_path / "src/roadloop_core/roadloop_core/b.py").write_text("def f():\n    import roadloop_core.a\n")
    assert find_cycles(import_graph(src)) == [["roadloop_core.a", "roadloop_core.b", "roadloop_core.a"]]
