"""Fixtures shared by every test area. Area-specific fixtures live in that area's conftest.py."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / ".." / "shared" / "data" / "rosbag2-conformance"

# highway-env renders black frames under SDL's dummy driver; offscreen renders for real.
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """../shared/data/rosbag2-conformance relative to the repository root; skip if absent."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance bags not found at {CONFORMANCE} (../shared/data from the repository root)")
    return CONFORMANCE.resolve()


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
