"""Launch files vs entry points vs parameter files, checked statically (no ROS needed: `ast` + YAML).

* every executable a launch file starts is a console_scripts entry point of its package's setup.py,
  and importing it gives a callable;
* every parameter in a params file a launch file passes is declared by the node it is for (its own
  section plus the shared `/**` section), every parameter a node declares is set in that file (the
  code holds no defaults: nothing silent on the car), each value is written once, and every value
  obeys the parameter schema (type, range) the nodes declare to ROS with;
* recording is `ros2 bag record -s mcap` split by duration; replay plays with --clock on sim time.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roadloop_core.config import config_dir, load_yaml
from roadloop_core.param_schema import WILDCARD, load_node_params, node_sections, validate_parameter
from roadloop_core.registry import load_registry
from roadloop_vehicle.nodes import NODE_PARAMS
from roadloop_vehicle.ros.params import parameter_names

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


@dataclass
class LaunchedNode:
    package: str
    executable: str
    name: str
    params_files: list[str] = field(default_factory=list)
    sim_time: object = None
    inline: dict[str, object] = field(default_factory=dict)  # parameters set in the launch file itself


LAUNCH_ARGUMENT = object()  # an inline value that comes from a launch argument (checked when launched)


@dataclass
class LaunchInfo:
    nodes: list[LaunchedNode]
    yaml_files: set[str]
    strings: list[str]


def _const(node: ast.AST) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def parse_launch(path: Path) -> LaunchInfo:
    tree = ast.parse(path.read_text(), str(path))
    yaml_files = {
        str(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and str(n.value).endswith(".yaml")
    }
    strings = [str(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    nodes = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node"):
            continue
        kw = {k.arg: k.value for k in call.keywords}
        node = LaunchedNode(str(_const(kw["package"])), str(_const(kw["executable"])), str(_const(kw["name"])))
        params = kw.get("parameters")
        assert isinstance(params, ast.List), f"{path}: {node.name} parameters must be a list"
        for item in params.elts:
            if isinstance(item, ast.Dict):
                for k, v in zip(item.keys, item.values, strict=True):
                    value = _const(v) if isinstance(v, ast.Constant) else LAUNCH_ARGUMENT
                    if k is not None:
                        node.inline[str(_const(k))] = value
                    if k is not None and _const(k) == "use_sim_time":
                        node.sim_time = _const(v) if isinstance(v, ast.Constant) else "launch-argument"
            else:
                node.params_files.append(ast.unparse(item))
        nodes.append(node)
    return LaunchInfo(nodes, yaml_files, strings)


def console_scripts(package: str) -> dict[str, str]:
    tree = ast.parse((REPO / "src" / package / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if k is not None and _const(k) == "console_scripts" and isinstance(v, ast.List):
                    entries = [str(_const(e)) for e in v.elts]
                    return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
    return {}


def test_there_are_launch_files() -> None:
    assert {p.name for p in LAUNCH_FILES} >= {"vehicle.launch.py", "replay.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_executables_exist_as_entry_points(path: Path) -> None:
    info = parse_launch(path)
    assert info.nodes, f"{path.name} starts no nodes"
    for node in info.nodes:
        scripts = console_scripts(node.package)
        assert node.executable in scripts, f"{path.name}: {node.package} has no console script {node.executable}"
        module, attr = scripts[node.executable].split(":")
        assert callable(getattr(importlib.import_module(module), attr))


def params_sections(yaml_name: str) -> dict[str, dict[str, object]]:
    """Section (node name or `/**`) -> its dotted parameters, for a ROS 2 params file under config/."""
    data = load_yaml(REPO / "config" / yaml_name)
    if not all(isinstance(b, dict) and isinstance(b.get("ros__parameters"), dict) for b in data.values()):
        return {}  # topics.yaml, dataset.yaml, ...: not a params file
    return node_sections(REPO / "config" / yaml_name, data)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_parameters_declared_both_ways(path: Path) -> None:
    """What the file sets is what each node declares (the node's section plus `/**`), each value once."""
    info = parse_launch(path)
    launched = {n.name: n for n in info.nodes}
    params_files = [y for y in sorted(info.yaml_files) if params_sections(y)]  # topics.yaml etc. are not
    assert params_files == ["vehicle.yaml"], f"{path.name} passes {params_files}"
    for yaml_name in params_files:
        sections = params_sections(yaml_name)
        shared = sections.get(WILDCARD, {})
        for node_name, own in sections.items():
            if node_name == WILDCARD:
                continue
            assert node_name in launched, f"config/{yaml_name}: section {node_name} is for no node {path.name} starts"
            declared = set(parameter_names(NODE_PARAMS[node_name]))
            assert not set(own) & set(shared), (
                f"config/{yaml_name}: {node_name} repeats {sorted(set(own) & set(shared))}"
            )
            given = set(own) | set(shared)
            assert not given - declared, f"config/{yaml_name}: {node_name} does not declare {sorted(given - declared)}"
            assert not declared - given, f"config/{yaml_name}: {node_name} parameters unset: {sorted(declared - given)}"
        for node in launched.values():
            assert node.name in sections, f"{path.name}: {node.name} has no section in config/{yaml_name}"
            assert node.params_files, f"{path.name}: {node.name} is given no params file"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_inline_launch_parameters_are_declared_and_valid(path: Path) -> None:
    """A parameter a launch file sets inline obeys the same schema as the params file (use_sim_time is rclpy's)."""
    for node in parse_launch(path).nodes:
        for name, value in node.inline.items():
            if name == "use_sim_time":
                continue
            assert name in parameter_names(NODE_PARAMS[node.name]), f"{path.name}: {node.name} does not declare {name}"
            if value is not LAUNCH_ARGUMENT:
                assert validate_parameter(NODE_PARAMS[node.name], name, value) is None, f"{path.name}: {node.name}"


def test_params_files_validate_into_the_node_configs() -> None:
    for node_name in NODE_PARAMS:
        load_node_params(REPO / "config" / "vehicle.yaml", node_name, NODE_PARAMS[node_name])  # ConfigError if bad


def test_each_vehicle_parameter_is_written_once() -> None:
    """A leaf name in two sections of vehicle.yaml (e.g. max_speed_mps for the controller and for safety)
    is a value written twice: shared values go under `/**` once."""
    seen: dict[str, str] = {}
    for section, params in params_sections("vehicle.yaml").items():
        for name in params:
            leaf = name.rsplit(".", 1)[-1]
            assert leaf not in seen, f"config/vehicle.yaml: {leaf} under {seen[leaf]} and {section}.{name}"
            seen[leaf] = f"{section}.{name}"


def test_vehicle_launch_records_registry_topics_as_split_mcap() -> None:
    info = parse_launch(REPO / "launch" / "vehicle.launch.py")
    s = info.strings
    i = s.index("ros2")
    assert s[i : i + 5] == ["ros2", "bag", "record", "-s", "mcap"]
    assert "--max-bag-duration" in s
    text = (REPO / "launch" / "vehicle.launch.py").read_text()
    assert "load_registry" in text and ".recorded()" in text  # topics from the registry, not hard-coded
    assert not [t.name for t in load_registry(config_dir() / "topics.yaml").topics.values() if t.name in s], (
        "topic names hard-coded"
    )


def test_replay_launch_plays_with_clock_and_sim_time() -> None:
    info = parse_launch(REPO / "launch" / "replay.launch.py")
    i = info.strings.index("ros2")
    assert info.strings[i : i + 3] == ["ros2", "bag", "play"]
    assert "--clock" in info.strings
    assert all(n.sim_time is True for n in info.nodes)


def test_replay_launch_ends_when_the_player_exits_with_a_summary() -> None:
    """OnProcessExit on the player logs replay_summary's line and emits Shutdown (nodes otherwise idle forever)."""
    tree = ast.parse((REPO / "launch" / "replay.launch.py").read_text())
    handlers = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "OnProcessExit"]
    assert len(handlers) == 1
    kw = {k.arg: k.value for k in handlers[0].keywords}
    assert ast.unparse(kw["target_action"]) == "player"
    on_exit = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == ast.unparse(kw["on_exit"]))
    body = ast.unparse(on_exit)
    assert "replay_summary(" in body and "LogInfo(" in body and "EmitEvent(event=Shutdown(" in body
    player = next(a for a in ast.walk(tree) if isinstance(a, ast.Assign) and ast.unparse(a.targets[0]) == "player")
    assert "'ros2', 'bag', 'play'" in ast.unparse(player.value)
