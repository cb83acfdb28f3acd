"""Fixtures of the onboard-runtime tests: keys, signed tiny bundles, synthetic drive bags."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.support.vehicle_fixtures import vehicle_fixtures


@pytest.fixture(scope="session")
def fx() -> ModuleType:
    return vehicle_fixtures()


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType) -> tuple[Path, Path]:
    return fx.keys(tmp_path_factory.mktemp("keys"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType, keypair: tuple[Path, Path]) -> Path:
    return fx.make_bundle(tmp_path_factory.mktemp("bundles") / "tiny-v1", keypair[0])  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def drive_bag(tmp_path_factory: pytest.TempPathFactory, fx: ModuleType) -> Path:
    return fx.write_drive_bag(tmp_path_factory.mktemp("bags") / "drive")  # type: ignore[no-any-return]
