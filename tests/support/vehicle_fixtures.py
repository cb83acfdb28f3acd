"""The onboard tests' helpers (tests/roadloop_vehicle/fixtures.py: a tiny real ONNX policy, bundles, drive bags).

tests/roadloop_vehicle is not a package (pytest's rootdir-relative test ids stay short), so the module is loaded
by path, once per process, under one name shared by every test area that uses it.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import yaml

NAME = "roadloop_vehicle_test_fixtures"
PATH = Path(__file__).resolve().parents[1] / "roadloop_vehicle" / "fixtures.py"
REPO = Path(__file__).resolve().parents[2]


def vehicle_fixtures() -> ModuleType:
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[NAME]


def vehicle_config_dir(tmp_path: Path, max_duration_s: float) -> tuple[Path, Path]:
    """A config folder as on a vehicle (the repository's YAML + a trusted key) whose one scenario,
    highway_light, lasts `max_duration_s`; (the folder, the signing key that key trusts)."""
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    priv, _ = vehicle_fixtures().keys(cfg / "keys")  # config/vehicle.yaml: public_key keys/signing.pub
    scen = yaml.safe_load((cfg / "scenarios.yaml").read_text())
    scen["scenarios"] = {"highway_light": {**scen["scenarios"]["highway_light"], "max_duration_s": max_duration_s}}
    (cfg / "scenarios.yaml").write_text(yaml.safe_dump(scen))
    return cfg, priv
