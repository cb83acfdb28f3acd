"""Fixtures of the onboard-runtime tests: keys, signed tiny bundles, synthetic drive bags."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_fixtures() -> ModuleType:
    name = "roadloop_vehicle_test_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fixtures.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fx() -> ModuleType:
    return _load_fixtures()


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType) -> tuple[Path, Path]:
    return fx.keys(tmp_path_factory.mktemp("keys"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType, keypair: tuple[Path, Path]) -> Path:
    return fx.make_bundle(tmp_path_factory.mktemp("bundles") / "tiny-v1", keypair[0])  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def drive_bag(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType) -> Path:
    return fx.write_drive_bag(tmp_path_factory.mktemp("bags") / "drive")  # type: ignore[no-any-return]
