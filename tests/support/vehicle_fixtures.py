"""The onboard tests' helpers (tests/roadloop_vehicle/fixtures.py: a tiny real ONNX policy, bundles, drive bags).

tests/roadloop_vehicle is not a package (pytest's rootdir-relative test ids stay short), so the module is loaded
by path, once per process, under one name shared by every test area that uses it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "roadloop_vehicle_test_fixtures"
PATH = Path(__file__).resolve().parents[1] / "roadloop_vehicle" / "fixtures.py"


def vehicle_fixtures() -> ModuleType:
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[NAME]
