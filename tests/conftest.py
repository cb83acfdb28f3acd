"""Fixtures shared by every test area. Area-specific fixtures live in that area's conftest.py."""

from __future__ import annotations

import os
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
