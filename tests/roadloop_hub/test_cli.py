"""`roadloop hub` commands that only read a hub never create one where there is none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("args", [["ls"], ["export-bags", "--out", "x"], ["token", "ls"], ["gc"]])
def test_reading_commands_refuse_a_missing_hub(tmp_path: Path, args: list[str]) -> None:
    root = tmp_path / "no-hub"
    full = [*args, "--root", str(root)]
    if args[0] == "export-bags":
        full[2] = str(tmp_path / "out")
    proc = subprocess.run([sys.executable, "-m", "roadloop_hub", *full], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"roadloop: error: {root}: no hub here (start one with `roadloop hub serve --root {root}`)"
    ]
    assert not root.exists()
