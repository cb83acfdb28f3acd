"""Fixtures shared by every test area. Area-specific fixtures live in that area's conftest.py."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / ".." / "shared" / "data" / "rosbag2-conformance"

# highway-env renders black frames under SDL's dummy driver; offscreen renders for real.
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


# `make pytest-numpy1` runs the vehicle side on numpy 1.26 without ROS wheels, the hub or the simulator
# (ROADLOOP_TEST_SIDE=vehicle). A test that needs one of those says so with @pytest.mark.needs("rclpy", ...) and is
# skipped there, naming what is absent; in the workspace environment, which has everything, it runs (and fails if a
# module really is missing), so the marker never hides a broken install.
VEHICLE_ONLY = os.environ.get("ROADLOOP_TEST_SIDE") == "vehicle"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not VEHICLE_ONLY:
        return
    for mark in item.iter_markers("needs"):
        absent = [m for m in mark.args if importlib.util.find_spec(m) is None]
        if absent:
            pytest.skip(f"not in the vehicle-only environment (make pytest-numpy1): {', '.join(absent)}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """../shared/data/rosbag2-conformance relative to the repository root; skip if absent."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance bags not found at {CONFORMANCE} (../shared/data from the repository root)")
    return CONFORMANCE.resolve()


# -- a real PostgreSQL server (the hub's catalog on PostgreSQL: tests/fleet, tests/roadloop_hub) -----------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql")
    # PostgreSQL refuses to run as root: run it as `nobody` then (runuser), as ourselves otherwise.
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="roadloop-pg-"))
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root and no runuser to start PostgreSQL as an unprivileged user")
        prefix = ["runuser", "-u", "nobody", "--"]
        os.chmod(base, 0o755)
        shutil.chown(base, "nobody")
    data, port = base / "data", _free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)  # fmt: skip
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
                       check=True, capture_output=True)  # fmt: skip
    except subprocess.CalledProcessError as err:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {err.stderr.decode()[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _load_rosgraph() -> object:
    """tests/rosgraph.py (DDS isolation, listener): a plain module, since tests import in importlib mode."""
    name = "roadloop_tests_rosgraph"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("rosgraph.py"))
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_rosgraph = _load_rosgraph()
ros_graph = _rosgraph.ros_graph  # type: ignore[attr-defined]
ros_context = _rosgraph.ros_context  # type: ignore[attr-defined]
ros_listener = _rosgraph.ros_listener  # type: ignore[attr-defined]
